import { closest } from './suggest.js';

/**
 * The env templates of `credential.env`: literal text with `{{token}}`, `{{role}}`,
 * `{{request_id}}` and `{{expires_at}}` (spaces inside the braces allowed, as in Mustache and
 * Helm). Deliberately not a template language: no conditionals, filters or escapes, so what a
 * reviewer reads in the policy is exactly what the credential's environment will hold.
 */

export const TEMPLATE_VARIABLES = ['token', 'role', 'request_id', 'expires_at'] as const;
export type TemplateVariable = (typeof TEMPLATE_VARIABLES)[number];
export type TemplateValues = Readonly<Record<TemplateVariable, string>>;

type Part = { text: string } | { variable: TemplateVariable };

/** Splits a template into literal text and placeholders, or says what is wrong with it. */
export function compileTemplate(template: string): { parts: Part[] } | { error: string } {
  const parts: Part[] = [];
  let i = 0;
  while (i < template.length) {
    const open = template.indexOf('{{', i);
    const close = template.indexOf('}}', i);
    if (close !== -1 && (open === -1 || close < open)) {
      return { error: `\`}}\` at character ${close + 1} has no matching \`{{\`` };
    }
    if (open === -1) {
      parts.push({ text: template.slice(i) });
      break;
    }
    if (open > i) parts.push({ text: template.slice(i, open) });
    const end = template.indexOf('}}', open + 2);
    if (end === -1) return { error: `\`{{\` at character ${open + 1} is never closed with \`}}\`` };
    const inner = template.slice(open + 2, end);
    const name = inner.trim();
    if (inner.includes('{')) {
      return { error: `\`{{\` at character ${open + 1} is never closed with \`}}\`` };
    }
    if (!(TEMPLATE_VARIABLES as readonly string[]).includes(name)) {
      const meant = closest(name, TEMPLATE_VARIABLES);
      const known = TEMPLATE_VARIABLES.map((v) => `{{${v}}}`).join(', ');
      return {
        error:
          `unknown placeholder \`{{${inner}}}\`` +
          (meant ? `; did you mean \`{{${meant}}}\`?` : ` (known: ${known})`),
      };
    }
    parts.push({ variable: name as TemplateVariable });
    i = end + 2;
  }
  return { parts };
}

/**
 * Renders a role's env templates at minting. The templates were validated when the policy was
 * loaded, so an invalid one here is a bug in the caller, not bad input.
 */
export function renderEnv(
  templates: Readonly<Record<string, string>>,
  values: TemplateValues,
): Record<string, string> {
  return Object.fromEntries(
    Object.entries(templates).map(([name, template]) => {
      const compiled = compileTemplate(template);
      if ('error' in compiled)
        throw new Error(`env template ${name} is invalid: ${compiled.error}`);
      return [
        name,
        compiled.parts.map((p) => ('text' in p ? p.text : values[p.variable])).join(''),
      ];
    }),
  );
}

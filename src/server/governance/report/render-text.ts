import { safe } from '../../../api/text.js';
import type { Block, ReportDocument } from './document.js';

/**
 * The report as plain text (a terminal, a ticket) and as Markdown (a wiki, a pull request), from
 * the one document. Other people's text is made safe for each: control characters and bidi
 * overrides as visible escapes (`safe`), and in Markdown the characters that would turn text
 * into markup or links escaped with a backslash.
 */

const WRAP = 100;

function wrap(text: string, indent = ''): string {
  const words = text.split(' ');
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if (line && (indent + line + ' ' + w).length > WRAP) {
      lines.push(indent + line);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(indent + line);
  return lines.join('\n');
}

function textTable(b: Extract<Block, { kind: 'table' }>): string {
  const cells = [b.headers, ...b.rows].map((r) => r.map((c) => safe(c)));
  const widths = b.headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r, ri) =>
      `  ${r
        .map((c, i) => {
          const cell = ri === 0 ? c.toUpperCase() : c;
          return b.numeric[i] ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!);
        })
        .join('  ')}`.trimEnd(),
    )
    .join('\n');
}

export function renderText(doc: ReportDocument): string {
  const out: string[] = [`${doc.title}: ${safe(doc.subtitle)}`, ''];
  for (const b of doc.blocks) {
    switch (b.kind) {
      case 'heading':
        out.push(b.level === 2 ? `== ${safe(b.text)} ==` : `-- ${safe(b.text)}`);
        break;
      case 'para':
        out.push(wrap(`${b.tone === 'warn' ? '! ' : ''}${safe(b.text)}`, '  '));
        break;
      case 'list':
        for (const item of b.items)
          out.push(wrap(`${b.tone === 'warn' ? '! ' : '- '}${safe(item)}`, '  '));
        break;
      case 'table':
        out.push(textTable(b));
        break;
      case 'chart':
        continue;
    }
    out.push('');
  }
  return `${out.join('\n').trimEnd()}\n`;
}

/** Text that Markdown shows as written: markup characters escaped, on one line. */
export function mdText(text: string): string {
  return safe(text)
    .replace(/\\/g, '\\\\')
    .replace(/[`*_[\]<>|~&]/g, (c) => `\\${c}`)
    .replace(/^([-=#+])/, '\\$1')
    .replace(/^(\d+)\.(\s)/, '$1\\.$2');
}

export function renderMarkdown(doc: ReportDocument): string {
  const out: string[] = [`# ${doc.title}`, '', mdText(doc.subtitle), ''];
  for (const b of doc.blocks) {
    switch (b.kind) {
      case 'heading':
        out.push(`${'#'.repeat(b.level)} ${mdText(b.text)}`);
        break;
      case 'para':
        out.push(
          b.tone === 'warn'
            ? `**${mdText(b.text)}**`
            : b.tone === 'muted'
              ? `_${mdText(b.text)}_`
              : mdText(b.text),
        );
        break;
      case 'list':
        for (const item of b.items) out.push(`- ${mdText(item)}`);
        break;
      case 'table':
        out.push(`| ${b.headers.map(mdText).join(' | ')} |`);
        out.push(`|${b.numeric.map((n) => (n ? ' ---: ' : ' --- ')).join('|')}|`);
        for (const r of b.rows) out.push(`| ${r.map((c) => mdText(c) || ' ').join(' | ')} |`);
        break;
      case 'chart':
        continue;
    }
    out.push('');
  }
  return `${out.join('\n').trimEnd()}\n`;
}

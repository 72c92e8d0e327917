import {
  type Alias,
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
  visit,
  type Document as YamlDocument,
} from 'yaml';

/**
 * Policy YAML read into a plain tree that remembers where each value came from. Validation then
 * works on this tree instead of on the yaml package's AST, with aliases resolved, `<<` merge keys
 * applied, duplicate keys found and expansion bounded in one place.
 */

export interface Loc {
  line: number;
  column: number;
}

export interface YamlEntry {
  key: string;
  keyLoc: Loc;
  value: YamlValue;
}

export type YamlValue =
  | { kind: 'map'; loc: Loc; entries: Map<string, YamlEntry> }
  | { kind: 'seq'; loc: Loc; items: YamlValue[] }
  | { kind: 'scalar'; loc: Loc; value: string | number | boolean | null; source: string }
  /** Something already reported as an issue (validation skips it instead of piling on). */
  | { kind: 'invalid'; loc: Loc };

export interface TreeIssue {
  path: string;
  loc: Loc | null;
  message: string;
}

/** Policy files are a few kilobytes; anything near this is a mistake or an attack. */
export const MAX_POLICY_BYTES = 1024 * 1024;
/**
 * Aliases can make a small file expand exponentially ("billion laughs"); the tree stops growing
 * past this many values, far above any real policy.
 */
const MAX_VALUES = 100_000;
const MAX_DEPTH = 64;

/** `roles.prod-deploy`, `roles["db read"]`, `notify[0]`: unambiguous even for odd keys. */
export function childPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  if (/^[A-Za-z0-9_-]+$/.test(key)) return parent === '' ? key : `${parent}.${key}`;
  return `${parent}[${JSON.stringify(key)}]`;
}

export function readYaml(text: string): { root: YamlValue | null; issues: TreeIssue[] } {
  const issues: TreeIssue[] = [];
  const lines = new LineCounter();
  let doc: YamlDocument.Parsed;
  try {
    doc = parseDocument(text, {
      lineCounter: lines,
      prettyErrors: false,
      // Duplicates are found below, with the path and both lines in the message.
      uniqueKeys: false,
      // `<<: *defaults` is the common way to share settings between roles.
      merge: true,
      strict: true,
      // Collect, never print (the default 'warn' may write to the console).
      logLevel: 'error',
    });
  } catch (err) {
    // The yaml package reports problems in doc.errors; a throw is a resource limit (deep nesting).
    return {
      root: null,
      issues: [{ path: '', loc: null, message: `cannot read YAML: ${(err as Error).message}` }],
    };
  }
  const locOf = (offset: number | undefined): Loc => {
    const { line, col } = lines.linePos(offset ?? 0);
    return { line: Math.max(1, line), column: Math.max(1, col) };
  };
  // The yaml package's own problems (syntax, bad escapes, unknown tags) come with positions.
  for (const e of [...doc.errors, ...doc.warnings]) {
    issues.push({ path: '', loc: locOf(e.pos[0]), message: yamlMessage(e.code, e.message) });
  }
  if (issues.length > 0) return { root: null, issues };
  if (doc.contents === null) return { root: null, issues };

  // Each alias's anchor, found in one pass in document order. The yaml package's Alias.resolve()
  // walks the whole document for every alias: 20,000 aliases took half a minute.
  const anchors = new Map<string, Node>();
  const aliasTargets = new Map<Alias, Node | undefined>();
  visit(doc, {
    Node(_key, node) {
      if (isAlias(node)) aliasTargets.set(node, anchors.get(node.source));
      else if (node.anchor) anchors.set(node.anchor, node);
    },
  });

  let values = 0;
  let exhausted = false;
  const active = new Set<Node>();

  const convert = (node: unknown, path: string, depth: number, site?: Loc): YamlValue => {
    const here = site ?? locOf((node as { range?: [number] } | null)?.range?.[0]);
    if (exhausted) return { kind: 'invalid', loc: here };
    if (++values > MAX_VALUES) {
      exhausted = true;
      issues.push({
        path,
        loc: here,
        message: `the file expands to more than ${MAX_VALUES} values (aliases nested too deep?)`,
      });
      return { kind: 'invalid', loc: here };
    }
    if (depth > MAX_DEPTH) {
      issues.push({ path, loc: here, message: `nested more than ${MAX_DEPTH} levels deep` });
      return { kind: 'invalid', loc: here };
    }
    if (node === null || node === undefined) {
      return { kind: 'scalar', loc: here, value: null, source: '' };
    }
    if (isAlias(node)) {
      const target = aliasTargets.get(node);
      if (!target) {
        issues.push({ path, loc: here, message: `alias \`*${node.source}\` has no anchor` });
        return { kind: 'invalid', loc: here };
      }
      if (active.has(target)) {
        issues.push({
          path,
          loc: here,
          message: `alias \`*${node.source}\` refers to a value that contains it`,
        });
        return { kind: 'invalid', loc: here };
      }
      // Report problems in an aliased value where it is used, not where it was anchored.
      return convert(target, path, depth + 1, here);
    }
    if (isScalar(node)) {
      const v = node.value;
      if (
        typeof v === 'string' ||
        typeof v === 'boolean' ||
        v === null ||
        (typeof v === 'number' && Number.isFinite(v))
      ) {
        return { kind: 'scalar', loc: here, value: v, source: node.source ?? String(v) };
      }
      issues.push({
        path,
        loc: here,
        message: node.tag
          ? `values tagged \`${node.tag}\` are not supported here`
          : 'this value is not supported here (use plain text, numbers and true/false)',
      });
      return { kind: 'invalid', loc: here };
    }
    if (isSeq(node)) {
      active.add(node);
      const items = node.items.map((item, i) => {
        if (isPair(item)) {
          issues.push({
            path: childPath(path, i),
            loc: here,
            message: 'key/value pairs in a list are not supported here',
          });
          return { kind: 'invalid', loc: here } as const;
        }
        return convert(item, childPath(path, i), depth + 1);
      });
      active.delete(node);
      return { kind: 'seq', loc: here, items };
    }
    if (isMap(node)) {
      active.add(node);
      const entries = new Map<string, YamlEntry>();
      const merges: { node: unknown; loc: Loc }[] = [];
      for (const pair of node.items) {
        const keyNode = pair.key as Node | null;
        const keyLoc = locOf(
          (keyNode as { range?: [number] } | null)?.range?.[0] ?? node.range?.[0],
        );
        if (isScalar(keyNode) && typeof keyNode.value === 'symbol') {
          merges.push({ node: pair.value, loc: keyLoc });
          continue;
        }
        const key = keyText(keyNode);
        if (key === undefined) {
          issues.push({ path, loc: keyLoc, message: 'keys must be plain text' });
          continue;
        }
        const at = childPath(path, key);
        const previous = entries.get(key);
        if (previous) {
          issues.push({
            path: at,
            loc: keyLoc,
            message: `duplicate key \`${key}\` (first at line ${previous.keyLoc.line})`,
          });
          continue;
        }
        entries.set(key, { key, keyLoc, value: convert(pair.value, at, depth + 1) });
      }
      // YAML merge keys: explicit keys win, then earlier merge sources over later ones.
      for (const merge of merges) {
        const source = convert(merge.node, path, depth + 1, merge.loc);
        const sources = source.kind === 'seq' ? source.items : [source];
        for (const s of sources) {
          if (s.kind === 'invalid') continue;
          if (s.kind !== 'map') {
            issues.push({
              path,
              loc: merge.loc,
              message: '`<<` merges mappings only (`<<: *defaults` or `<<: [*a, *b]`)',
            });
            continue;
          }
          for (const [key, entry] of s.entries) {
            if (!entries.has(key)) entries.set(key, entry);
          }
        }
      }
      active.delete(node);
      return { kind: 'map', loc: here, entries };
    }
    issues.push({ path, loc: here, message: 'this value is not supported here' });
    return { kind: 'invalid', loc: here };
  };

  const root = convert(doc.contents, '', 0);
  return { root, issues };
}

function keyText(node: Node | null): string | undefined {
  if (node === null) return '';
  if (!isScalar(node)) return undefined;
  const v = node.value;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) {
    return node.source ?? String(v);
  }
  return undefined;
}

/** The yaml package's messages, minus advice aimed at programmers using its API. */
function yamlMessage(code: string, message: string): string {
  if (code === 'MULTIPLE_DOCS')
    return 'a policy file holds one YAML document (found a second `---`)';
  if (code === 'TAG_RESOLVE_FAILED') return `${message} (custom tags are not supported)`;
  return message;
}

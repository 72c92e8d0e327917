import { ALL_TRANSITIONS, FINAL_STATES, MACHINES, type Transition } from './table.js';

/**
 * The lifecycle section of docs/architecture.md, printed from the transition table: a Mermaid
 * state diagram (GitHub and most Markdown viewers draw it) and the table itself. The markers let
 * `scripts/lifecycle-diagram.ts --write` replace the section, and a test compare it.
 */

const BEGIN = '<!-- lifecycle:begin';
export const BEGIN_MARK = `${BEGIN} (printed from src/server/requests/lifecycle/table.ts by scripts/lifecycle-diagram.ts) -->`;
export const END_MARK = '<!-- lifecycle:end -->';

const node = (s: string) => (s === 'new' || s === 'none' ? '[*]' : s);

function edges(transitions: readonly Transition[]): string[] {
  // One arrow per (from, to), labelled with the events that take it.
  const labels = new Map<string, string[]>();
  for (const t of transitions) {
    const key = `${node(t.from)} --> ${node(t.to)}`;
    const list = labels.get(key) ?? [];
    if (!list.includes(t.event)) list.push(t.event);
    labels.set(key, list);
  }
  return [...labels].map(([edge, events]) => `  ${edge} : ${events.join(', ')}`);
}

function machineSection(title: string, transitions: readonly Transition[]): string[] {
  const finals = FINAL_STATES.filter((s) => transitions.some((t) => t.to === s));
  return [
    `#### ${title}`,
    '',
    '```mermaid',
    'stateDiagram-v2',
    ...edges(transitions),
    ...finals.map((s) => `  ${s} --> [*]`),
    '```',
    '',
    '| transition | from | event | to | who | when | audit events |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...transitions.map(
      (t) =>
        `| \`${t.id}\` | ${t.from} | ${t.event} | ${t.to} | ${t.who} | ${t.when.replace(/\|/g, '\\|')} | ${t.audit.map((a) => `\`${a}\``).join(', ')} |`,
    ),
    '',
  ];
}

export function renderLifecycle(transitions: readonly Transition[] = ALL_TRANSITIONS): string {
  const lines = [BEGIN_MARK, ''];
  for (const { machine, title } of MACHINES) {
    const mine = transitions.filter((t) => t.machine === machine);
    if (mine.length > 0) lines.push(...machineSection(title, mine));
  }
  lines.push(
    `Final states of a request: ${FINAL_STATES.join(', ')}. No event leaves them; a break-glass`,
    'grant is still reviewed afterwards when its window is over.',
    '',
    END_MARK,
  );
  return lines.join('\n');
}

/** `doc` with its lifecycle section replaced by `section`; throws when the markers are missing. */
export function replaceSection(doc: string, section: string): string {
  const start = doc.indexOf(BEGIN);
  const end = doc.indexOf(END_MARK);
  if (start === -1 || end === -1 || end < start) {
    throw new Error('the lifecycle markers are missing from the document');
  }
  return doc.slice(0, start) + section + doc.slice(end + END_MARK.length);
}

/** The lifecycle section currently in `doc`, or undefined. */
export function sectionOf(doc: string): string | undefined {
  const start = doc.indexOf(BEGIN);
  const end = doc.indexOf(END_MARK);
  if (start === -1 || end === -1 || end < start) return undefined;
  return doc.slice(start, end + END_MARK.length);
}

import type { AccessReview, AccessReviewItem } from '../api/governance.js';
import type { Context } from '../cli/context.js';
import { ExitCode, UsageError } from '../cli/errors.js';
import { printJson, safe, table } from '../cli/output.js';

/**
 * `jitctl access-review start|list|show|decide|close` (docs/governance.md "Access reviews"):
 * auditors and admins open a campaign over roles; its reviewers decide keep or remove for each
 * policy entry, pipeline and person; a removal stops that access at the broker at once; closing
 * lists the policy edits that make the removals last.
 */
export interface Options {
  action: 'start' | 'list' | 'show' | 'decide' | 'close';
  server?: string | undefined;
  store?: string | undefined;
  json?: boolean | undefined;
  id?: string | undefined;
  // start
  role?: string[] | undefined;
  all?: boolean | undefined;
  reviewers?: string[] | undefined;
  due?: string | undefined;
  title?: string | undefined;
  // list
  state?: string | undefined;
  // decide
  item?: string | undefined;
  decision?: string | undefined;
  comment?: string | undefined;
}

const split = (values: string[] | undefined) =>
  (values ?? [])
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
const day = (iso: string | null) => (iso ? iso.slice(0, 10) : '-');

export async function run(options: Options, ctx: Context): Promise<number> {
  const body = checked(options);
  const [{ withConnection }, api] = await Promise.all([
    import('../cli/connect.js'),
    import('../client/governance.js'),
  ]);
  return withConnection(ctx, options, async ({ client }) => {
    switch (options.action) {
      case 'list': {
        const list = await api.listAccessReviews(
          client,
          options.state as 'open' | 'closed' | undefined,
        );
        if (options.json) printJson(ctx.io, list);
        else if (list.items.length === 0) ctx.io.err('no access reviews you may see\n');
        else
          ctx.io.out(
            table(
              ctx.io,
              ['id', 'state', 'due', 'roles', 'reviewers', 'decided', 'title'],
              list.items.map((c) => [
                c.id,
                c.overdue ? 'overdue' : c.state,
                day(c.due_at),
                safe(c.roles.join(', ')),
                safe(c.reviewers.join(', ')),
                `${c.progress.items - c.progress.undecided}/${c.progress.items}`,
                safe(c.title ?? ''),
              ]),
            ),
          );
        return ExitCode.Ok;
      }
      case 'start': {
        const c = await api.startAccessReview(client, body.start!);
        return show(ctx, options, c, `opened access review ${c.id}`);
      }
      case 'show':
        return show(ctx, options, await api.getAccessReview(client, options.id!));
      case 'decide': {
        const c = await api.decideAccessReview(client, options.id!, body.decide!);
        const item = c.items?.find((i) => i.n === body.decide!.item);
        if (options.json) printJson(ctx.io, c);
        else
          ctx.io.out(
            `${body.decide!.decision === 'remove' ? 'removed' : 'kept'}: item ${body.decide!.item} (${safe(item?.subject ?? '')} for ${safe(item?.role ?? '')})${body.decide!.decision === 'remove' ? '; in force at the broker now' : ''}\n` +
              `${c.progress.undecided} of ${c.progress.items} items undecided\n`,
          );
        return ExitCode.Ok;
      }
      case 'close': {
        const c = await api.closeAccessReview(client, options.id!);
        return show(ctx, options, c, `closed access review ${c.id}`);
      }
    }
  });
}

/** The usage errors the broker need not see, and the bodies it gets. */
function checked(o: Options): {
  start?: { roles?: string[]; all?: boolean; reviewers: string[]; due: string; title?: string };
  decide?: { item: number; decision: 'keep' | 'remove'; comment?: string };
} {
  if (o.action === 'start') {
    const roles = split(o.role);
    if (o.all && roles.length > 0) throw new UsageError('give --role or --all, not both');
    if (!o.all && roles.length === 0)
      throw new UsageError('name the roles to review', {
        hint: 'add --role R (repeatable) or --all',
      });
    const reviewers = split(o.reviewers);
    if (reviewers.length === 0)
      throw new UsageError('name who reviews', { hint: 'add --reviewers group:security' });
    return {
      start: {
        ...(o.all ? { all: true } : { roles }),
        reviewers,
        due: o.due ?? '14d',
        ...(o.title ? { title: o.title } : {}),
      },
    };
  }
  if (o.action === 'list' && o.state !== undefined && o.state !== 'open' && o.state !== 'closed')
    throw new UsageError(`--state ${JSON.stringify(safe(o.state))}: give open or closed`);
  if (o.action === 'decide') {
    if (!o.item || !/^\d{1,6}$/.test(o.item) || Number(o.item) < 1)
      throw new UsageError(`item ${JSON.stringify(safe(o.item ?? ''))}: give the item's number`, {
        hint: `\`jitctl access-review show ${safe(o.id ?? '<id>')}\` lists them`,
      });
    if (o.decision !== 'keep' && o.decision !== 'remove')
      throw new UsageError(
        `decision ${JSON.stringify(safe(o.decision ?? ''))}: give keep or remove`,
      );
    if (o.decision === 'remove' && !o.comment?.trim())
      throw new UsageError('a removal needs a comment saying why', { hint: 'add --comment "…"' });
    return {
      decide: {
        item: Number(o.item),
        decision: o.decision,
        ...(o.comment ? { comment: o.comment } : {}),
      },
    };
  }
  return {};
}

function decisionText(i: AccessReviewItem): string {
  if (!i.decision) return i.yours ? 'undecided (yours)' : 'undecided';
  const by = i.decided_by ? ` by ${i.decided_by.name ?? i.decided_by.sub}` : '';
  const lapsed = i.removal === 'lapsed' ? ' (lapsed: policy changed)' : '';
  return `${i.decision}${by}${lapsed}${i.comment ? `: ${i.comment}` : ''}`;
}

function show(ctx: Context, o: Options, c: AccessReview, headline?: string): number {
  if (o.json) {
    printJson(ctx.io, c);
    return ExitCode.Ok;
  }
  const lines = [
    ...(headline ? [headline] : []),
    `${c.id}${c.title ? `: ${safe(c.title)}` : ''}`,
    `state: ${c.state}${c.overdue ? ' (overdue)' : ''}; due ${day(c.due_at)}; roles ${safe(c.roles.join(', '))}; reviewers ${safe(c.reviewers.join(', '))}`,
    `decided: ${c.progress.items - c.progress.undecided} of ${c.progress.items} (${c.progress.kept} kept, ${c.progress.removed} removed)`,
    `page: ${c.link}`,
    '',
  ];
  ctx.io.out(`${lines.join('\n')}\n`);
  const items = c.items ?? [];
  if (items.length > 0)
    ctx.io.out(
      table(
        ctx.io,
        ['#', 'role', 'kind', 'subject', 'via', 'last used', 'uses 90d', 'decision'],
        items.map((i) => [
          String(i.n),
          safe(i.role),
          i.kind,
          safe(i.kind === 'person' && i.person ? `${i.subject} (${i.person.sub})` : i.subject),
          safe(i.via.join(', ') || (i.known !== null ? `${i.known} known` : '-')),
          day(i.last_used_at),
          String(i.uses),
          safe(decisionText(i)),
        ]),
      ),
    );
  const edits = c.edits ?? [];
  if (edits.length > 0) {
    ctx.io.out('\npolicy edits that make the removals last:\n');
    for (const e of edits)
      ctx.io.out(
        `  - [${e.where}] ${safe(e.role)}: ${safe(e.change)} (items ${e.items.join(', ')})\n`,
      );
  }
  if (c.can_decide && c.progress.undecided > 0)
    ctx.io.out(`\ndecide: jitctl access-review decide ${c.id} <#> keep|remove --comment "…"\n`);
  return ExitCode.Ok;
}

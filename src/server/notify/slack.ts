import { display, type Notice } from './message.js';

/**
 * A Slack incoming-webhook message (also understood by Mattermost and Rocket.Chat): Block Kit
 * `blocks` with the request's facts and a "Review" button linking to its page, and `text` as the
 * fallback that notifications and older clients show.
 *
 * Everything a requester or reviewer wrote goes through {@link mrkdwn}: Slack reads `<…>` as links
 * and mentions (`<!channel>`, `<@U123>`, `<https://evil|click here>`) and `&` as an entity, and
 * escaping those three is its documented way to show text literally. Control and bidi characters
 * are shown as escapes before that (message.ts), so a reason cannot rewrite the message around it.
 */

/** api.slack.com/reference/surfaces/formatting#escaping: only &, < and > need escaping. */
export function mrkdwn(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export interface SlackMessage {
  text: string;
  blocks: Record<string, unknown>[];
}

/** One line for chat: the fallback `text`, also carried by the standard JSON event. */
export function slackText(n: Notice): string {
  const id = n.requestId ? ` — ${mrkdwn(display(n.requestId, 64))}` : '';
  return `${n.priority === 'high' ? 'HIGH PRIORITY: ' : ''}${mrkdwn(n.headline)}${id}`;
}

/** Field text is at most 2,000 characters in Block Kit; ours are cut far below that. */
export function slackMessage(n: Notice): SlackMessage {
  const high = n.priority === 'high';
  const text = slackText(n);
  const field = (label: string, value: string | null | undefined, limit?: number) =>
    value ? [{ type: 'mrkdwn', text: `*${label}*\n${mrkdwn(display(value, limit))}` }] : [];
  const fields = [
    ...field('Role', n.role, 100),
    ...field('Requester', n.requester, 100),
    ...field('Duration', n.duration, 40),
    ...field('Ticket', n.ticket, 100),
    ...field('Reason', n.reason),
    ...field(n.decision === 'deny' ? 'Denied by' : 'By', n.reviewer, 100),
    ...field('Comment', n.comment),
    ...field('Ends', n.expiresAt, 40),
  ];
  const blocks: Record<string, unknown>[] = [
    {
      type: 'section',
      text: {
        type: 'mrkdwn',
        text: `${high ? ':rotating_light: *High priority*\n' : ''}*${mrkdwn(n.headline)}*`,
      },
    },
    { type: 'section', fields },
  ];
  if (n.link) {
    blocks.push({
      type: 'actions',
      elements: [
        {
          type: 'button',
          action_id: 'review',
          text: { type: 'plain_text', text: 'Review' },
          url: n.link,
          ...(n.type === 'request.created' || high ? { style: 'primary' } : {}),
        },
      ],
    });
  }
  blocks.push({
    type: 'context',
    elements: [
      {
        type: 'mrkdwn',
        text: `jitctl · ${mrkdwn(display(n.type, 60))}${n.requestId ? ` · ${mrkdwn(display(n.requestId, 64))}` : ''}`,
      },
    ],
  });
  return { text, blocks };
}

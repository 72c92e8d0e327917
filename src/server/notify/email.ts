import { hostname } from 'node:os';
import { Eta } from 'eta';
import type { Secret } from '../../api/secret.js';
import { display, type Notice } from './message.js';
import type { SmtpSettings } from './settings.js';

/**
 * Email through an SMTP relay (nodemailer). The HTML body comes from an auto-escaping template
 * (eta), so a reason such as `<script>` or `<a href=…>` arrives as text; the plain-text body is
 * plain text. Each message goes to one recipient (approvers do not see each other's addresses),
 * carries the review page's link and never a token.
 */

/** Why this address gets the message: said at the bottom of each email. */
export type EmailReason = 'approvers' | 'requester' | 'list' | 'security_contacts';

export interface RenderedEmail {
  subject: string;
  text: string;
  html: string;
}

const HTML = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title><%= it.subject %></title></head>
<body style="font-family: -apple-system, Segoe UI, Roboto, sans-serif; font-size: 15px; color: #1f2328">
<% if (it.high) { %><p style="color: #b00020; font-weight: bold">High priority</p>
<% } %><p style="font-size: 17px"><strong><%= it.headline %></strong></p>
<table role="presentation" cellpadding="4" style="border-collapse: collapse">
<% for (const f of it.facts) { %><tr><th align="left" valign="top" style="color: #59636e; font-weight: normal"><%= f.label %></th><td><%= f.value %></td></tr>
<% } %></table>
<% if (it.link) { %><p><a href="<%= it.link %>" style="display: inline-block; padding: 8px 16px; background: #1f6feb; color: #ffffff; text-decoration: none; border-radius: 6px"><%= it.action %></a></p>
<p style="color: #59636e; font-size: 13px"><%= it.link %></p>
<% } %><p style="color: #59636e; font-size: 13px"><%= it.why %></p>
</body>
</html>
`;

const eta = new Eta({ autoEscape: true, cache: true });
eta.loadTemplate('@email.html', HTML);

function facts(n: Notice): { label: string; value: string }[] {
  const out: { label: string; value: string }[] = [];
  const add = (label: string, value: string | null, limit?: number) => {
    if (value) out.push({ label, value: display(value, limit) });
  };
  add('Role', n.role, 100);
  add('Requester', n.requester, 100);
  add('Duration', n.duration, 40);
  add('Reason', n.reason);
  add('Ticket', n.ticket, 100);
  add(n.decision === 'deny' ? 'Denied by' : 'By', n.reviewer, 100);
  add('Comment', n.comment);
  add('Ends', n.expiresAt, 40);
  add('Request', n.requestId, 64);
  return out;
}

function why(n: Notice, reason: EmailReason): string {
  const role = display(n.role, 100);
  switch (reason) {
    case 'approvers':
      return role
        ? `You get this because you may approve requests for ${role}.`
        : 'You get this because you are asked to act on it.';
    case 'requester':
      return 'You get this because you filed this request.';
    case 'security_contacts':
      return 'You get this because this address is a security contact of the jitctl broker.';
    default:
      return `You get this because the broker's policy sends ${role ? `${role} ` : ''}notifications to this address.`;
  }
}

export function renderEmail(n: Notice, reason: EmailReason): RenderedEmail {
  const high = n.priority === 'high';
  // The headline is display-safe (no line breaks): it cannot add a header to the subject.
  const subject = display(`${high ? '[HIGH PRIORITY] ' : ''}${n.headline}`, 180);
  const what = n.requestId ? ' the request' : '';
  const action = `${reason === 'approvers' ? 'Review' : 'Open'}${what}`;
  const list = facts(n);
  const width = Math.max(...list.map((f) => f.label.length)) + 2;
  const text = [
    ...(high ? ['HIGH PRIORITY', ''] : []),
    n.headline,
    '',
    ...list.map((f) => `${`${f.label}:`.padEnd(width)}${f.value}`),
    '',
    ...(n.link ? [`${action}: ${n.link}`, ''] : []),
    '-- ',
    why(n, reason),
    '',
  ].join('\n');
  const html = eta.render('@email.html', {
    subject,
    high,
    headline: n.headline,
    facts: list,
    link: n.link,
    action,
    why: why(n, reason),
  });
  return { subject, text, html };
}

export interface MailOutcome {
  ok: boolean;
  /** Worth another try (connection trouble, a 4xx reply); a 5xx reply is permanent. */
  retry: boolean;
  /** An SMTP reply code or an error code: never the password, never the message. */
  detail: string;
}

export interface Mailer {
  send(
    to: string,
    mail: RenderedEmail,
    meta: { id: string; type: string; high: boolean },
  ): Promise<MailOutcome>;
  close(): void;
}

export async function createMailer(
  smtp: SmtpSettings,
  password: Secret | null,
  opts: { timeoutMs: number; domain: string },
): Promise<Mailer> {
  const { default: nodemailer } = await import('nodemailer');
  const transport = nodemailer.createTransport({
    host: smtp.host,
    port: smtp.port,
    secure: smtp.tls === 'tls',
    requireTLS: smtp.tls === 'starttls',
    ignoreTLS: smtp.tls === 'none',
    ...(smtp.user && password ? { auth: { user: smtp.user, pass: password.reveal() } } : {}),
    connectionTimeout: opts.timeoutMs,
    greetingTimeout: opts.timeoutMs,
    socketTimeout: opts.timeoutMs,
    name: hostname(),
    pool: true,
    maxConnections: 2,
    disableFileAccess: true,
    disableUrlAccess: true,
    logger: false,
  });
  const domain = /^[A-Za-z0-9.-]{1,253}$/.test(opts.domain) ? opts.domain : 'jitctl.invalid';
  return {
    async send(to, mail, meta) {
      try {
        await transport.sendMail({
          from: smtp.from,
          to,
          subject: mail.subject,
          text: mail.text,
          html: mail.html,
          // The same Message-ID on every attempt, so a relay or a mailbox can drop a duplicate.
          messageId: `<${meta.id}@${domain}>`,
          priority: meta.high ? 'high' : 'normal',
          headers: {
            // RFC 3834: out-of-office replies must not answer this.
            'Auto-Submitted': 'auto-generated',
            'X-Jitctl-Event': meta.type,
          },
        });
        return { ok: true, retry: false, detail: 'sent' };
      } catch (err) {
        const e = err as { responseCode?: number; code?: string };
        // A wrong password is fixed by an operator and a restart, not by the message: keep it.
        if (e.code === 'EAUTH')
          return { ok: false, retry: true, detail: 'smtp authentication failed' };
        if (typeof e.responseCode === 'number')
          return { ok: false, retry: e.responseCode < 500, detail: `smtp ${e.responseCode}` };
        return { ok: false, retry: true, detail: e.code ?? 'error' };
      }
    },
    close() {
      transport.close();
    },
  };
}

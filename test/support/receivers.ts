import { EventEmitter } from 'node:events';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { Webhook } from 'standardwebhooks';

/**
 * Real receivers for notification tests: an HTTP webhook receiver on 127.0.0.1 port 0 that
 * verifies Standard Webhooks signatures with the `standardwebhooks` library (as a user's receiver
 * would), and an SMTP server (smtp-server) that keeps every message it is given. Tests wait on
 * their events, never on time.
 */

export interface ReceivedHook {
  headers: IncomingHttpHeaders;
  raw: string;
  body: Record<string, unknown>;
  /** The signature checked out with the receiver's secret (false without a secret). */
  verified: boolean;
  /** What the receiver answered. */
  status: number;
}

export type Respond = (res: ServerResponse, n: number, hook: ReceivedHook) => void;

export interface WebhookReceiver {
  /** The URL to put in the policy: its path plays the part of a secret. */
  url: string;
  received: ReceivedHook[];
  respond: Respond;
  /** Resolves when `predicate` holds for what was received (checked on each arrival). */
  until(predicate: (r: ReceivedHook[]) => boolean, timeoutMs?: number): Promise<ReceivedHook[]>;
  close(): Promise<void>;
}

export const SECRET_PATH = '/hooks/T000/B000/s3cr3t-path-9f2c';

export const ok: Respond = (res) => res.writeHead(204).end();

export async function webhookReceiver(
  opts: { secret?: string; respond?: Respond } = {},
): Promise<WebhookReceiver> {
  const events = new EventEmitter();
  const received: ReceivedHook[] = [];
  const verifier = opts.secret ? new Webhook(opts.secret) : undefined;
  const self: WebhookReceiver = {
    url: '',
    received,
    respond: opts.respond ?? ok,
    until(predicate, timeoutMs = 20_000) {
      if (predicate(received)) return Promise.resolve(received);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          events.off('hook', check);
          reject(new Error(`webhook receiver: condition not met; got ${received.length} hooks`));
        }, timeoutMs);
        const check = () => {
          if (!predicate(received)) return;
          clearTimeout(timer);
          events.off('hook', check);
          resolve(received);
        };
        events.on('hook', check);
      });
    },
    close: async () => {},
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let verified = false;
      if (verifier) {
        try {
          verifier.verify(raw, req.headers as Record<string, string>);
          verified = true;
        } catch {}
      }
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(raw) as Record<string, unknown>;
      } catch {}
      const hook: ReceivedHook = { headers: req.headers, raw, body, verified, status: 0 };
      received.push(hook);
      const writeHead = res.writeHead.bind(res);
      res.writeHead = ((status: number, ...rest: unknown[]) => {
        hook.status = status;
        return (writeHead as (...a: unknown[]) => ServerResponse)(status, ...rest);
      }) as typeof res.writeHead;
      self.respond(res, received.length, hook);
      events.emit('hook');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  self.url = `http://127.0.0.1:${port}${SECRET_PATH}`;
  self.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return self;
}

export interface TestMail {
  from: string;
  to: string[];
  /** Header names lower-cased, values unfolded and decoded. */
  headers: Map<string, string>;
  subject: string;
  text: string;
  html: string;
  raw: string;
}

export interface SmtpSink {
  port: number;
  mails: TestMail[];
  /** The user name and password sessions authenticated with. */
  logins: { username: string; password: string }[];
  until(predicate: (m: TestMail[]) => boolean, timeoutMs?: number): Promise<TestMail[]>;
  close(): Promise<void>;
}

export async function smtpSink(opts: { user?: string; password?: string } = {}): Promise<SmtpSink> {
  const events = new EventEmitter();
  const mails: TestMail[] = [];
  const logins: SmtpSink['logins'] = [];
  const server = new SMTPServer({
    secure: false,
    hideSTARTTLS: true,
    authOptional: opts.user === undefined,
    allowInsecureAuth: true,
    logger: false,
    onAuth(auth, _session, cb) {
      logins.push({ username: auth.username ?? '', password: auth.password ?? '' });
      if (auth.username === opts.user && auth.password === opts.password)
        cb(null, { user: auth.username });
      else cb(new Error('invalid credentials'));
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        mails.push({
          ...parseMime(raw),
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw,
        });
        cb();
        events.emit('mail');
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    mails,
    logins,
    until(predicate, timeoutMs = 20_000) {
      if (predicate(mails)) return Promise.resolve(mails);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          events.off('mail', check);
          reject(new Error(`smtp sink: condition not met; got ${mails.length} messages`));
        }, timeoutMs);
        const check = () => {
          if (!predicate(mails)) return;
          clearTimeout(timer);
          events.off('mail', check);
          resolve(mails);
        };
        events.on('mail', check);
      });
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Just enough MIME for what nodemailer sends: headers, and a multipart/alternative body. */
function parseMime(raw: string): Pick<TestMail, 'headers' | 'subject' | 'text' | 'html'> {
  const { headers, body } = split(raw);
  const out = { headers, subject: headers.get('subject') ?? '', text: '', html: '' };
  const type = headers.get('content-type') ?? 'text/plain';
  const boundary = /boundary="?([^";]+)"?/i.exec(type)?.[1];
  const parts = boundary
    ? body
        .split(`--${boundary}`)
        .slice(1, -1)
        .map((p) => split(p.replace(/^\r\n/, '')))
    : [{ headers, body }];
  for (const part of parts) {
    const t = part.headers.get('content-type') ?? 'text/plain';
    const decoded = decodeBody(part.body, part.headers.get('content-transfer-encoding') ?? '7bit');
    if (t.startsWith('text/html')) out.html = decoded;
    else if (t.startsWith('text/plain')) out.text = decoded;
  }
  return out;
}

function split(text: string): { headers: Map<string, string>; body: string } {
  const at = text.indexOf('\r\n\r\n');
  const head = at === -1 ? text : text.slice(0, at);
  const body = at === -1 ? '' : text.slice(at + 4);
  const headers = new Map<string, string>();
  for (const line of head.replace(/\r\n[ \t]+/g, ' ').split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0)
      headers.set(line.slice(0, colon).toLowerCase(), decodeWords(line.slice(colon + 1).trim()));
  }
  return { headers, body };
}

function decodeBody(body: string, encoding: string): string {
  const e = encoding.toLowerCase();
  if (e === 'base64') return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  if (e === 'quoted-printable')
    return Buffer.from(
      body
        .replace(/=\r\n/g, '')
        .replace(/=([0-9A-F]{2})/gi, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16))),
      'latin1',
    ).toString('utf8');
  return body;
}

/** RFC 2047 encoded words (`=?UTF-8?Q?…?=`, `=?UTF-8?B?…?=`). */
function decodeWords(value: string): string {
  return value
    .replace(/\?=\s+=\?/g, '?==?')
    .replace(
      /=\?([^?]+)\?([QB])\?([^?]*)\?=/gi,
      (_, _charset: string, enc: string, text: string) =>
        enc.toUpperCase() === 'B'
          ? Buffer.from(text, 'base64').toString('utf8')
          : Buffer.from(
              text
                .replace(/_/g, ' ')
                .replace(/=([0-9A-F]{2})/gi, (__, h: string) =>
                  String.fromCharCode(Number.parseInt(h, 16)),
                ),
              'latin1',
            ).toString('utf8'),
    );
}

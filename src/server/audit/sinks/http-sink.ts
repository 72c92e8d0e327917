import type { Secret } from '../../../api/secret.js';
import type { ServerClock } from '../../clock.js';
import { postWebhook, type WebhookOutcome } from '../../notify/webhook.js';
import { itemTime, type SinkBatch, type SinkItem } from './items.js';
import type { HecSinkSpec, WebhookSinkSpec } from './settings.js';

/**
 * HTTP delivery of a sink's batch through the notification worker's webhook POST (timeouts,
 * redirects never followed, status codes and Retry-After read the same way):
 *
 * - `webhook`: one Standard Webhooks message per batch, signed with a secret of
 *   `webhook_secrets`; the body is `{"type": "audit.batch", "sink", "records": [...]}` and the
 *   `webhook-id` names the batch's range, the same on every retry of it;
 * - `splunk_hec`: the batch as HEC events (`{"time", "host", "source", "sourcetype", "index",
 *   "event"}`, one per line) with `Authorization: Splunk <token>`.
 */

export type HttpSinkSpec = WebhookSinkSpec | HecSinkSpec;

export interface HttpDelivery {
  spec: HttpSinkSpec;
  /** The webhook's signing secret, or the HEC token. */
  secret: Secret;
  /** The broker's public URL (HEC's `host` is its host name). */
  broker: string;
  timeoutMs: number;
  signal: AbortSignal;
  fetch: typeof globalThis.fetch;
  wallClock: ServerClock;
}

/** The `webhook-id` of a batch: the sink and the range it covers. */
export function batchId(name: string, from: { seq: number; checkpoint_seq: number }, b: SinkBatch) {
  return `audit_${name}_${from.seq + 1}-${b.to.seq}_${b.to.checkpoint_seq}`;
}

export async function deliverHttp(
  d: HttpDelivery,
  from: { seq: number; checkpoint_seq: number },
  batch: SinkBatch,
  records: readonly Record<string, unknown>[],
): Promise<WebhookOutcome> {
  const id = batchId(d.spec.name, from, batch);
  const timestamp = Math.floor(d.wallClock.now() / 1000);
  if (d.spec.kind === 'webhook') {
    return postWebhook({
      url: d.spec.url,
      body: JSON.stringify({ type: 'audit.batch', sink: d.spec.name, records }),
      id,
      secret: d.secret,
      timestamp,
      timeoutMs: d.timeoutMs,
      signal: d.signal,
      fetch: d.fetch,
    });
  }
  const spec = d.spec;
  const host = new URL(d.broker).hostname;
  const body = batch.items
    .map((item: SinkItem, i) =>
      JSON.stringify({
        time: itemTime(item) / 1000,
        host,
        source: 'jitctl',
        sourcetype:
          spec.sourcetype ?? (spec.format === 'ocsf' ? 'jitctl:audit:ocsf' : 'jitctl:audit'),
        ...(spec.index ? { index: spec.index } : {}),
        event: records[i],
      }),
    )
    .join('\n');
  return postWebhook({
    url: spec.url,
    body,
    id,
    secret: null,
    timestamp,
    timeoutMs: d.timeoutMs,
    signal: d.signal,
    fetch: d.fetch,
    headers: { authorization: `Splunk ${d.secret.reveal()}` },
  });
}

/**
 * Prometheus metrics in the text exposition format (version 0.0.4), written by hand: a handful of
 * counters and one histogram do not justify a dependency. Label values are escaped per the format;
 * route labels are route templates (`/v1/requests/:id`), never raw URLs, so cardinality stays
 * bounded whatever clients send.
 */

type Labels = Record<string, string>;

function labelKey(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map(
      (k) =>
        `${k}="${String(labels[k]).replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`,
    )
    .join(',');
}

class Counter {
  readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(labels: Labels = {}, by = 1): void {
    const key = labelKey(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }
  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} counter\n`;
    if (this.values.size === 0) out += `${this.name} 0\n`;
    for (const [k, v] of this.values) out += `${this.name}${k ? `{${k}}` : ''} ${v}\n`;
    return out;
  }
}

class Histogram {
  readonly series = new Map<string, { buckets: number[]; sum: number; count: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly bounds: number[],
  ) {}
  observe(labels: Labels, value: number): void {
    const key = labelKey(labels);
    let s = this.series.get(key);
    if (!s) {
      s = { buckets: this.bounds.map(() => 0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    for (let i = 0; i < this.bounds.length; i++) if (value <= this.bounds[i]!) s.buckets[i]!++;
    s.sum += value;
    s.count++;
  }
  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} histogram\n`;
    for (const [k, s] of this.series) {
      const sep = k ? `${k},` : '';
      this.bounds.forEach((b, i) => {
        out += `${this.name}_bucket{${sep}le="${b}"} ${s.buckets[i]}\n`;
      });
      out += `${this.name}_bucket{${sep}le="+Inf"} ${s.count}\n`;
      out += `${this.name}_sum${k ? `{${k}}` : ''} ${s.sum}\n`;
      out += `${this.name}_count${k ? `{${k}}` : ''} ${s.count}\n`;
    }
    return out;
  }
}

export class Metrics {
  readonly httpRequests = new Counter(
    'jitctl_http_requests_total',
    'HTTP requests answered, by method, route template and status code.',
  );
  readonly httpDuration = new Histogram(
    'jitctl_http_request_duration_seconds',
    'Time to answer HTTP requests (long polls included), by method and route template.',
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  );
  readonly requestsCreated = new Counter(
    'jitctl_requests_created_total',
    'Access requests filed, by role.',
  );
  readonly transitions = new Counter(
    'jitctl_request_transitions_total',
    'Request state changes, by the state entered (approved, denied, cancelled, expired, revoked).',
  );
  readonly reviews = new Counter('jitctl_reviews_total', 'Reviews recorded, by decision.');
  readonly mints = new Counter('jitctl_credentials_minted_total', 'Credentials minted, by role.');
  readonly auditAppends = new Counter(
    'jitctl_audit_events_appended_total',
    'Audit events committed, by type.',
  );
  readonly auditFailures = new Counter(
    'jitctl_audit_append_failures_total',
    'Changes refused because the audit log could not record them (fail closed).',
  );
  readonly authFailures = new Counter(
    'jitctl_auth_failures_total',
    'Requests refused for a missing, invalid or insufficient token, by error code.',
  );
  readonly rateLimited = new Counter(
    'jitctl_rate_limited_total',
    'Requests refused with 429 by a rate limit, by door (reads, writes, token, public, auth_failures).',
  );
  // Notifications (src/server/notify/): what was delivered, retried, given up, and the backlog.
  readonly notificationsSent = new Counter(
    'jitctl_notifications_sent_total',
    'Notifications delivered, by channel (webhook, email) and event type.',
  );
  readonly notificationsRetried = new Counter(
    'jitctl_notifications_retried_total',
    'Failed notification attempts that will be tried again, by channel.',
  );
  readonly notificationsFailed = new Counter(
    'jitctl_notifications_failed_total',
    'Notifications given up (refused for good, or still failing when their retry time ran out), by channel.',
  );
  readonly notificationsDropped = new Counter(
    'jitctl_notifications_dropped_total',
    'Notifications not sent because they no longer applied (the reminder of a revoked grant, a target removed from the settings), by reason.',
  );
  /** Updated by the notification worker; read at each scrape. */
  readonly notificationQueue = { depth: 0, oldestAgeSeconds: 0 };
  readonly limitRefusals = new Counter(
    'jitctl_request_limit_refusals_total',
    'Requests refused with 429 by a per-person limit (max_pending, break_glass_per_week), by limit and role.',
  );
  // Audit streaming (src/server/audit/): sinks' deliveries, failures and lag; checkpoints.
  readonly auditSinkDelivered = new Counter(
    'jitctl_audit_sink_events_delivered_total',
    'Audit events delivered to a sink, by sink (at least once: a retried batch counts again).',
  );
  readonly auditSinkFailures = new Counter(
    'jitctl_audit_sink_failures_total',
    'Failed delivery attempts of an audit sink, by sink (each is retried: sinks never give up).',
  );
  readonly auditCheckpoints = new Counter(
    'jitctl_audit_checkpoints_total',
    'Audit checkpoints this replica signed and stored.',
  );
  /** Updated by the sink worker every few seconds; read at each scrape. */
  readonly auditSinkLag = new Map<string, { events: number; seconds: number }>();
  readonly #started = Date.now() / 1000;

  constructor(private readonly gauges: { longPolls: () => number } = { longPolls: () => 0 }) {}

  #renderSinkLag(): string {
    const name = (n: string) => n.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
    let events =
      '# HELP jitctl_audit_sink_lag_events Audit events appended and not yet delivered to the sink.\n# TYPE jitctl_audit_sink_lag_events gauge\n';
    let seconds =
      '# HELP jitctl_audit_sink_lag_seconds Age of the oldest audit event not yet delivered to the sink (0 when caught up).\n# TYPE jitctl_audit_sink_lag_seconds gauge\n';
    for (const [sink, lag] of this.auditSinkLag) {
      events += `jitctl_audit_sink_lag_events{sink="${name(sink)}"} ${lag.events}\n`;
      seconds += `jitctl_audit_sink_lag_seconds{sink="${name(sink)}"} ${lag.seconds}\n`;
    }
    return events + seconds;
  }

  render(): string {
    const mem = process.memoryUsage();
    return [
      this.httpRequests.render(),
      this.httpDuration.render(),
      this.requestsCreated.render(),
      this.transitions.render(),
      this.reviews.render(),
      this.mints.render(),
      this.auditAppends.render(),
      this.auditFailures.render(),
      this.authFailures.render(),
      this.rateLimited.render(),
      this.notificationsSent.render(),
      this.notificationsRetried.render(),
      this.notificationsFailed.render(),
      this.notificationsDropped.render(),
      '# HELP jitctl_notification_queue_depth Notifications due and not yet delivered (retries included), in the whole database.\n# TYPE jitctl_notification_queue_depth gauge\n' +
        `jitctl_notification_queue_depth ${this.notificationQueue.depth}\n`,
      '# HELP jitctl_notification_queue_oldest_seconds Age of the oldest notification due and not yet delivered (0 when none).\n# TYPE jitctl_notification_queue_oldest_seconds gauge\n' +
        `jitctl_notification_queue_oldest_seconds ${this.notificationQueue.oldestAgeSeconds}\n`,
      this.limitRefusals.render(),
      this.auditSinkDelivered.render(),
      this.auditSinkFailures.render(),
      this.auditCheckpoints.render(),
      this.#renderSinkLag(),
      '# HELP jitctl_long_polls_waiting Long polls waiting for a change right now.\n# TYPE jitctl_long_polls_waiting gauge\n' +
        `jitctl_long_polls_waiting ${this.gauges.longPolls()}\n`,
      '# HELP process_start_time_seconds Start time of the process since the epoch in seconds.\n# TYPE process_start_time_seconds gauge\n' +
        `process_start_time_seconds ${this.#started}\n`,
      '# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\n' +
        `process_resident_memory_bytes ${mem.rss}\n`,
      '# HELP nodejs_heap_used_bytes V8 heap in use in bytes.\n# TYPE nodejs_heap_used_bytes gauge\n' +
        `nodejs_heap_used_bytes ${mem.heapUsed}\n`,
    ].join('');
  }
}

import type { AuditEvent, Identity } from './schemas.js';
import { VERSION } from './version.js';

/**
 * Audit events as OCSF (Open Cybersecurity Schema Framework) events, for `jitctl audit tail
 * --format ocsf` and the broker's sinks with `format: ocsf`. One pure function shared by both,
 * mapped against the released schema 1.8.0 (github.com/ocsf/ocsf-schema, tag 1.8.0):
 *
 * - a request, a review and a signing key are managed entities: Entity Management (3004);
 * - a grant starting and ending changes what a person may do: User Access Management (3005),
 *   Assign Privileges / Revoke Privileges, with the role as the privilege;
 * - a credential minted is a session given the role's privileges: Authorize Session (3003);
 * - a pipeline's token exchange is a sign-in: Authentication (3002), Logon;
 * - an event type this version does not know: Base Event (0), so a newer broker's events still
 *   stream (its type is in `metadata.event_code`, its data in `unmapped`).
 *
 * API Activity (6003) is not used: it requires `src_endpoint`, and the audit log records no
 * client addresses. The chain (`seq`, `prev_hash`, `hash`) and the event's own data ride in
 * `unmapped`, `metadata.uid` is the event's hash and `metadata.sequence` its seq, so an OCSF
 * stream can be deduplicated and checked against the log. docs/operations.md has the table.
 */

export const OCSF_VERSION = '1.8.0';

/** What the audit event does not repeat: the request's role and requester (from its filing). */
export interface RequestContext {
  role: string;
  requester: Identity;
}

export interface OcsfOptions {
  /** The broker's public URL: the service pipelines sign in to, and the session issuer. */
  broker?: string | undefined;
  /** The request of `event.request_id`, when known. */
  request?: RequestContext | undefined;
}

interface OcsfClass {
  class_uid: number;
  class_name: string;
  category_uid: number;
  category_name: string;
}

const IAM = { category_uid: 3, category_name: 'Identity & Access Management' };
const AUTHENTICATION: OcsfClass = { class_uid: 3002, class_name: 'Authentication', ...IAM };
const AUTHORIZE_SESSION: OcsfClass = { class_uid: 3003, class_name: 'Authorize Session', ...IAM };
const ENTITY_MANAGEMENT: OcsfClass = { class_uid: 3004, class_name: 'Entity Management', ...IAM };
const USER_ACCESS: OcsfClass = { class_uid: 3005, class_name: 'User Access Management', ...IAM };
const PROCESS_ACTIVITY: OcsfClass = {
  class_uid: 1007,
  class_name: 'Process Activity',
  category_uid: 1,
  category_name: 'System Activity',
};
const BASE_EVENT: OcsfClass = {
  class_uid: 0,
  class_name: 'Base Event',
  category_uid: 0,
  category_name: 'Uncategorized',
};

export interface OcsfMapping {
  cls: OcsfClass;
  activity_id: number;
  activity_name: string;
}

const m = (cls: OcsfClass, activity_id: number, activity_name: string): OcsfMapping => ({
  cls,
  activity_id,
  activity_name,
});

/**
 * Each audit event type's class and activity. `request.expired` depends on what expired (a
 * pending request lapsing is an update of the request; an approved window ending takes the role
 * away), so it has two entries; {@link ocsfMappingOf} picks by the event's `data.from`.
 */
export const OCSF_MAPPINGS = {
  'request.created': m(ENTITY_MANAGEMENT, 1, 'Create'),
  'review.recorded': m(ENTITY_MANAGEMENT, 3, 'Update'),
  'request.approved': m(USER_ACCESS, 1, 'Assign Privileges'),
  'request.denied': m(ENTITY_MANAGEMENT, 3, 'Update'),
  'request.cancelled': m(ENTITY_MANAGEMENT, 3, 'Update'),
  'request.expired (pending)': m(ENTITY_MANAGEMENT, 3, 'Update'),
  'request.expired (approved)': m(USER_ACCESS, 2, 'Revoke Privileges'),
  'request.revoked': m(USER_ACCESS, 2, 'Revoke Privileges'),
  // The lifecycle: a scheduled grant starting and an extension approved give or keep privileges;
  // the rest (an extension asked, denied, withdrawn or lapsed; a break-glass use reviewed) are
  // updates of the request. Break-glass use itself takes privileges without approval.
  'request.activated': m(USER_ACCESS, 1, 'Assign Privileges'),
  'extension.requested': m(ENTITY_MANAGEMENT, 3, 'Update'),
  'extension.approved': m(USER_ACCESS, 1, 'Assign Privileges'),
  'extension.denied': m(ENTITY_MANAGEMENT, 3, 'Update'),
  'extension.cancelled': m(ENTITY_MANAGEMENT, 3, 'Update'),
  'extension.expired': m(ENTITY_MANAGEMENT, 3, 'Update'),
  'break_glass.used': m(USER_ACCESS, 1, 'Assign Privileges'),
  'break_glass.acknowledged': m(ENTITY_MANAGEMENT, 3, 'Update'),
  'break_glass.flagged': m(ENTITY_MANAGEMENT, 3, 'Update'),
  'break_glass.overdue': m(ENTITY_MANAGEMENT, 3, 'Update'),
  'credential.minted': m(AUTHORIZE_SESSION, 1, 'Assign Privileges'),
  'session.exchanged': m(AUTHENTICATION, 1, 'Logon'),
  'key.created': m(ENTITY_MANAGEMENT, 1, 'Create'),
  'key.rotated': m(ENTITY_MANAGEMENT, 3, 'Update'),
  'key.retired': m(ENTITY_MANAGEMENT, 9, 'Disable'),
  // Access reviews: a campaign is a managed entity; decisions, close, reminder and overdue update it.
  'access_review.started': m(ENTITY_MANAGEMENT, 1, 'Create'),
  'access_review.decided': m(ENTITY_MANAGEMENT, 3, 'Update'),
  'access_review.closed': m(ENTITY_MANAGEMENT, 3, 'Update'),
  'access_review.reminder': m(ENTITY_MANAGEMENT, 3, 'Update'),
  'access_review.overdue': m(ENTITY_MANAGEMENT, 3, 'Update'),
  'command.started': m(PROCESS_ACTIVITY, 1, 'Launch'),
  'command.ended': m(PROCESS_ACTIVITY, 2, 'Terminate'),
  'audit.checkpoint': m(BASE_EVENT, 99, 'Other'),
  '(any other type)': m(BASE_EVENT, 99, 'Other'),
} as const satisfies Record<string, OcsfMapping>;

export function ocsfMappingOf(type: string, data: Record<string, unknown>): OcsfMapping {
  if (type === 'request.expired')
    return OCSF_MAPPINGS[
      data.from === 'approved' ? 'request.expired (approved)' : 'request.expired (pending)'
    ];
  const known = OCSF_MAPPINGS as Record<string, OcsfMapping>;
  return Object.hasOwn(known, type) && !type.startsWith('(')
    ? known[type]!
    : OCSF_MAPPINGS['(any other type)'];
}

type Json = Record<string, unknown>;

const text = (v: unknown): string | undefined =>
  typeof v === 'string' && v !== '' ? v : undefined;
const time = (v: unknown): number | undefined => {
  const t = typeof v === 'string' ? Date.parse(v) : Number.NaN;
  return Number.isNaN(t) ? undefined : t;
};

/** An identity as an OCSF User: `uid` the subject, `domain` the issuer that vouches for it. */
function user(i: Identity, type?: 'service'): Json {
  return {
    uid: i.sub,
    name: i.name ?? i.sub,
    domain: i.iss,
    type_id: type === 'service' ? 4 : 1,
    type: type === 'service' ? 'Service' : 'User',
  };
}

/** Who caused it: a person or pipeline, or the broker itself (expiry, automatic retirement). */
function actorOf(e: AuditEvent): Json {
  return e.actor ? { user: user(e.actor) } : { app_name: 'jitctl broker' };
}

function withoutUndefined(o: Json): Json {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

/** The OCSF event for one audit event. Never throws for an unknown type or missing data. */
export function toOcsf(e: AuditEvent, opts: OcsfOptions = {}): Json {
  const map = ocsfMappingOf(e.type, e.data);
  const cls = map.cls;
  const at = Date.parse(e.at);
  const req = opts.request;
  const role = req?.role ?? text(e.data.role);
  const requestEntity = e.request_id
    ? withoutUndefined({
        uid: e.request_id,
        name: role ? `access request for ${role}` : 'access request',
        type: 'Access Request',
      })
    : undefined;
  const base: Json = {
    class_uid: cls.class_uid,
    class_name: cls.class_name,
    category_uid: cls.category_uid,
    category_name: cls.category_name,
    activity_id: map.activity_id,
    activity_name: map.activity_name,
    type_uid: cls.class_uid * 100 + map.activity_id,
    type_name: `${cls.class_name}: ${map.activity_name}`,
    time: at,
    severity_id: 1,
    severity: 'Informational',
    status_id: 1,
    status: 'Success',
    message: messageOf(e, role),
    metadata: withoutUndefined({
      version: OCSF_VERSION,
      product: withoutUndefined({
        name: 'jitctl',
        vendor_name: 'jitctl',
        version: VERSION,
        url_string: opts.broker,
      }),
      uid: e.hash,
      sequence: e.seq,
      event_code: e.type,
      correlation_uid: e.request_id ?? undefined,
      log_name: 'audit',
      original_time: e.at,
    }),
    actor: actorOf(e),
    unmapped: {
      seq: e.seq,
      prev_hash: e.prev_hash,
      hash: e.hash,
      type: e.type,
      request_id: e.request_id,
      data: e.data,
    },
  };

  // The class's own attributes.
  const requester = req?.requester;
  switch (cls) {
    case ENTITY_MANAGEMENT:
      if (e.type.startsWith('key.')) {
        base.entity = withoutUndefined({
          uid: text(e.data.kid) ?? 'unknown',
          name: `${text(e.data.alg) ?? ''} signing key`.trim(),
          type: 'Signing Key',
        });
        if (text(e.data.reason)) base.comment = e.data.reason;
      } else if (e.type.startsWith('access_review.')) {
        base.entity = withoutUndefined({
          uid: text(e.data.campaign_id) ?? 'unknown',
          name: text(e.data.title) ?? 'access review',
          type: 'Access Review',
        });
        if (text(e.data.comment)) base.comment = e.data.comment;
        base.status_detail = e.type.replace('.', ' ').replace('_', ' ');
      } else {
        base.entity = requestEntity ?? { name: 'access request', type: 'Access Request' };
        const comment = text(e.data.comment) ?? text(e.data.reason);
        if (comment) base.comment = comment;
        if (e.type === 'request.denied') base.status_detail = 'denied';
        if (e.type === 'request.cancelled') base.status_detail = 'cancelled';
        if (e.type === 'request.expired') base.status_detail = 'lapsed without a decision';
        if (e.type === 'review.recorded' && text(e.data.decision))
          base.status_detail = `review: ${String(e.data.decision)}`;
        // The lifecycle's updates say which: `extension requested`, `break_glass flagged`, …
        if (/^(extension|break_glass)\./.test(e.type))
          base.status_detail = e.type.replace('.', ' ');
      }
      break;
    case USER_ACCESS:
      base.user = user(requester ?? e.actor ?? { iss: '', sub: 'unknown', name: null });
      base.privileges = [role ?? 'unknown role'];
      if (requestEntity) base.resources = [requestEntity];
      break;
    case AUTHORIZE_SESSION:
      base.user = user(requester ?? e.actor ?? { iss: '', sub: 'unknown', name: null });
      base.privileges = [role ?? 'unknown role'];
      base.session = withoutUndefined({
        uid: text(e.data.jti),
        issuer: opts.broker,
        created_time: time(e.data.iat) ?? at,
        expiration_time: time(e.data.exp),
      });
      break;
    case PROCESS_ACTIVITY: {
      // A command run under a grant, as `jitctl exec`/`shell` reported it from the person's machine.
      const argv = Array.isArray(e.data.command)
        ? e.data.command.filter((a): a is string => typeof a === 'string')
        : [];
      base.device = withoutUndefined({
        hostname: text(e.data.host) ?? 'unknown',
        type_id: 0,
        type: 'Unknown',
      });
      base.process = withoutUndefined({
        name: argv[0] ?? (text(e.data.kind) === 'shell' ? 'shell' : 'command'),
        cmd_line: argv.length > 1 ? argv.join(' ') : undefined,
        created_time: time(e.data.started_at),
        terminated_time: time(e.data.ended_at),
        user: text(e.data.os_user) ? { name: e.data.os_user } : undefined,
      });
      if (typeof e.data.exit_code === 'number') base.exit_code = e.data.exit_code;
      if (text(e.data.ended_by)) base.status_detail = `ended: grant ${String(e.data.ended_by)}`;
      break;
    }
    case AUTHENTICATION:
      base.user = user(
        {
          iss: text(e.data.issuer) ?? e.actor?.iss ?? '',
          sub: text(e.data.subject) ?? e.actor?.sub ?? 'unknown',
          name: text(e.data.trusted_issuer) ?? e.actor?.name ?? null,
        },
        'service',
      );
      base.service = withoutUndefined({ name: 'jitctl broker', uid: opts.broker });
      base.auth_protocol_id = 6;
      base.auth_protocol = 'OAUTH 2.0';
      base.session = withoutUndefined({
        uid: text(e.data.jti),
        issuer: opts.broker,
        created_time: at,
        expiration_time: time(e.data.exp),
      });
      break;
  }
  return base;
}

function messageOf(e: AuditEvent, role: string | undefined): string {
  const who = e.actor ? (e.actor.name ?? e.actor.sub) : 'the broker';
  const what = e.request_id ? ` ${e.request_id}${role ? ` (${role})` : ''}` : '';
  const kid = e.type.startsWith('key.') && text(e.data.kid) ? ` ${String(e.data.kid)}` : '';
  return `${e.type}${what}${kid} by ${who}`;
}

/**
 * A checkpoint in an OCSF stream: a Base Event (no class describes a signed log digest) whose
 * `unmapped.checkpoint` holds the record, JWS included, so `jitctl audit verify --checkpoints`
 * finds it in an OCSF archive as in a JSON-lines one.
 */
export function checkpointToOcsf(
  c: { jws: string; seq: number; hash: string; signed_at: string; kid: string },
  opts: Pick<OcsfOptions, 'broker'> = {},
): Json {
  const map = OCSF_MAPPINGS['audit.checkpoint'];
  return {
    class_uid: map.cls.class_uid,
    class_name: map.cls.class_name,
    category_uid: map.cls.category_uid,
    category_name: map.cls.category_name,
    activity_id: map.activity_id,
    activity_name: map.activity_name,
    type_uid: map.cls.class_uid * 100 + map.activity_id,
    type_name: `${map.cls.class_name}: ${map.activity_name}`,
    time: Date.parse(c.signed_at),
    severity_id: 1,
    severity: 'Informational',
    status_id: 1,
    status: 'Success',
    message: `audit checkpoint: event ${c.seq} signed by key ${c.kid}`,
    metadata: withoutUndefined({
      version: OCSF_VERSION,
      product: withoutUndefined({
        name: 'jitctl',
        vendor_name: 'jitctl',
        version: VERSION,
        url_string: opts.broker,
      }),
      event_code: 'audit.checkpoint',
      log_name: 'audit',
    }),
    actor: { app_name: 'jitctl broker' },
    unmapped: { type: 'audit.checkpoint', checkpoint: c },
  };
}

import { type Static, Type } from '@sinclair/typebox';
import { Identity, Nullable, UseSettingsSchema } from './schemas.js';

// ---- revocation: the holder's grant check and the uses of a grant (a revocation's reason is
// read by routes/input.ts optionalTextBody, as the other optional texts are) ----

/**
 * `GET /v1/credential/status` (`Authorization: Bearer <credential>`): the grant a credential
 * belongs to, as its holder may know it. `active` is the grant's, not the token's: an expired
 * credential of an active grant is answered `active: true` (the CLI mints a fresh one).
 */
export const GrantStatus = Type.Object({
  active: Type.Boolean(),
  request_id: Type.String(),
  role: Type.String(),
  state: Type.String(),
  /** The grant's end (moves when it is extended). */
  expires_at: Type.String(),
  revoked: Nullable(
    Type.Object({
      at: Type.String(),
      by: Nullable(Identity),
      reason: Nullable(Type.String()),
    }),
  ),
  use: UseSettingsSchema,
});
export type GrantStatus = Static<typeof GrantStatus>;

/** `POST /v1/requests/:id/uses`: `jitctl exec`/`shell` report a command run under the grant. */
export const UseReport = Type.Object(
  {
    /** Random, the same for the start and the end of one command; a repeat is answered as done. */
    use_id: Type.String({ minLength: 8, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' }),
    event: Type.Union([Type.Literal('start'), Type.Literal('end')]),
    kind: Type.Union([Type.Literal('exec'), Type.Literal('shell')]),
    /** The credential handed to the command. */
    jti: Type.Optional(Type.String({ maxLength: 128 })),
    host: Type.String({ maxLength: 255 }),
    os_user: Type.String({ maxLength: 255 }),
    cwd: Type.String({ maxLength: 4096 }),
    /** As the role's `audit_commands` allows: absent (none), [program] (name), redacted argv (full). */
    command: Type.Optional(Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 256 })),
    started_at: Type.String({ maxLength: 40 }),
    ended_at: Type.Optional(Type.String({ maxLength: 40 })),
    exit_code: Type.Optional(Nullable(Type.Integer())),
    signal: Type.Optional(Nullable(Type.String({ maxLength: 16 }))),
    /** Why jitctl ended it, if it did: `revoked`, `expired`. */
    ended_by: Type.Optional(Nullable(Type.String({ maxLength: 32 }))),
    /** When the report was first written down because the broker could not be reached. */
    queued_at: Type.Optional(Type.String({ maxLength: 40 })),
  },
  { additionalProperties: false },
);
export type UseReport = Static<typeof UseReport>;

export const UseRecorded = Type.Object({
  /** False when this use and event had already been recorded (a repeated report). */
  recorded: Type.Boolean(),
});
export type UseRecorded = Static<typeof UseRecorded>;

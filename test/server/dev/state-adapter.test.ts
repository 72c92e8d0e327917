import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { createStateStore, STATE_FILE } from '../../../src/server/dev/state-adapter.js';

/** The dev identity provider's state file written by an earlier version, with session ids in clear. */

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it('rehashes session ids an earlier version stored in clear, and still finds the session', async () => {
  dir = mkdtempSync(join(tmpdir(), 'jitctl-idp-state-'));
  const id = 'clear-session-id-0123456789abcdef';
  const file = join(dir, STATE_FILE);
  writeFileSync(
    file,
    JSON.stringify({
      v: 1,
      models: {
        Session: { [id]: { payload: { jti: id, uid: 'u1', accountId: 'alice' }, exp: undefined } },
      },
    }),
  );
  const store = createStateStore(dir);
  await store.flush();
  const text = readFileSync(file, 'utf8');
  expect(text).not.toContain(id);
  const Adapter = store.Adapter as unknown as new (
    name: string,
  ) => {
    find(id: string): Promise<Record<string, unknown> | undefined>;
    findByUid(uid: string): Promise<Record<string, unknown> | undefined>;
  };
  const sessions = new Adapter('Session');
  expect(await sessions.find(id)).toMatchObject({ jti: id, uid: 'u1', accountId: 'alice' });
  expect(await sessions.findByUid('u1')).toMatchObject({ accountId: 'alice' });
  expect(await sessions.find('another-id')).toBeUndefined();
});

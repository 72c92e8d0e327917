import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, type ConfigInput, loadServerConfig } from '../../../src/server/config.js';

/** The review pages' settings (ui_*): defaults, checks, and a client secret that never prints. */

const dir = mkdtempSync(join(tmpdir(), 'jitctl-ui-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const REQUIRED = {
  policy: 'policy.yaml',
  oidc_issuer: 'https://idp.example.com/',
  oidc_client_id: 'jitctl',
};
const load = (input: Partial<ConfigInput>) =>
  loadServerConfig({ flags: {}, env: {}, cwd: dir, ...input });

describe('ui_* settings', () => {
  it('default to no web client and one-hour sessions', async () => {
    const c = await load({ flags: REQUIRED });
    expect(c.ui).toEqual({
      clientId: undefined,
      clientSecret: undefined,
      redirectUri: undefined,
      sessionTtlMs: 3_600_000,
    });
  });

  it('read the client from variables, and the secret never prints', async () => {
    const c = await load({
      flags: REQUIRED,
      env: {
        JITCTL_SERVER_UI_CLIENT_ID: 'jitctl-web',
        JITCTL_SERVER_UI_CLIENT_SECRET: 's3cret-value-of-the-web-client',
        JITCTL_SERVER_UI_REDIRECT_URI: 'https://jit.example.com/ui/auth/callback',
        JITCTL_SERVER_UI_SESSION_TTL: '30m',
      },
    });
    expect(c.ui.clientId).toBe('jitctl-web');
    expect(c.ui.clientSecret?.reveal()).toBe('s3cret-value-of-the-web-client');
    expect(c.ui.redirectUri).toBe('https://jit.example.com/ui/auth/callback');
    expect(c.ui.sessionTtlMs).toBe(1_800_000);
    const shown = `${JSON.stringify(c)} ${inspect(c, { depth: 5 })} ${String(c.ui.clientSecret)}`;
    expect(shown).not.toContain('s3cret-value');
  });

  it('refuse bad values with the key and the fix', async () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ JITCTL_SERVER_UI_SESSION_TTL: '1m' }, /UI_SESSION_TTL: must be between 5m and 1d, not 1m/],
      [{ JITCTL_SERVER_UI_SESSION_TTL: '2d' }, /must be between 5m and 1d, not 2d/],
      [{ JITCTL_SERVER_UI_SESSION_TTL: 'soon' }, /UI_SESSION_TTL: "soon" is not a duration/],
      [
        {
          JITCTL_SERVER_UI_CLIENT_ID: 'w',
          JITCTL_SERVER_UI_REDIRECT_URI: 'https://jit.example.com/cb',
        },
        /must end with \/ui\/auth\/callback/,
      ],
      [
        {
          JITCTL_SERVER_UI_CLIENT_ID: 'w',
          JITCTL_SERVER_UI_REDIRECT_URI: 'http://jit.example.com/ui/auth/callback',
        },
        /must use https/,
      ],
      [{ JITCTL_SERVER_UI_CLIENT_SECRET: 'x' }, /set ui_client_id too/],
    ];
    for (const [env, message] of cases) {
      await expect(load({ flags: REQUIRED, env })).rejects.toThrow(message);
    }
  });

  it('with --dev, the built-in provider registers the client: ui_client_* are refused', async () => {
    const err = await load({
      flags: { dev: true, data_dir: join(dir, 'dev') },
      env: { JITCTL_SERVER_UI_CLIENT_ID: 'mine' },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/--dev registers the review pages.*remove ui_client_id/);
    const ok = await load({
      flags: { dev: true, data_dir: join(dir, 'dev') },
      env: { JITCTL_SERVER_UI_SESSION_TTL: '15m' },
    });
    expect(ok.ui.sessionTtlMs).toBe(900_000);
  });

  it('takes them from the config file too, with a typo suggested', async () => {
    const file = join(dir, 'jitctl.yaml');
    writeFileSync(file, 'ui_client_id: jitctl-web\nui_sesion_ttl: 10m\n');
    await expect(load({ flags: REQUIRED, configFile: file })).rejects.toThrow(
      /unknown setting "ui_sesion_ttl"/,
    );
  });
});

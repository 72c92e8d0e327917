import { describe, expect, it } from 'vitest';
import { startTestBroker } from '../../support/broker.js';
import { CookieJar } from '../../support/dev-browser.js';
import { browse } from '../../support/pages.js';

/**
 * The review pages as deployed with a real identity provider (the test issuer): behind https
 * (the cookies, headers and form-action a TLS deployment gets), over plain http off loopback
 * (refused, saying why), and without a web client (saying what to configure).
 */

const MINIMAL_POLICY =
  'roles:\n  r:\n    requesters: [group:x]\n    approvers: [group:y]\n    max_duration: 1h\n    credential: { audience: https://a.example.com }\n';

describe('review pages behind https', () => {
  it('use __Host- cookies that are Secure, HSTS and upgrade-insecure-requests; the provider in form-action', async () => {
    const behindTls = await startTestBroker({
      policy: MINIMAL_POLICY,
      settings: {
        public_url: 'https://jit.example.com',
        ui_client_id: 'jitctl-web',
        ui_client_secret: 'web-client-secret',
      },
    });
    try {
      const r = await browse(new CookieJar(), `${behindTls.url}/ui/`);
      expect(r.status).toBe(303);
      const to = new URL(r.location!);
      expect(to.href.startsWith(`${behindTls.issuer.issuer}/auth?`)).toBe(true);
      expect(to.searchParams.get('redirect_uri')).toBe('https://jit.example.com/ui/auth/callback');
      expect(String(r.headers['set-cookie'])).toMatch(
        /^__Host-jitctl-signin=[\w.-]+; Max-Age=600; Path=\/; HttpOnly; Secure; SameSite=Lax$/,
      );
      expect(r.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
      const csp = String(r.headers['content-security-policy']);
      expect(csp).toContain('upgrade-insecure-requests');
      // The test issuer is another origin: a step-up's redirect after Approve must be allowed.
      const after = await browse(new CookieJar(), `${behindTls.url}/ui/style.css`);
      expect(String(after.headers['content-security-policy'])).toContain(
        `form-action 'self' ${new URL(behindTls.issuer.issuer).origin}`,
      );
      // A form from the broker's own listening address is not from its public origin.
      const forged = await browse(new CookieJar(), `${behindTls.url}/ui/sign-out`, {
        form: { _csrf: 'x' },
        headers: { origin: behindTls.url },
      });
      expect(forged.status).toBe(403);
    } finally {
      await behindTls.close();
    }
  });

  it('refuse to sign anyone in over plain http off loopback, and say why', async () => {
    const plainHttp = await startTestBroker({
      policy: MINIMAL_POLICY,
      settings: { public_url: 'http://jit.example.com', ui_client_id: 'jitctl-web' },
    });
    try {
      const r = await browse(new CookieJar(), `${plainHttp.url}/ui/`);
      expect(r.status).toBe(503);
      expect(r.text).toContain('The review pages need https: public_url is http://jit.example.com');
    } finally {
      await plainHttp.close();
    }
  });
});

describe('review pages without a web client', () => {
  it('say what to configure instead of failing', async () => {
    const plain = await startTestBroker({
      policy: MINIMAL_POLICY,
    });
    try {
      const r = await browse(new CookieJar(), `${plain.url}/ui/`);
      expect(r.status).toBe(503);
      expect(r.text).toContain('The review pages are not set up');
      expect(r.text).toContain('set ui_client_id and ui_client_secret');
      expect(r.text).toContain(`${plain.url}/ui/auth/callback`);
      const p = await browse(new CookieJar(), `${plain.url}/ui/requests/req_x/review`, {
        form: { decision: 'approve' },
        headers: { origin: plain.url },
      });
      expect(p.status).toBe(503);
    } finally {
      await plain.close();
    }
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DevUser } from '../../../src/server/dev/index.js';
import {
  browse,
  csrfOf,
  devIdToken,
  devUser,
  fileRequest,
  type PagesBroker,
  signInAt,
  startPagesBroker,
} from '../../support/pages.js';

/**
 * The auditors' governance pages over HTTP against the real broker (--dev): the access report
 * with its downloads (auditors only), and an access review started, decided and closed through
 * forms with their CSRF tokens, a removal refusing the person's next request at once.
 */

const alice = devUser('alice');
const lee = devUser('lee');
const ada = devUser('ada');

let b: PagesBroker;
beforeAll(async () => {
  b = await startPagesBroker();
});
afterAll(async () => {
  await b?.close();
});

const signedIn = (person: DevUser, path: string, mfa = false) => signInAt(b, person, path, mfa);

describe('the access report page', () => {
  it('shows auditors the report with charts and offers every format; nobody else', async () => {
    const id = await fileRequest(b, alice, { role: 'staging-admin', reason: 'report <b>page</b>' });
    expect(id).toMatch(/^req_/);
    const { jar, first } = await signedIn(ada, '/ui/reports?since=7d');
    expect(first.status).toBe(200);
    expect(first.html).toContain('<h1>Access report</h1>');
    expect(first.html).toContain('<svg');
    expect(first.html).not.toMatch(/<script|\sstyle=|\son\w+=/i);
    expect(first.html).toContain('href="/ui/reports/download?format=html&amp;since=7d"');
    const file = await browse(jar, `${b.url}/ui/reports/download?format=html&since=7d`);
    expect(file.status).toBe(200);
    expect(file.headers['content-disposition']).toMatch(
      /^attachment; filename="jitctl-report-\d{4}-\d\d-\d\d\.html"$/,
    );
    expect(file.headers['content-security-policy']).toMatch(
      /^default-src 'none'; style-src 'sha256-/,
    );
    expect(file.html).toMatch(/^<!DOCTYPE html>[\s\S]*<style>/);
    const csv = await browse(
      jar,
      `${b.url}/ui/reports/download?format=csv&since=7d&role=staging-admin`,
    );
    expect(csv.html).toContain('requests,staging-admin,,filed,1');
    const bad = await browse(jar, `${b.url}/ui/reports?since=soon`);
    expect(bad.status).toBe(400);
    expect(bad.html).toContain('class="problem"');
    const css = await browse(jar, `${b.url}/ui/style.css`);
    expect(css.html).toContain('.chart .grid');

    const other = await signedIn(alice, '/ui/reports');
    expect(other.first.status).toBe(403);
    expect(other.first.html).toContain('Only auditors and admins');
  });
});

describe('access reviews in the browser', () => {
  it('an auditor starts one, a reviewer removes a person, the removal refuses their next request', async () => {
    const id = await fileRequest(b, alice, { role: 'staging-admin', reason: 'before review' });
    // Lee approves it through the API, so Alice has used the role.
    const leeToken = await devIdToken(b.broker.dev!.issuer, lee, true);
    const approve = await fetch(`${b.url}/v1/requests/${id}/reviews`, {
      method: 'POST',
      headers: { authorization: `Bearer ${leeToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ decision: 'approve' }),
    });
    expect(approve.status).toBe(200);

    const auditor = await signedIn(ada, '/ui/access-reviews');
    expect(auditor.first.status).toBe(200);
    const started = await browse(auditor.jar, `${b.url}/ui/access-reviews`, {
      form: {
        _csrf: csrfOf(auditor.first.html),
        roles: 'staging-admin',
        reviewers: 'group:leads',
        due: '7d',
        title: 'Staging <review>',
      },
    });
    expect(started.status, started.html).toBe(303);
    const campaign = /\/ui\/access-reviews\/(ar_\w+)$/.exec(started.location!)![1]!;

    // Deciding is a review: a session without a fresh second factor is sent to sign in again.
    const weak = await signedIn(lee, `/ui/access-reviews/${campaign}`);
    const stepUp = await browse(weak.jar, `${b.url}/ui/access-reviews/${campaign}/decide`, {
      form: { _csrf: csrfOf(weak.first.html), item: '1', decision: 'keep' },
    });
    expect(stepUp.status).toBe(303);
    expect(stepUp.location).toMatch(new RegExp(`^${b.url}/idp/auth\\?.*claims=`));

    const reviewer = await signedIn(lee, `/ui/access-reviews/${campaign}`, true);
    expect(reviewer.first.status).toBe(200);
    expect(reviewer.first.html).toContain('Staging &lt;review&gt;');
    const item = /<li id="item-(\d+)"[^>]*>\s*<div><strong>Alice[^<]*<\/strong>/.exec(
      reviewer.first.html,
    );
    expect(item, reviewer.first.html).not.toBeNull();
    const decide = (form: Record<string, string>) =>
      browse(reviewer.jar, `${b.url}/ui/access-reviews/${campaign}/decide`, {
        form: { _csrf: csrfOf(reviewer.first.html), item: item![1]!, ...form },
      });
    const noComment = await decide({ decision: 'remove' });
    expect(noComment.status).toBe(400);
    expect(noComment.html).toContain('needs a comment');
    const forged = await browse(reviewer.jar, `${b.url}/ui/access-reviews/${campaign}/decide`, {
      form: { _csrf: 'forged', item: item![1]!, decision: 'keep' },
    });
    expect(forged.status).toBe(403);
    const removed = await decide({ decision: 'remove', comment: 'no longer on staging' });
    expect(removed.status).toBe(303);
    expect(removed.location).toBe(`/ui/access-reviews/${campaign}#item-${item![1]}`);

    await expect(
      fileRequest(b, alice, { role: 'staging-admin', reason: 'after review' }),
    ).rejects.toThrow(/access_removed.*no longer on staging/);

    // Alice may not read the campaign; the auditor sees the edit to make once it is closed.
    const outsider = await signedIn(alice, `/ui/access-reviews/${campaign}`);
    expect(outsider.first.status).toBe(403);
    const page = await browse(reviewer.jar, `${b.url}/ui/access-reviews/${campaign}`);
    const closed = await browse(reviewer.jar, `${b.url}/ui/access-reviews/${campaign}/close`, {
      form: { _csrf: csrfOf(page.html) },
    });
    expect(closed.status).toBe(303);
    const after = await browse(auditor.jar, `${b.url}/ui/access-reviews/${campaign}`);
    expect(after.html).toContain('<strong>Closed.</strong>');
    expect(after.html).toContain('remove Alice');
    expect(after.html).not.toContain('name="decision"');
  });
});

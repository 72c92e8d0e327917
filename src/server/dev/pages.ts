/**
 * The development identity provider's HTML: plain server-rendered forms with their buttons inside
 * the form, no JavaScript and no external resources, so that a person, a terminal browser, the
 * scripted tour and the tests (test/support/dev-browser.ts) can all complete them. Every value
 * that is not a literal of this file goes through {@link html}.
 */

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
  '`': '&#96;',
};

/** Escapes text for an HTML text node or a quoted attribute value. */
export function html(value: unknown): string {
  if (value === null || value === undefined) return '';
  return String(value).replace(/[&<>"'`]/g, (c) => ESCAPES[c] ?? c);
}

/**
 * Headers for every page: no framing (a sign-in form must not be clickjacked), no scripts at
 * all, and no caching of pages that carry per-interaction form tokens. `form-action` is left out
 * on purpose: Chromium applies it to the redirect chain after a submit, which ends at the CLI's
 * loopback port.
 */
export const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy':
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

const STYLE = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f4f5f7;color:#1d2430;margin:0}
main{max-width:26rem;margin:3rem auto;background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.15);padding:1.5rem 2rem}
h1{font-size:1.4rem;margin:0 0 1rem}
.dev{background:#fff4d6;color:#6b4e00;font-size:.85rem;padding:.5rem 1rem;text-align:center}
label{display:block;font-size:.9rem;margin:.8rem 0 .2rem}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;font-size:1rem;padding:.5rem;border:1px solid #b8bfca;border-radius:4px}
.code{font-family:ui-monospace,monospace;font-size:1.6rem;letter-spacing:.15em;text-align:center;margin:1rem 0}
.error{background:#fdecea;color:#8a1c12;padding:.6rem .8rem;border-radius:4px}
.note{color:#5b6472;font-size:.85rem}
.buttons{margin-top:1.2rem;display:flex;gap:.6rem}
button{font-size:1rem;padding:.5rem 1rem;border-radius:4px;border:1px solid #2456c7;background:#2f6fed;color:#fff;cursor:pointer}
button.secondary{background:#fff;color:#2456c7}
`;

function layout(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${html(title)} · jitctl dev</title>
<style>${STYLE}</style>
</head>
<body>
<div class="dev">jitctl development identity provider: demo users only, never use it in production</div>
<main>
<h1>${html(title)}</h1>
${body}
</main>
</body>
</html>
`;
}

const DEMO_HINT =
  '<p class="note">Demo users: alice and bob (developers), lee (leads), ada (auditors). ' +
  '`jitctl server --dev` prints their passwords and TOTP secrets.</p>';

export interface LoginPageInput {
  action: string;
  clientName: string;
  username: string;
  /** Shown above the form (already a plain sentence; escaped here). */
  error?: string | undefined;
  /** The request demands a one-time code (an essential `mfa` acr). */
  codeRequired: boolean;
  /** The person is signed in already and is asked to authenticate again (max_age, step-up). */
  again: boolean;
}

export function loginPage(p: LoginPageInput): string {
  const intro = p.codeRequired
    ? `<p><strong>${html(p.clientName)}</strong> needs a fresh sign-in with your one-time code.</p>`
    : p.again
      ? `<p><strong>${html(p.clientName)}</strong> asks you to sign in again.</p>`
      : `<p>Sign in to continue to <strong>${html(p.clientName)}</strong>.</p>`;
  const codeNote = p.codeRequired
    ? 'required for this step'
    : 'optional: give it to sign in with MFA';
  return layout(
    'Sign in',
    `${intro}
${p.error ? `<p class="error" role="alert">${html(p.error)}</p>` : ''}
<form method="post" action="${html(p.action)}" autocomplete="off">
<label for="username">Username</label>
<input type="text" id="username" name="username" value="${html(p.username)}" autocapitalize="none" spellcheck="false" required${p.username ? '' : ' autofocus'}>
<label for="password">Password</label>
<input type="password" id="password" name="password" required${p.username ? ' autofocus' : ''}>
<label for="otp">One-time code (${html(codeNote)})</label>
<input type="text" id="otp" name="otp" inputmode="numeric" pattern="[0-9 ]*" maxlength="8" autocomplete="one-time-code">
<div class="buttons">
<button type="submit" name="action" value="login">Sign in</button>
<button type="submit" name="action" value="abort" class="secondary" formnovalidate>Cancel</button>
</div>
</form>
${DEMO_HINT}`,
  );
}

/** oidc-provider hands over its own `<form>` (CSRF token included); the buttons go inside it. */
function withButtons(form: string, buttons: string): string {
  const end = form.lastIndexOf('</form>');
  if (end === -1) return form + buttons;
  return `${form.slice(0, end)}<div class="buttons">${buttons}</div>\n${form.slice(end)}`;
}

export function deviceInputPage(form: string, error: string | undefined): string {
  return layout(
    'Connect a device',
    `${error ? `<p class="error" role="alert">${html(error)}</p>` : '<p>Enter the code that jitctl shows in your terminal.</p>'}
${withButtons(form, '<button type="submit">Continue</button>')}`,
  );
}

export function deviceConfirmPage(form: string, clientName: string, userCode: string): string {
  return layout(
    'Confirm the code',
    `<p><strong>${html(clientName)}</strong> wants to sign in. Check that your terminal shows this code:</p>
<p class="code">${html(userCode)}</p>
<p class="note">If you did not run jitctl just now, or the code differs, cancel.</p>
${withButtons(form, '<button type="submit">Continue</button><button type="submit" name="abort" value="yes" class="secondary">Cancel</button>')}`,
  );
}

export function deviceSuccessPage(clientName: string): string {
  return layout(
    'Signed in',
    `<p>You are signed in to <strong>${html(clientName)}</strong>. You can close this page and return to the terminal.</p>`,
  );
}

export function messagePage(title: string, message: string): string {
  return layout(title, `<p>${html(message)}</p>`);
}

export function errorPage(fields: Record<string, unknown>): string {
  const rows = Object.entries(fields)
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `<p><strong>${html(k)}</strong>: ${html(v)}</p>`)
    .join('\n');
  return layout(
    'Sign-in problem',
    `<div class="error" role="alert">${rows}</div>
<p class="note">Return to the terminal and run the command again.</p>`,
  );
}

export function logoutPage(form: string, host: string): string {
  return layout(
    'Sign out',
    `<p>Sign out of the development identity provider at ${html(host)}?</p>
${withButtons(form, '<button type="submit" name="logout" value="yes">Sign out</button><button type="submit" class="secondary">Stay signed in</button>')}`,
  );
}

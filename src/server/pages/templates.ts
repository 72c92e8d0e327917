/**
 * The review pages' templates (Eta, registered by name in src/server/pages/index.ts). They live
 * in code rather than in .eta files so the bundled broker carries them without a copy step.
 *
 * Rules: `<%= %>` (escaped by Eta) for every value; the one raw output, `<%~ it.body %>`, is the
 * page a template rendered. Every form posts to the broker with its CSRF token; no inline script
 * or style (the CSP forbids both); every control has a label; buttons sit inside their form so
 * the pages work without JavaScript.
 */

import { LIFECYCLE_STYLE, LIFECYCLE_TEMPLATES } from './templates-lifecycle.js';

const layout = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title><%= it.title %> · jitctl</title>
<link rel="stylesheet" href="<%= it.base %>/ui/style.css">
</head>
<body>
<a class="skip" href="#main">Skip to the content</a>
<header class="top">
<a class="brand" href="<%= it.base %>/ui/">jitctl</a>
<% if (it.me) { %>
<form method="post" action="<%= it.base %>/ui/sign-out" class="signout">
<input type="hidden" name="_csrf" value="<%= it.csrf %>">
<span class="me">Signed in as <%= it.me %></span>
<button type="submit" class="link">Sign out</button>
</form>
<% } %>
</header>
<main id="main">
<%~ it.body %>
</main>
</body>
</html>
`;

const problem = `<% if (it.problem) { %>
<div class="problem" role="alert">
<p><strong><%= it.problem.message %></strong></p>
<% if (it.problem.hint) { %><p><%= it.problem.hint %></p><% } %>
</div>
<% } %>`;

const request = `<% layout('layout.eta') %>
<% const r = it.r %>
<h1>Request <span class="mono"><%= r.id %></span></h1>
<p class="status tone-<%= r.tone %>" role="status"><strong><%= r.stateLabel %>.</strong> <%= r.headline %></p>
${problem}
<%~ include('lifecycle-banner.eta', it) %>
<% if (it.confirm) { %>
<section class="confirm" aria-labelledby="confirm-title">
<h2 id="confirm-title">Confirm your decision</h2>
<p>You signed in again with your second factor. Nothing has been recorded yet: check the request below, then confirm.</p>
</section>
<% } %>
<dl class="facts">
<dt>Kind</dt>
<dd><%= it.life.kind %></dd>
<dt>Requester</dt>
<dd><%= r.requester.name ?? r.requester.sub %><% if (r.requester.name) { %> <span class="muted">(<%= r.requester.sub %>)</span><% } %><br><span class="muted small">identity provider <%= r.requester.iss %></span></dd>
<dt>Role</dt>
<dd><strong><%= r.role %></strong><% if (r.roleDescription) { %><br><span class="muted"><%= r.roleDescription %></span><% } %></dd>
<dt>Duration</dt>
<dd><%= r.duration %></dd>
<dt>Reason</dt>
<dd class="text"><%= r.reason ?? '-' %></dd>
<dt>Ticket</dt>
<dd><%= r.ticket ?? '-' %></dd>
<dt>Filed</dt>
<dd><time datetime="<%= r.filed.iso %>"><%= r.filed.text %></time> <span class="muted">(<%= r.filed.relative %>)</span></dd>
<% if (r.until) { %>
<dt><%= r.until.label %></dt>
<dd><time datetime="<%= r.until.at.iso %>"><%= r.until.at.text %></time> <span class="muted">(<%= r.until.at.relative %>)</span></dd>
<% } %>
<%~ include('lifecycle-facts.eta', it) %>
<dt>Approvals</dt>
<dd><%~ include('lifecycle-approvals.eta', it) %></dd>
<dt>Reviews</dt>
<dd><% if (r.reviews.length === 0) { %>none yet<% } else { %><ul class="reviews">
<% r.reviews.forEach(function (v) { %><li><%= v.who %> <strong><%= v.decision %></strong> at <time datetime="<%= v.at.iso %>"><%= v.at.text %></time><% if (v.comment) { %>: <q class="text"><%= v.comment %></q><% } %></li>
<% }) %></ul><% } %></dd>
<dt>Who may approve</dt>
<dd><%= it.life.whoMayApprove ?? (r.approvers.length ? r.approvers.join(' or ') : 'nobody') %></dd>
<dt>Fingerprint</dt>
<dd class="mono"><%= r.fingerprint %></dd>
</dl>
<% if (it.review) { %>
<form method="post" action="<%= it.base %>/ui/requests/<%= it.href %>/review" class="decide">
<input type="hidden" name="_csrf" value="<%= it.csrf %>">
<input type="hidden" name="fingerprint" value="<%= it.review.fingerprint %>">
<label for="comment">Comment <span class="muted">(<%= it.life.commentNote %>)</span></label>
<textarea id="comment" name="comment" maxlength="<%= it.review.maxComment %>" rows="3"<% if (it.life.commentRequired) { %> required<% } %>><%= it.review.comment %></textarea>
<div class="buttons">
<% it.review.buttons.forEach(function (b) { %><button type="submit" name="decision" value="<%= b.value %>" class="<%= b.className %>"><%= b.label %></button>
<% }) %></div>
</form>
<% } %>
<% if (it.note) { %><p class="note"><%= it.note %></p><% } %>
<%~ include('lifecycle-sections.eta', it) %>
<% if (it.canRevoke) { %>
<p><a class="button danger" href="<%= it.base %>/ui/requests/<%= it.href %>/revoke">Revoke…</a></p>
<% } %>
<% if (it.canCancel) { %>
<form method="post" action="<%= it.base %>/ui/requests/<%= it.href %>/cancel">
<input type="hidden" name="_csrf" value="<%= it.csrf %>">
<button type="submit" class="secondary">Withdraw this request</button>
</form>
<% } %>
<p class="back"><a href="<%= it.base %>/ui/">All requests</a></p>
`;

const revoke = `<% layout('layout.eta') %>
<% const r = it.r %>
<h1>Revoke <span class="mono"><%= r.id %></span>?</h1>
${problem}
<p><%= r.requester.name ?? r.requester.sub %> has <strong><%= r.role %></strong><% if (r.until) { %> until <time datetime="<%= r.until.at.iso %>"><%= r.until.at.text %></time> (<%= r.until.at.relative %>)<% } %>.</p>
<p>Revoking ends it now: the broker mints no more credentials for it, commands running under it with jitctl are ended, and systems that introspect or follow the revocation list refuse it at once; systems that only check signatures accept a credential already issued until it expires. This cannot be undone; a new request would need approval again.</p>
<form method="post" action="<%= it.base %>/ui/requests/<%= it.href %>/revoke">
<input type="hidden" name="_csrf" value="<%= it.csrf %>">
<label for="reason">Reason <span class="muted">(optional; the requester, relying parties and the audit log see it)</span></label>
<textarea id="reason" name="reason" maxlength="<%= it.maxReason %>" rows="2"></textarea>
<div class="buttons">
<button type="submit" class="danger">Revoke <%= r.id %></button>
<a class="button secondary" href="<%= it.base %>/ui/requests/<%= it.href %>">Keep it</a>
</div>
</form>
`;

const list = `<% if (it.items.length === 0) { %><p class="muted"><%= it.empty %></p><% } else { %>
<ul class="items">
<% it.items.forEach(function (i) { %><li>
<a href="<%= it.base %>/ui/requests/<%= encodeURIComponent(i.id) %>" class="mono"><%= i.id %></a>
<span class="pill tone-<%= i.tone %>"><%= i.state %></span>
<% if (i.flag) { %><span class="pill tone-<%= i.flag.tone %>"><%= i.flag.text %></span><% } %>
<div><strong><%= i.role %></strong> for <%= i.duration %> · <%= i.requester %> · filed <%= i.age %></div>
<% if (i.reason) { %><div class="muted text"><%= i.reason %></div><% } %>
<% if (i.detail) { %><div class="small"><%= i.detail %></div><% } %>
<% if (i.revocable) { %><div><a class="button danger small" href="<%= it.base %>/ui/requests/<%= encodeURIComponent(i.id) %>/revoke">Revoke…</a></div><% } %>
</li>
<% }) %></ul>
<% if (it.more) { %><p class="small muted">Showing the newest <%= it.items.length %>; <code><%= it.more %></code> lists them all.</p><% } %>
<% } %>`;

const home = `<% layout('layout.eta') %>
<h1>Access requests</h1>
${problem}
<%~ include('home-break-glass.eta', it) %>
<section aria-labelledby="review-title">
<h2 id="review-title">Waiting for your review</h2>
<%~ include('list.eta', it.review) %>
</section>
<%~ include('home-extensions.eta', it) %>
<section aria-labelledby="mine-title">
<h2 id="mine-title">Your requests</h2>
<%~ include('list.eta', it.mine) %>
</section>
<section aria-labelledby="grants-title">
<h2 id="grants-title">Active grants you may revoke</h2>
<%~ include('list.eta', it.grants) %>
</section>
<%~ include('home-scheduled.eta', it) %>
<% if (it.auditor) { %>
<section aria-labelledby="audit-title">
<h2 id="audit-title">Audit log</h2>
<p class="status tone-<%= it.auditor.tone %>"><%= it.auditor.summary %></p>
<p><a href="<%= it.base %>/ui/audit">Read the audit log</a></p>
<p><a href="<%= it.base %>/ui/reports">The access report</a> · <a href="<%= it.base %>/ui/access-reviews">Access reviews</a></p>
</section>
<% } %>
`;

const audit = `<% layout('layout.eta') %>
<h1>Audit log</h1>
<p class="status tone-<%= it.chain.tone %>" role="status"><%= it.chain.summary %></p>
<% if (it.chain.detail) { %><p class="small muted"><%= it.chain.detail %></p><% } %>
<p class="small">Events <%= it.from %>–<%= it.to %> of <%= it.head %>, oldest first.</p>
<nav class="pager" aria-label="Audit log pages">
<% if (it.earlier !== null) { %><a href="<%= it.base %>/ui/audit?after=<%= it.earlier %>">Earlier</a><% } %>
<% if (it.later !== null) { %><a href="<%= it.base %>/ui/audit?after=<%= it.later %>">Later</a><% } %>
<a href="<%= it.base %>/ui/audit">Latest</a>
</nav>
<ol class="events">
<% it.events.forEach(function (e) { %><li value="<%= e.seq %>">
<div><span class="mono"><%= e.seq %></span> <strong><%= e.type %></strong> <span class="muted small"><%= e.at %></span></div>
<div class="small"><%= e.actor %><% if (e.requestId) { %> · <a class="mono" href="<%= it.base %>/ui/requests/<%= encodeURIComponent(e.requestId) %>"><%= e.requestId %></a><% } %></div>
<div class="small mono data"><%= e.data %></div>
<div class="small muted mono">hash <%= e.hash %>…</div>
</li>
<% }) %></ol>
`;

const message = `<% layout('layout.eta') %>
<h1><%= it.heading %></h1>
${problem}
<% (it.paragraphs || []).forEach(function (p) { %><p><%= p %></p>
<% }) %>
<% if (it.action) { %><p><a class="button" href="<%= it.action.href %>"><%= it.action.label %></a></p><% } %>
`;

export const TEMPLATES: Readonly<Record<string, string>> = {
  'layout.eta': layout,
  'request.eta': request,
  'revoke.eta': revoke,
  'list.eta': list,
  'home.eta': home,
  'audit.eta': audit,
  'message.eta': message,
  ...LIFECYCLE_TEMPLATES,
};

/** The pages' stylesheet, served as /ui/style.css (the CSP allows styles from the broker only). */
export const STYLE = `:root{color-scheme:light;--fg:#1d2430;--muted:#5b6472;--line:#d9dde3;--bg:#f4f5f7;--card:#fff;--accent:#2456c7;--ok:#1f7a3d;--bad:#a4261c;--wait:#8a5a00}
*{box-sizing:border-box}
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg);margin:0}
.skip{position:absolute;left:-999px}.skip:focus{left:.5rem;top:.5rem;background:#fff;padding:.4rem;z-index:1}
.top{display:flex;flex-wrap:wrap;align-items:center;justify-content:space-between;gap:.5rem;background:#1d2430;color:#fff;padding:.6rem 1rem}
.top a,.top button.link{color:#fff}
.brand{font-weight:700;text-decoration:none}
.signout{display:flex;gap:.5rem;align-items:center;margin:0;font-size:.9rem}
main{max-width:46rem;margin:0 auto;padding:1rem}
h1{font-size:1.35rem;margin:.5rem 0 1rem;overflow-wrap:anywhere}
h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
a{color:var(--accent)}
:focus-visible{outline:3px solid #f5b400;outline-offset:2px}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;overflow-wrap:anywhere}
.muted{color:var(--muted)}.small{font-size:.875rem}
.text{white-space:pre-wrap;overflow-wrap:anywhere}
.status{padding:.7rem .9rem;border-radius:6px;border-left:5px solid var(--line);background:var(--card)}
.tone-pending{border-color:var(--wait)}.tone-approved{border-color:var(--ok)}.tone-ended,.tone-broken{border-color:var(--bad)}.tone-other{border-color:var(--muted)}
.problem{background:#fdecea;color:#6d1a12;border-radius:6px;padding:.2rem .9rem;margin:1rem 0}
.confirm{background:#fff6db;border-radius:6px;padding:.2rem .9rem;margin:1rem 0}
.note{background:var(--card);border-radius:6px;padding:.7rem .9rem}
.facts{background:var(--card);border-radius:6px;padding:.5rem .9rem;margin:1rem 0}
.facts dt{font-size:.8rem;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);margin-top:.6rem}
.facts dd{margin:0;overflow-wrap:anywhere}
@media (min-width:40rem){.facts{display:grid;grid-template-columns:11rem 1fr;column-gap:1rem}.facts dt{margin-top:.5rem}.facts dd{margin-top:.4rem}}
.reviews{margin:0;padding-left:1.1rem}
.decide{background:var(--card);border-radius:6px;padding:.9rem;margin:1rem 0}
label{display:block;font-weight:600;margin-bottom:.3rem}
textarea{width:100%;font:inherit;padding:.5rem;border:1px solid #8a93a0;border-radius:4px}
.buttons{display:flex;flex-wrap:wrap;gap:.6rem;margin-top:.8rem}
button,.button{display:inline-block;font:inherit;font-weight:600;min-height:44px;padding:.55rem 1.1rem;border-radius:6px;border:2px solid var(--accent);background:var(--accent);color:#fff;text-decoration:none;cursor:pointer}
button.approve{background:var(--ok);border-color:var(--ok)}
button.deny,button.danger,.button.danger{background:var(--bad);border-color:var(--bad);color:#fff}
button.secondary,.button.secondary{background:#fff;color:var(--accent)}
button.link{background:none;border:none;min-height:0;padding:0;font-weight:400;text-decoration:underline}
.button.small{min-height:0;padding:.3rem .7rem;font-size:.875rem}
.items,.events{list-style:none;padding:0;margin:0}
.items li,.events li{background:var(--card);border-radius:6px;padding:.6rem .9rem;margin:.5rem 0}
.pill{font-size:.8rem;border-left:4px solid var(--line);padding:0 .4rem;margin-left:.3rem}
.data{white-space:pre-wrap;overflow-wrap:anywhere}
.pager{display:flex;gap:1rem;margin:.5rem 0}
q.text{quotes:"“" "”"}
${LIFECYCLE_STYLE}`;

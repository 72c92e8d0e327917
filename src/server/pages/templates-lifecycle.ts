/**
 * The lifecycle's parts of the pages (partials included by templates.ts's request and home
 * pages): a break-glass banner and its Acknowledge/Flag form, an extension under review with its
 * Approve/Deny form, the extensions so far, the requester's ask for more time, and the home
 * page's break-glass, extension and scheduled lists. The rules of templates.ts hold: `<%= %>`
 * for every value, every form with its CSRF token, a label for every control, no script.
 */

const confirmBox = (what: string) => `<div class="confirm">
<p><strong>Confirm ${what}.</strong> You signed in again with your second factor. Nothing has been recorded yet: check it, then confirm.</p>
</div>`;

const decisionButtons = (list: string, name: string) =>
  `<div class="buttons">
<% ${list}.forEach(function (b) { %><button type="submit" name="${name}" value="<%= b.value %>" class="<%= b.className %>"><%= b.label %></button>
<% }) %></div>`;

/** At the top of the request page: a break-glass grant says so before anything else. */
const banner = `<% const bg = it.life.breakGlass %>
<% if (bg) { %>
<section class="banner tone-<%= bg.tone %>" aria-labelledby="bg-title">
<h2 id="bg-title"><%= bg.title %></h2>
<% bg.lines.forEach(function (l) { %><p><%= l %></p>
<% }) %>
<% if (bg.comment) { %><p><q class="text"><%= bg.comment %></q></p><% } %>
</section>
<% } %>`;

/** Rows of the request's facts (inside its <dl>). */
const facts = `<% it.life.facts.forEach(function (f) { %><dt><%= f.label %></dt>
<dd><%= f.value %></dd>
<% }) %>`;

/** "Approvals": per group for multi-party roles, else "1 of 2 needed". */
const approvals = `<% if (it.life.approvalsInstead) { %><%= it.life.approvalsInstead %><% } else if (it.life.groups) { %><ul class="groups">
<% it.life.groups.forEach(function (g) { %><li<% if (g.done) { %> class="done"<% } %>><%= g.text %></li>
<% }) %></ul><% } else { %><%= it.r.approvals %> of <%= it.r.approvalsRequired %> needed<% } %>
<% if (it.life.stillNeeded) { %><br><span class="small"><%= it.life.stillNeeded %></span><% } %>`;

const breakGlassForm = `<% const bg = it.life.breakGlass %>
<% if (bg && bg.form) { %>
<section class="card" aria-labelledby="bg-review-title">
<h2 id="bg-review-title">Review this break-glass use</h2>
<% if (bg.confirm) { %>${confirmBox('your review')}<% } %>
<form method="post" action="<%= it.base %>/ui/requests/<%= it.href %>/break-glass" class="decide">
<input type="hidden" name="_csrf" value="<%= it.csrf %>">
<label for="bg-comment">Comment <span class="muted">(<%= it.life.commentRequired ? 'required' : 'required to flag, optional to acknowledge' %>; the requester, the security contacts and the audit log see it)</span></label>
<textarea id="bg-comment" name="comment" maxlength="<%= it.life.maxComment %>" rows="3"<% if (it.life.commentRequired) { %> required<% } %>><%= bg.form.comment %></textarea>
${decisionButtons('bg.form.buttons', 'verdict')}
</form>
<% if (bg.note) { %><p class="small muted"><%= bg.note %></p><% } %>
</section>
<% } else if (bg && bg.note) { %><p class="note"><%= bg.note %></p><% } %>`;

const extension = `<% const x = it.life.extension %>
<% if (x) { %>
<section class="card" aria-labelledby="ext-title">
<h2 id="ext-title">Extension under review</h2>
<p><%= x.summary %></p>
<% if (x.confirm) { %>${confirmBox('your decision on the extension')}<% } %>
<dl class="facts">
<dt>How much more</dt>
<dd><%= x.duration %></dd>
<dt>Reason</dt>
<dd class="text"><%= x.reason ?? '-' %></dd>
<dt>Asked</dt>
<dd><time datetime="<%= x.requested.iso %>"><%= x.requested.text %></time> <span class="muted">(<%= x.requested.relative %>)</span></dd>
<dt>Approvals</dt>
<dd><% if (x.groups) { %><ul class="groups">
<% x.groups.forEach(function (g) { %><li<% if (g.done) { %> class="done"<% } %>><%= g.text %></li>
<% }) %></ul><% } else { %><%= x.progress %><% } %></dd>
<dt>Reviews</dt>
<dd><% if (x.reviews.length === 0) { %>none yet<% } else { %><ul class="reviews">
<% x.reviews.forEach(function (v) { %><li><%= v.who %> <strong><%= v.decision %></strong> at <time datetime="<%= v.at.iso %>"><%= v.at.text %></time><% if (v.comment) { %>: <q class="text"><%= v.comment %></q><% } %></li>
<% }) %></ul><% } %></dd>
<dt>Fingerprint</dt>
<dd class="mono"><%= x.fingerprint %></dd>
</dl>
<% if (x.form) { %>
<form method="post" action="<%= it.base %>/ui/requests/<%= it.href %>/review" class="decide">
<input type="hidden" name="_csrf" value="<%= it.csrf %>">
<input type="hidden" name="target" value="extension">
<input type="hidden" name="fingerprint" value="<%= x.form.fingerprint %>">
<label for="ext-comment">Comment on the extension <span class="muted">(<%= it.life.commentNote %>)</span></label>
<textarea id="ext-comment" name="comment" maxlength="<%= it.life.maxComment %>" rows="3"<% if (it.life.commentRequired) { %> required<% } %>><%= x.form.comment %></textarea>
${decisionButtons('x.form.buttons', 'decision')}
</form>
<% } %>
<% if (x.note) { %><p class="note"><%= x.note %></p><% } %>
<% if (x.canWithdraw) { %>
<form method="post" action="<%= it.base %>/ui/requests/<%= it.href %>/cancel">
<input type="hidden" name="_csrf" value="<%= it.csrf %>">
<button type="submit" class="secondary">Withdraw this extension request</button>
</form>
<% } %>
</section>
<% } %>`;

const extend = `<% const e = it.life.extend %>
<% if (e) { %>
<section class="card" aria-labelledby="extend-title">
<h2 id="extend-title">Ask for more time</h2>
<% if (e.confirm) { %>${confirmBox('your ask')}<% } %>
<p class="small"><%= e.intro %></p>
<form method="post" action="<%= it.base %>/ui/requests/<%= it.href %>/extend" class="decide">
<input type="hidden" name="_csrf" value="<%= it.csrf %>">
<label for="extend-duration">How much longer <span class="muted">(e.g. 30m or 1h)</span></label>
<input type="text" id="extend-duration" name="duration" value="<%= e.duration %>" maxlength="<%= it.life.limits.duration %>" required autocomplete="off">
<label for="extend-reason">Reason <span class="muted">(<%= e.reasonRequired ? 'required' : 'optional' %>; approvers and the audit log see it)</span></label>
<textarea id="extend-reason" name="reason" maxlength="<%= it.life.limits.reason %>" rows="2"<% if (e.reasonRequired) { %> required<% } %>><%= e.reason %></textarea>
<div class="buttons"><button type="submit"><%= e.button %></button></div>
</form>
</section>
<% } else if (it.life.extendNote) { %><p class="note"><%= it.life.extendNote %></p><% } %>`;

const history = `<% if (it.life.history.length > 0) { %>
<section aria-labelledby="history-title">
<h2 id="history-title">Extensions so far</h2>
<ul class="items">
<% it.life.history.forEach(function (h) { %><li><%= h.text %><% if (h.reason) { %><div class="muted small text"><%= h.reason %></div><% } %></li>
<% }) %></ul>
</section>
<% } %>`;

/** Below the request's facts and its review form. */
const sections = `${breakGlassForm}
${extension}
${extend}
${history}`;

const homeBreakGlass = `<% const bg = it.life.breakGlass %>
<% if (bg && bg.items.length > 0) { %>
<section class="banner tone-alert" aria-labelledby="bg-list-title">
<h2 id="bg-list-title">Break-glass to review</h2>
<p class="small">Taken without approval: acknowledge each use, or flag it. Overdue ones first.</p>
<%~ include('list.eta', bg) %>
</section>
<% } %>`;

const homeExtensions = `<% const x = it.life.extensions %>
<% if (x && x.items.length > 0) { %>
<section aria-labelledby="extensions-title">
<h2 id="extensions-title">Extensions waiting for your review</h2>
<%~ include('list.eta', x) %>
</section>
<% } %>`;

const homeScheduled = `<% const sc = it.life.scheduled %>
<% if (sc.items.length > 0) { %>
<section aria-labelledby="scheduled-title">
<h2 id="scheduled-title">Scheduled grants</h2>
<%~ include('list.eta', sc) %>
</section>
<% } %>`;

export const LIFECYCLE_TEMPLATES: Readonly<Record<string, string>> = {
  'lifecycle-banner.eta': banner,
  'lifecycle-facts.eta': facts,
  'lifecycle-approvals.eta': approvals,
  'lifecycle-sections.eta': sections,
  'home-break-glass.eta': homeBreakGlass,
  'home-extensions.eta': homeExtensions,
  'home-scheduled.eta': homeScheduled,
};

export const LIFECYCLE_STYLE = `.tone-scheduled{border-color:var(--accent)}.tone-alert{border-color:var(--bad)}
.banner{background:var(--card);border-left:6px solid var(--line);border-radius:6px;padding:.2rem .9rem;margin:1rem 0}
.banner.tone-alert{background:#fdecea;border-color:var(--bad)}
.banner h2{margin:.6rem 0 .3rem}
.card{background:var(--card);border-radius:6px;padding:.2rem .9rem .6rem;margin:1rem 0}
.card .facts,.card .decide{padding:0;margin:.5rem 0}
input[type=text]{width:100%;font:inherit;padding:.5rem;border:1px solid #8a93a0;border-radius:4px;margin-bottom:.6rem}
.groups{margin:0;padding-left:1.1rem}
.groups .done{color:var(--ok)}
`;

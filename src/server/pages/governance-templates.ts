import { REPORT_CSS } from '../governance/report/templates.js';

/**
 * The auditors' governance pages (Eta, auto-escaping): the access report (`/ui/reports`) and
 * access reviews (`/ui/access-reviews`). Same rules as templates.ts: every value through
 * `<%= %>`, every form with its CSRF token, no script, no inline style. The report's own body
 * and charts are the templates of src/server/governance/report/templates.ts, shared with the
 * standalone HTML file.
 */

const problem = `<% if (it.problem) { %>
<div class="problem" role="alert">
<p><strong><%= it.problem.message %></strong></p>
<% if (it.problem.hint) { %><p><%= it.problem.hint %></p><% } %>
</div>
<% } %>`;

const reports = `<% layout('layout.eta') %>
<h1>Access report</h1>
${problem}
<form method="get" action="<%= it.base %>/ui/reports" class="filters">
<label for="since">Since <span class="muted small">(30d, 12h or a date)</span></label>
<input id="since" name="since" value="<%= it.since %>" maxlength="32">
<label for="role">Role</label>
<select id="role" name="role">
<option value="">every role</option>
<% it.roles.forEach(function (r) { %><option value="<%= r %>"<% if (r === it.role) { %> selected<% } %>><%= r %></option>
<% }) %></select>
<button type="submit">Show</button>
</form>
<% if (it.doc) { %>
<p class="small">Download: <% it.downloads.forEach(function (d, i) { %><% if (i > 0) { %> · <% } %><a href="<%= d.href %>"><%= d.label %></a><% }) %></p>
<%~ include('report-body.eta', { doc: it.doc }) %>
<% } %>
<p class="back"><a href="<%= it.base %>/ui/access-reviews">Access reviews</a> · <a href="<%= it.base %>/ui/">Requests</a></p>
`;

const reviews = `<% layout('layout.eta') %>
<h1>Access reviews</h1>
${problem}
<% if (it.campaigns.length === 0) { %><p class="muted">No access reviews you may see.</p>
<% } else { %>
<div class="table-wrap"><table class="figures">
<thead><tr><th scope="col">Campaign</th><th scope="col">State</th><th scope="col">Due</th><th scope="col">Roles</th><th scope="col">Reviewers</th><th scope="col" class="num">Decided</th></tr></thead>
<tbody><% it.campaigns.forEach(function (c) { %><tr>
<td><a class="mono" href="<%= it.base %>/ui/access-reviews/<%= encodeURIComponent(c.id) %>"><%= c.id %></a><% if (c.title) { %><br><%= c.title %><% } %></td>
<td><%= c.overdue ? 'overdue' : c.state %></td><td><%= c.due_at.slice(0, 10) %></td>
<td><%= c.roles.join(', ') %></td><td><%= c.reviewers.join(', ') %></td>
<td class="num"><%= c.progress.items - c.progress.undecided %> / <%= c.progress.items %></td>
</tr><% }) %></tbody></table></div>
<% } %>
<% if (it.canStart) { %>
<section aria-labelledby="start-title">
<h2 id="start-title">Start an access review</h2>
<form method="post" action="<%= it.base %>/ui/access-reviews" class="decide">
<input type="hidden" name="_csrf" value="<%= it.csrf %>">
<label for="roles">Roles <span class="muted small">(comma-separated, or * for every role)</span></label>
<input id="roles" name="roles" required maxlength="2000" value="<%= it.form.roles %>">
<label for="reviewers">Reviewers <span class="muted small">(group:security, user:…)</span></label>
<input id="reviewers" name="reviewers" required maxlength="2000" value="<%= it.form.reviewers %>">
<label for="due">Due in</label>
<input id="due" name="due" required maxlength="32" value="<%= it.form.due %>">
<label for="title">Title <span class="muted small">(optional)</span></label>
<input id="title" name="title" maxlength="200" value="<%= it.form.title %>">
<div class="buttons"><button type="submit">Start</button></div>
</form>
</section>
<% } %>
<p class="back"><a href="<%= it.base %>/ui/reports">Access report</a> · <a href="<%= it.base %>/ui/">Requests</a></p>
`;

const review = `<% layout('layout.eta') %>
<% const c = it.c %>
<h1>Access review <span class="mono"><%= c.id %></span></h1>
<% if (c.title) { %><p><strong><%= c.title %></strong></p><% } %>
<p class="status tone-<%= c.state === 'closed' ? 'other' : c.overdue ? 'broken' : 'pending' %>" role="status"><strong><%= c.state === 'closed' ? 'Closed' : c.overdue ? 'Overdue' : 'Open' %>.</strong> <%= c.progress.items - c.progress.undecided %> of <%= c.progress.items %> decided (<%= c.progress.kept %> kept, <%= c.progress.removed %> removed); due <%= c.due_at.slice(0, 10) %>.</p>
${problem}
<dl class="facts">
<dt>Roles</dt><dd><%= c.roles.join(', ') %></dd>
<dt>Reviewers</dt><dd><%= c.reviewers.join(', ') %></dd>
<dt>Opened by</dt><dd><%= c.created_by.name ?? c.created_by.sub %>, <%= c.created_at.slice(0, 10) %></dd>
</dl>
<p class="small muted">"Remove" takes effect at the broker at once: that person or entry can no longer request the role until the role's requesters change in the policy. Nobody decides on their own access.</p>
<ol class="items">
<% c.items.forEach(function (i) { %><li id="item-<%= i.n %>" value="<%= i.n %>">
<div><strong><%= i.subject %></strong> <span class="pill"><%= i.kind %></span> for <strong><%= i.role %></strong><% if (i.person) { %> <span class="muted small">(<%= i.person.sub %>)</span><% } %></div>
<div class="small"><% if (i.via.length > 0) { %><%= i.kind === 'pipeline' ? 'gets' : 'through' %> <%= i.via.join(', ') %> · <% } %><% if (i.known !== null) { %><%= i.known %> known · <% } %>last used <%= i.last_used_at ? i.last_used_at.slice(0, 10) : 'never' %> · <%= i.uses %> grants in 90 days</div>
<% if (i.decision) { %><div class="small"><strong><%= i.decision === 'keep' ? 'Kept' : 'Removed' %></strong><% if (i.decided_by) { %> by <%= i.decided_by.name ?? i.decided_by.sub %><% } %><% if (i.removal === 'lapsed') { %> (lapsed: the policy changed)<% } %><% if (i.comment) { %>: <q class="text"><%= i.comment %></q><% } %></div><% } %>
<% if (c.can_decide && i.yours) { %><div class="small muted">Your own access: another reviewer decides it.</div>
<% } else if (c.can_decide) { %>
<form method="post" action="<%= it.base %>/ui/access-reviews/<%= encodeURIComponent(c.id) %>/decide" class="decide inline">
<input type="hidden" name="_csrf" value="<%= it.csrf %>">
<input type="hidden" name="item" value="<%= i.n %>">
<label for="comment-<%= i.n %>">Comment <span class="muted small">(required to remove)</span></label>
<input id="comment-<%= i.n %>" name="comment" maxlength="1000">
<div class="buttons">
<button type="submit" name="decision" value="keep" class="secondary">Keep</button>
<button type="submit" name="decision" value="remove" class="danger">Remove</button>
</div>
</form>
<% } %>
</li>
<% }) %></ol>
<% if (c.edits.length > 0) { %>
<section aria-labelledby="edits-title">
<h2 id="edits-title">Policy edits that make the removals last</h2>
<ul><% c.edits.forEach(function (e) { %><li><span class="pill"><%= e.where %></span> <strong><%= e.role %></strong>: <%= e.change %> <span class="muted small">(items <%= e.items.join(', ') %>)</span></li>
<% }) %></ul>
</section>
<% } %>
<% if (c.can_decide) { %>
<form method="post" action="<%= it.base %>/ui/access-reviews/<%= encodeURIComponent(c.id) %>/close">
<input type="hidden" name="_csrf" value="<%= it.csrf %>">
<button type="submit" class="secondary">Close this review</button>
</form>
<% } %>
<p class="back"><a href="<%= it.base %>/ui/access-reviews">All access reviews</a></p>
`;

export const GOVERNANCE_TEMPLATES: Readonly<Record<string, string>> = {
  'reports.eta': reports,
  'access-reviews.eta': reviews,
  'access-review.eta': review,
};

/** Added to the pages' stylesheet: the report's tables and charts, the forms of these pages. */
export const GOVERNANCE_STYLE = `${REPORT_CSS}
form.filters{display:flex;flex-wrap:wrap;gap:.4rem .6rem;align-items:end;margin:.6rem 0 1rem}
form.filters label{display:block;font-size:.85rem}
ol.items{padding-left:1.6rem}
ol.items>li{margin:.8rem 0;padding:.6rem .8rem;background:#fff;border-radius:6px}
form.inline{margin-top:.4rem}
`;

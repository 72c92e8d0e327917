/**
 * The report's HTML templates (Eta, auto-escaping) and styles. `report-body.eta` draws the
 * document (document.ts): the auditors' page includes it in the pages' layout, and
 * `report-file.eta` wraps it into one standalone file with its styles inline, which opens
 * offline and loads nothing. Every value goes through `<%= %>`; the raw outputs are the body a
 * template rendered and the stylesheet below, both ours.
 */

const chart = `<figure class="chart" id="chart-<%= it.c.id %>">
<figcaption><%= it.c.title %></figcaption>
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 <%= it.c.width %> <%= it.c.height %>" width="<%= it.c.width %>" height="<%= it.c.height %>" role="img" aria-label="<%= it.c.summary %>">
<% it.c.grid.forEach(function (g) { %><line class="grid" x1="<%= g.x1 %>" y1="<%= g.y1 %>" x2="<%= g.x2 %>" y2="<%= g.y2 %>"/>
<% }) %><% it.c.rects.forEach(function (r) { %><rect class="<%= r.cls %>" x="<%= r.x %>" y="<%= r.y %>" width="<%= r.w %>" height="<%= r.h %>"><title><%= r.title %></title></rect>
<% }) %><% it.c.labels.forEach(function (l) { %><text class="<%= l.cls %>" x="<%= l.x %>" y="<%= l.y %>" text-anchor="<%= l.anchor %>"><%= l.text %></text>
<% }) %></svg>
<ul class="legend"><% it.c.legend.forEach(function (l) { %><li><span class="swatch <%= l.cls %>"></span><%= l.text %></li><% }) %></ul>
</figure>`;

const body = `<div class="report">
<p class="subtitle"><%= it.doc.subtitle %></p>
<% it.doc.blocks.forEach(function (b) { %>
<% if (b.kind === 'heading' && b.level === 2) { %><h2<% if (b.id) { %> id="<%= b.id %>"<% } %>><%= b.text %></h2>
<% } else if (b.kind === 'heading') { %><h3><%= b.text %></h3>
<% } else if (b.kind === 'para') { %><p class="<%= b.tone ? 'tone-' + b.tone : '' %>"><%= b.text %></p>
<% } else if (b.kind === 'list') { %><ul class="<%= b.tone ? 'findings tone-' + b.tone : '' %>"><% b.items.forEach(function (i) { %><li><%= i %></li><% }) %></ul>
<% } else if (b.kind === 'table') { %><div class="table-wrap"><table class="figures"><thead><tr><% b.headers.forEach(function (h, i) { %><th scope="col"<% if (b.numeric[i]) { %> class="num"<% } %>><%= h %></th><% }) %></tr></thead>
<tbody><% b.rows.forEach(function (row) { %><tr><% row.forEach(function (c, i) { %><td<% if (b.numeric[i]) { %> class="num"<% } %>><%= c %></td><% }) %></tr>
<% }) %></tbody></table></div>
<% } else if (b.kind === 'chart') { %><%~ include('report-chart.eta', { c: b.chart }) %>
<% } %>
<% }) %>
</div>`;

const file = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title><%= it.doc.title %>: <%= it.doc.subtitle %></title>
<style><%~ it.css %></style>
</head>
<body>
<main class="report-file">
<h1><%= it.doc.title %></h1>
<%~ include('report-body.eta', it) %>
</main>
</body>
</html>
`;

export const REPORT_TEMPLATES: Readonly<Record<string, string>> = {
  'report-chart.eta': chart,
  'report-body.eta': body,
  'report-file.eta': file,
};

/** What the report itself needs (tables, findings, charts), on the page and in the file. */
export const REPORT_CSS = `.report .subtitle{color:#5b6472;margin-top:-.5rem}
.report h2{border-bottom:1px solid #d9dde3;padding-bottom:.2rem;margin-top:2rem}
.report h3{font-size:1rem;margin:1.2rem 0 .4rem}
.report .tone-muted{color:#5b6472}
.report p.tone-warn,.report .findings{background:#fff6db;border-radius:6px;padding:.5rem .9rem}
.report .findings{padding-left:2rem}
.report .findings li{margin:.2rem 0}
.table-wrap{overflow-x:auto;margin:.4rem 0}
table.figures{border-collapse:collapse;font-size:.9rem;background:#fff}
table.figures th,table.figures td{border-bottom:1px solid #e4e7eb;padding:.3rem .6rem;text-align:left;vertical-align:top;overflow-wrap:anywhere}
table.figures th{font-size:.78rem;text-transform:uppercase;letter-spacing:.03em;color:#5b6472}
table.figures .num{text-align:right;font-variant-numeric:tabular-nums}
figure.chart{margin:1rem 0;background:#fff;border-radius:6px;padding:.6rem .8rem}
figure.chart figcaption{font-weight:600;margin-bottom:.3rem}
figure.chart svg{max-width:100%;height:auto;display:block}
.chart .grid{stroke:#d9dde3;stroke-width:1}
.chart text{font:12px system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;fill:#1d2430}
.chart text.axis,.chart text.small{font-size:11px;fill:#5b6472}
.legend{list-style:none;display:flex;flex-wrap:wrap;gap:.9rem;padding:0;margin:.3rem 0 0;font-size:.85rem}
.swatch{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;margin-right:.3rem;vertical-align:-1px}
.c-approved{fill:#1f7a3d;background:#1f7a3d}.c-auto{fill:#7fbf8f;background:#7fbf8f}.c-denied{fill:#a4261c;background:#a4261c}
.c-expired{fill:#c98a00;background:#c98a00}.c-other{fill:#9aa3ae;background:#9aa3ae}
.c-median{fill:#2456c7;background:#2456c7}.c-p90{fill:#8fa9e6;background:#8fa9e6}
.c-granted{fill:#9aa3ae;background:#9aa3ae}.c-used{fill:#2456c7;background:#2456c7}
`;

/** The standalone file's own page styles (the review pages have theirs). */
export const FILE_CSS = `*{box-sizing:border-box}
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2430;background:#f4f5f7;margin:0}
main.report-file{max-width:60rem;margin:0 auto;padding:1rem 1.2rem 2rem}
h1{font-size:1.5rem;margin:.6rem 0 .8rem}
@media print{body{background:#fff}figure.chart{break-inside:avoid}}
${REPORT_CSS}`;

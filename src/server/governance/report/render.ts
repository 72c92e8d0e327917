import { createHash } from 'node:crypto';
import { Eta } from 'eta/core';
import type { Report, ReportFormat } from '../../../api/governance.js';
import { reportDocument } from './document.js';
import { renderCsv } from './render-csv.js';
import { renderMarkdown, renderText } from './render-text.js';
import { FILE_CSS, REPORT_TEMPLATES } from './templates.js';

/**
 * One report, every format: JSON as computed, text and Markdown and HTML from the one document
 * (document.ts), CSV from the figures. The API answers with these, the auditors' page offers
 * them as downloads, and `jitctl report --format` writes them.
 */

const eta = new Eta({ autoEscape: true, cache: true });
for (const [name, text] of Object.entries(REPORT_TEMPLATES)) eta.loadTemplate(name, text);

/**
 * The standalone file's Content-Security-Policy when the broker serves it: nothing but its own
 * inline stylesheet (by hash), no script, no request anywhere.
 */
export const REPORT_FILE_CSP = `default-src 'none'; style-src 'sha256-${createHash('sha256').update(FILE_CSS).digest('base64')}'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;

export interface RenderedReport {
  contentType: string;
  body: string;
  /** A file name for downloads: `jitctl-report-2025-07-01.html`. */
  filename: string;
}

const TYPES: Record<ReportFormat, string> = {
  json: 'application/json; charset=utf-8',
  text: 'text/plain; charset=utf-8',
  md: 'text/markdown; charset=utf-8',
  csv: 'text/csv; charset=utf-8; header=present',
  html: 'text/html; charset=utf-8',
};

const EXTENSIONS: Record<ReportFormat, string> = {
  json: 'json',
  text: 'txt',
  md: 'md',
  csv: 'csv',
  html: 'html',
};

export function renderReport(report: Report, format: ReportFormat): RenderedReport {
  const filename = `jitctl-report-${report.until.slice(0, 10)}${report.role ? `-${report.role.replace(/[^A-Za-z0-9._-]/g, '_')}` : ''}.${EXTENSIONS[format]}`;
  return { contentType: TYPES[format], body: renderBody(report, format), filename };
}

function renderBody(report: Report, format: ReportFormat): string {
  switch (format) {
    case 'json':
      return `${JSON.stringify(report, null, 2)}\n`;
    case 'csv':
      return renderCsv(report);
    case 'text':
      return renderText(reportDocument(report));
    case 'md':
      return renderMarkdown(reportDocument(report));
    case 'html':
      return eta.render('report-file.eta', { doc: reportDocument(report), css: FILE_CSS });
  }
}

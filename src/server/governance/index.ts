import type { Report } from '../../api/governance.js';
import { rateLimited } from '../errors.js';
import type { Access } from './access-reviews/rules.js';
import { type AccessReviewDeps, AccessReviewService } from './access-reviews/service.js';
import { type ReportQuery, ReportService } from './report/compute.js';

/**
 * Governance (docs/governance.md): the access report and access reviews, as one object the API
 * routes and the auditors' pages share, so neither computes anything of its own.
 */

/** What reports and access reviews need: the same as access reviews alone. */
export type GovernanceDeps = AccessReviewDeps;

/** Reports computed at once per broker; more are answered 429. */
export const REPORTS_AT_ONCE = 2;

export class Governance {
  readonly reports: ReportService;
  readonly reviews: AccessReviewService;
  constructor(readonly deps: GovernanceDeps) {
    this.reports = new ReportService(deps);
    this.reviews = new AccessReviewService(deps);
  }

  #reports = 0;

  /**
   * The report, at most {@link REPORTS_AT_ONCE} at a time per broker: a report over a long history
   * takes seconds of database time (docs/governance.md "Cost"), so more are refused with 429
   * rather than queued behind each other or piled onto the database.
   */
  async report(query: ReportQuery): Promise<Report> {
    if (this.#reports >= REPORTS_AT_ONCE)
      throw rateLimited(
        5_000,
        'another access report is being computed on this broker',
        'try again in a few seconds',
      );
    this.#reports += 1;
    try {
      return await this.reports.compute(query);
    } finally {
      this.#reports -= 1;
    }
  }

  isAuditor(c: Parameters<Access['isAuditor']>[0]): boolean {
    return this.deps.access.isAuditor(c) || this.deps.access.isAdmin(c);
  }
}

/** Auditors and admins by group, as the request service counts them. */
export function accessByGroups(auditors: readonly string[], admins: readonly string[]): Access {
  return {
    isAuditor: (c) => c.groups.some((g) => auditors.includes(g)),
    isAdmin: (c) => c.groups.some((g) => admins.includes(g)),
  };
}

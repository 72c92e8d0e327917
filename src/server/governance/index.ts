import type { ServerClock } from '../clock.js';
import type { TrustedIssuer } from '../federation/config.js';
import type { Policy } from '../policy/types.js';
import type { Db } from '../store/database.js';
import type { Access } from './access-reviews/rules.js';
import { AccessReviewService } from './access-reviews/service.js';
import { ReportService } from './report/compute.js';

/**
 * Governance (docs/governance.md): the access report and access reviews, as one object the API
 * routes and the auditors' pages share, so neither computes anything of its own.
 */

export interface GovernanceDeps {
  db: Db;
  clock: ServerClock;
  policy: Policy;
  trustedIssuers: readonly TrustedIssuer[];
  publicUrl: string;
  access: Access;
  onAudit?: () => void;
}

export class Governance {
  readonly reports: ReportService;
  readonly reviews: AccessReviewService;
  constructor(readonly deps: GovernanceDeps) {
    this.reports = new ReportService(deps);
    this.reviews = new AccessReviewService(deps);
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

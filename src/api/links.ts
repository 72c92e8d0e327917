/**
 * Links into the broker's review pages. One place builds them so the link `jitctl request` prints
 * and the one in every notification are the same; a page is found by the request id alone (no
 * token in the URL), and the page itself makes the person sign in.
 */
export function reviewPageUrl(brokerUrl: string, requestId: string): string {
  return new URL(`ui/requests/${encodeURIComponent(requestId)}`, withSlash(brokerUrl)).href;
}

/** The review pages' home: what needs my review, my requests, active grants, the audit log. */
export function pagesHomeUrl(brokerUrl: string): string {
  return new URL('ui/', withSlash(brokerUrl)).href;
}

const withSlash = (u: string) => (u.endsWith('/') ? u : `${u}/`);

/** An access review campaign's page (docs/governance.md), linked from its notifications. */
export function accessReviewPageUrl(brokerUrl: string, campaignId: string): string {
  return new URL(`ui/access-reviews/${encodeURIComponent(campaignId)}`, withSlash(brokerUrl)).href;
}

/** The auditors' report page. */
export function reportPageUrl(brokerUrl: string): string {
  return new URL('ui/reports', withSlash(brokerUrl)).href;
}

import type {
  AccessReview,
  AccessReviewList,
  DecideAccessReviewBody,
  Report,
  StartAccessReviewBody,
} from '../api/governance.js';
import type { BrokerClient } from './broker-client.js';

/**
 * Governance's calls (docs/governance.md): the access report and access reviews, through the
 * broker client's one `call` (retries, step-up, error mapping). Starting a campaign, a decision
 * and a close are never repeated blindly, like a review.
 */

const reviewPath = (id: string) => `/v1/access-reviews/${encodeURIComponent(id)}`;

export async function fetchReport(
  client: BrokerClient,
  q: { since?: string | undefined; role?: string | undefined; frequent?: string | undefined },
): Promise<Report> {
  const r = await client.call<Report>('GET', '/v1/reports', {
    query: q,
    // A report over a long history may take a while.
    readTimeoutMs: 120_000,
    expect: 'Report',
  });
  return r.body;
}

export async function listAccessReviews(
  client: BrokerClient,
  state?: 'open' | 'closed',
): Promise<AccessReviewList> {
  return (
    await client.call<AccessReviewList>('GET', '/v1/access-reviews', {
      query: { state },
      expect: 'AccessReviewList',
    })
  ).body;
}

export async function getAccessReview(client: BrokerClient, id: string): Promise<AccessReview> {
  return (await client.call<AccessReview>('GET', reviewPath(id), { expect: 'AccessReview' })).body;
}

export async function startAccessReview(
  client: BrokerClient,
  body: StartAccessReviewBody,
): Promise<AccessReview> {
  return (
    await client.call<AccessReview>('POST', '/v1/access-reviews', {
      body,
      readTimeoutMs: 120_000,
      expect: 'AccessReview',
    })
  ).body;
}

export async function decideAccessReview(
  client: BrokerClient,
  id: string,
  body: DecideAccessReviewBody,
): Promise<AccessReview> {
  return (
    await client.call<AccessReview>('POST', `${reviewPath(id)}/decisions`, {
      body,
      expect: 'AccessReview',
    })
  ).body;
}

export async function closeAccessReview(client: BrokerClient, id: string): Promise<AccessReview> {
  return (
    await client.call<AccessReview>('POST', `${reviewPath(id)}/close`, {
      body: {},
      expect: 'AccessReview',
    })
  ).body;
}

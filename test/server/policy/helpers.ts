import { expect } from 'vitest';
import {
  type Policy,
  PolicyError,
  type PolicyIssue,
  parsePolicy,
} from '../../../src/server/policy/index.js';

/** The issues parsePolicy reports for `text` (fails the test when it parses). */
export function issuesOf(text: string, options?: Parameters<typeof parsePolicy>[2]): PolicyIssue[] {
  try {
    parsePolicy(text, 'policy.yaml', options);
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    return (err as PolicyError).issues;
  }
  throw new Error(`expected the policy to be rejected:\n${text}`);
}

/** `line:col path: message` for compact assertions. */
export function brief(issues: PolicyIssue[]): string[] {
  return issues.map((i) => `${i.line}:${i.column} ${i.path}: ${i.message}`);
}

export function parse(text: string): Policy {
  return parsePolicy(text, 'policy.yaml');
}

/**
 * A valid one-role policy with the role's body replaced line by line: `role({approvals: '2'})`.
 * Keys set to undefined are left out. Values are YAML source text.
 */
export function role(overrides: Record<string, string | undefined> = {}): string {
  const body: Record<string, string | undefined> = {
    requesters: '[group:developers]',
    approvers: '[group:leads]',
    max_duration: '1h',
    credential: '{ audience: https://k8s.example.com }',
    ...overrides,
  };
  const lines = Object.entries(body)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `    ${k}: ${v}`);
  return `roles:\n  deploy:\n${lines.join('\n')}\n`;
}

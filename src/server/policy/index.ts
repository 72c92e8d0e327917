import type { Caller, Policy, Principal } from './types.js';

export * from './types.js';

/** Parses and validates policy YAML; throws PolicyError listing every issue with its line. */
export function parsePolicy(_text: string, _file: string): Policy {
  throw new Error('policy parsing is not built yet');
}

/** Reads and parses a policy file. */
export async function loadPolicyFile(_path: string): Promise<Policy> {
  throw new Error('policy parsing is not built yet');
}

/** Whether any of `principals` names the caller (group membership, or user by sub or verified email). */
export function matchesAny(_principals: readonly Principal[], _caller: Caller): boolean {
  throw new Error('policy matching is not built yet');
}

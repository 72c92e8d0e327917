/**
 * The request lifecycle, with no I/O: the transition table (table.ts), the changes rules build
 * from it (change.ts), and the rules themselves, one file per kind of event, all reached through
 * decide.ts (what people do) and time.ts (what time does). The request service loads a request,
 * asks these what an event does, and writes the answer in one transaction; nothing else decides a
 * transition.
 */
export * from './approvals.js';
export * from './break-glass.js';
export * from './change.js';
export * from './decide.js';
export * from './ending.js';
export * from './extending.js';
export * from './filing.js';
export * from './minting.js';
export * from './review.js';
export * from './table.js';
export * from './time.js';
export * from './who.js';

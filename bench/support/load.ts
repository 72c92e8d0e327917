import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { roundSummary, type Summary, summarize } from './stats.js';

/**
 * A closed-loop load generator: `clients` workers, each on its own keep-alive connection, each
 * running one operation after another for a fixed time. An operation may be several HTTP calls
 * (a request's whole lifecycle); both the operation's latency and each call's are recorded.
 * Operations that start during the warm-up are run but not counted (the broker's caches, the
 * JIT and the connections settle first). A failed call (non-2xx or network error) fails its
 * operation, is counted by status, and never stops the run: errors under load are a finding.
 */

export interface Http {
  call(
    method: 'GET' | 'POST',
    path: string,
    token: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<unknown>;
}

export class CallError extends Error {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(message);
  }
}

export interface LoadOptions<S> {
  url: string;
  clients: number;
  durationMs: number;
  warmupMs: number;
  /** Once per worker before the clock starts (e.g. an approved request to mint from). */
  setup?: (worker: number, http: Http) => Promise<S>;
  op: (state: S, http: Http) => Promise<void>;
  /** The server's CPU time so far in ms (e.g. processCpuMs of its pid), read at the window's ends. */
  serverCpuMs?: () => number | undefined;
}

export interface LoadResult {
  clients: number;
  seconds: number;
  ops: number;
  ops_per_s: number;
  /** Per operation, ms. */
  op_ms: Summary;
  calls: number;
  calls_per_s: number;
  /** Per HTTP call, ms. */
  call_ms: Summary;
  /** Failed calls by HTTP status or error code. */
  errors: Record<string, number>;
  /** The server's CPU time during the measured window, ms in all and per counted call. */
  server_cpu_ms?: number;
  server_cpu_ms_per_call?: number;
}

export async function runLoad<S>(o: LoadOptions<S>): Promise<LoadResult> {
  const pool = new Pool(o.url, {
    connections: o.clients,
    pipelining: 1,
    keepAliveTimeout: 60_000,
  });
  const opSamples: number[] = [];
  const callSamples: number[] = [];
  const errors: Record<string, number> = {};
  // Calls count when they start inside the measured window (set once the workers are ready).
  let recordFrom = Number.POSITIVE_INFINITY;
  let end = Number.POSITIVE_INFINITY;
  const counts = (t: number) => t >= recordFrom && t < end;

  const http: Http = {
    async call(method, path, token, body, headers) {
      const t0 = performance.now();
      let status: number;
      let text: string;
      try {
        const res = await pool.request({
          method,
          path,
          headers: {
            authorization: `Bearer ${token}`,
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
            ...headers,
          },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        status = res.statusCode;
        text = await res.body.text();
      } catch (err) {
        const key = (err as { code?: string }).code ?? (err as Error).name;
        if (counts(t0)) errors[key] = (errors[key] ?? 0) + 1;
        throw new CallError(key, `${method} ${path}: ${(err as Error).message}`);
      }
      if (counts(t0)) callSamples.push(performance.now() - t0);
      if (status >= 300) {
        const key = String(status);
        if (counts(t0)) errors[key] = (errors[key] ?? 0) + 1;
        throw new CallError(key, `${method} ${path}: ${status} ${text.slice(0, 300)}`);
      }
      return text === '' ? undefined : JSON.parse(text);
    },
  };

  try {
    const states = await Promise.all(
      Array.from({ length: o.clients }, (_, i) => (o.setup ? o.setup(i, http) : (undefined as S))),
    );
    recordFrom = performance.now() + o.warmupMs;
    end = recordFrom + o.durationMs;
    // The server's CPU over the measured window, read by timers at its two ends.
    let cpuFrom: number | undefined;
    let cpuTo: number | undefined;
    const cpuTimers = o.serverCpuMs
      ? [
          setTimeout(() => {
            cpuFrom = o.serverCpuMs!();
          }, o.warmupMs),
          setTimeout(() => {
            cpuTo = o.serverCpuMs!();
          }, o.warmupMs + o.durationMs),
        ]
      : [];
    let firstError: Error | undefined;
    const worker = async (state: S) => {
      for (;;) {
        const t0 = performance.now();
        if (t0 >= end) return;
        const counted = counts(t0);
        try {
          await o.op(state, http);
          if (counted) opSamples.push(performance.now() - t0);
        } catch (err) {
          if (!(err instanceof CallError)) throw err;
          firstError ??= err;
        }
      }
    };
    await Promise.all(states.map(worker));
    for (const t of cpuTimers) clearTimeout(t);
    // The workers may all end just before the timer at the window's end fires.
    if (cpuFrom !== undefined && cpuTo === undefined) cpuTo = o.serverCpuMs?.();
    const calls = callSamples.length;
    const serverCpu = cpuFrom !== undefined && cpuTo !== undefined ? cpuTo - cpuFrom : undefined;
    if (opSamples.length === 0 && firstError) throw firstError;
    const seconds = o.durationMs / 1000;
    return {
      clients: o.clients,
      seconds,
      ops: opSamples.length,
      ops_per_s: Math.round(opSamples.length / seconds),
      op_ms: roundSummary(summarize(opSamples), 2),
      calls,
      calls_per_s: Math.round(calls / seconds),
      call_ms: roundSummary(summarize(callSamples), 2),
      errors,
      ...(serverCpu === undefined
        ? {}
        : {
            server_cpu_ms: serverCpu,
            server_cpu_ms_per_call: calls ? Math.round((serverCpu / calls) * 1000) / 1000 : 0,
          }),
    };
  } finally {
    await pool.close();
  }
}

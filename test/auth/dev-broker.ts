import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { loadServerConfig } from '../../src/server/config.js';
import { type RunningBroker, startBroker } from '../../src/server/start.js';

/**
 * The real broker in --dev mode (its development identity provider under /idp, the demo
 * policy), in-process on a free port with a fresh SQLite file, its device flow polled every
 * second. It logs at debug level: every request is logged, so the scans for leaked tokens have
 * something to look at.
 */
export interface InProcessDevBroker {
  broker: RunningBroker;
  /** Everything the broker logged (JSON lines). */
  log(): string;
  /** Stops the broker and removes its files. */
  close(): Promise<void>;
}

export async function startInProcessDevBroker(): Promise<InProcessDevBroker> {
  const dataDir = mkdtempSync(join(tmpdir(), 'jitctl-dev-broker-'));
  const remove = () => rmSync(dataDir, { recursive: true, force: true });
  const lines: string[] = [];
  try {
    const config = await loadServerConfig({
      flags: {
        dev: true,
        listen: '127.0.0.1:0',
        data_dir: dataDir,
        db: `sqlite:${join(dataDir, 'jitctl.db')}`,
      },
      env: { JITCTL_SERVER_LOG_LEVEL: 'debug' },
      cwd: dataDir,
    });
    const logStream = new PassThrough();
    logStream.on('data', (c: Buffer) => lines.push(c.toString()));
    const broker = await startBroker(config, { logStream, env: { JITCTL_DEV_IDP_INTERVAL: '1' } });
    return {
      broker,
      log: () => lines.join(''),
      async close() {
        await broker.close();
        remove();
      },
    };
  } catch (err) {
    remove();
    throw err;
  }
}

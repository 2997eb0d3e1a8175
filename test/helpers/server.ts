import { onTestFinished } from 'vitest';
import { IMServer } from '../../src/server/IMServer.js';
import type { IMServerOptions } from '../../src/server/options.js';
import { tempDir } from './tmp.js';

/** An in-process reference server on a free loopback port, closed when the test finishes. */
export async function startServer(options: IMServerOptions = {}): Promise<IMServer> {
  const server = await IMServer.start({ port: 0, dataDir: options.dataDir ?? (await tempDir('im-server-')), ...options });
  onTestFinished(() => server.close({ timeoutMs: 1000 }));
  return server;
}

/** A message id that passes the protocol's rules. */
export function msgId(n: number | string): string {
  return `msg_${String(n).padStart(8, '0')}`;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

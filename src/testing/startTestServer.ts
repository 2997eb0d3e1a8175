import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IMServer } from '../server/IMServer.js';
import type { IMServerOptions } from '../server/options.js';

/** A reference server for a test, and how to get rid of it. */
export interface TestServer {
  server: IMServer;
  /** Base URL for clients' `imServerUrl`. */
  url: string;
  dataDir: string;
  /** Closes the server and deletes its temporary data directory. */
  close(): Promise<void>;
}

/**
 * Starts the reference IM server in this process, on a free 127.0.0.1 port,
 * with its data in a fresh temporary directory (unless `dataDir` is given).
 *
 * @example
 * ```ts
 * const { url, close } = await startTestServer();
 * const client = new IMClient({ workspacePath, imServerUrl: url, agentId: 'agent_001' });
 * // ...
 * await close();
 * ```
 */
export async function startTestServer(options: IMServerOptions = {}): Promise<TestServer> {
  const ownDir = options.dataDir === undefined ? await mkdtemp(join(tmpdir(), 'im-test-server-')) : undefined;
  const dataDir = options.dataDir ?? ownDir!;
  const server = await IMServer.start({ host: '127.0.0.1', port: 0, ...options, dataDir });
  return {
    server,
    url: server.url,
    dataDir,
    async close() {
      await server.close({ timeoutMs: 2000 });
      if (ownDir) await rm(ownDir, { recursive: true, force: true });
    },
  };
}

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServerProcess } from '../../src/testing/index.js';
import { benchScript } from './PeerProcess.js';

/** A server in its own process, as in production. */
export interface BenchServer {
  url: string;
  stop(): Promise<void>;
}

/** The baseline relay (`relay/server.ts`) in a child process. */
export async function startRelay(nodeArgs: string[] = []): Promise<BenchServer> {
  const { path, execArgv } = benchScript('../relay/server');
  const child = spawn(process.execPath, [...nodeArgs, ...execArgv, path, '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /listening on (ws:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    void exited.then(() => reject(new Error(`relay exited before listening: ${out}`)));
  });
  return {
    url,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** The reference IM server over a fresh data directory, removed on stop. */
export async function startImServer(args: string[] = [], nodeArgs: string[] = []): Promise<BenchServer & { process: ServerProcess; dataDir: string }> {
  const dataDir = await tempDir('im-bench-server-');
  const server = await ServerProcess.start({ dataDir, args: ['--quiet', ...args], nodeArgs });
  return {
    url: server.url,
    process: server,
    dataDir,
    async stop() {
      await server.kill('SIGTERM');
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

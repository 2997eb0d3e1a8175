import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServerProcess } from '../../src/testing/index.js';
import { benchScript } from './PeerProcess.js';

/** A server in its own process, as in production. */
export interface BenchServer {
  url: string;
  /** The server process, to account its CPU time. */
  pid: number | undefined;
  stop(): Promise<void>;
}

/**
 * The baseline relay (`relay/server.ts`) in a child process; `durable`, it
 * appends and syncs every send to a file in a fresh directory (removed on
 * stop) before relaying it.
 */
export async function startRelay(nodeArgs: string[] = [], durable = false): Promise<BenchServer> {
  const { path, execArgv } = benchScript('../relay/server');
  const dir = durable ? await tempDir('im-bench-relay-') : undefined;
  const args = [...nodeArgs, ...execArgv, path, '0', ...(dir ? [join(dir, 'sends.jsonl')] : [])];
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /listening on (ws:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    void exited.then(() => reject(new Error(`relay exited before listening: ${out}`)));
  }).catch(async (err: unknown) => {
    if (dir) await removeDir(dir);
    throw err;
  });
  return {
    url,
    pid: child.pid,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      if (dir) await removeDir(dir);
    },
  };
}

/** The reference IM server over a fresh data directory, removed on stop. */
export async function startImServer(args: string[] = [], nodeArgs: string[] = []): Promise<BenchServer & { process: ServerProcess; dataDir: string }> {
  const dataDir = await tempDir('im-bench-server-');
  const server = await ServerProcess.start({ dataDir, args: ['--quiet', ...args], nodeArgs });
  return {
    url: server.url,
    pid: server.child.pid,
    process: server,
    dataDir,
    async stop() {
      await server.kill('SIGTERM');
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * CPU time (user + system) a process has used so far, in microseconds, from
 * `/proc` (Linux); undefined elsewhere.
 */
export async function cpuMicros(pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined) return undefined;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces, in parentheses): utime and stime are 14th and 15th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return (ticks * 1_000_000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** Linux's USER_HZ: 100 on every mainstream platform. */
const CLOCK_TICKS_PER_SECOND = 100;

export function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
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

/** Names the run a bench directory belongs to: the orchestrator's process id, inherited by its children. */
const OWNER_ENV = 'IM_BENCH_OWNER';
const OWNED = /^im-bench-(\d+)-/;

/**
 * A fresh directory for one part of a run (a workspace, a server's data),
 * named after the run's orchestrator (`im-bench-{pid}-{prefix}...`), so that
 * what a run killed with `kill -9` leaves behind can be told from the
 * directories of runs still going ({@link removeStaleBenchDirs}).
 */
export function tempDir(prefix: string): Promise<string> {
  const owner = process.env[OWNER_ENV] ?? String(process.pid);
  return mkdtemp(join(tmpdir(), `im-bench-${owner}-${prefix.replace(/^im-bench-/, '')}`));
}

/**
 * Makes this process the owner of the run's directories (its children
 * inherit it) and removes those of earlier runs whose orchestrator is gone
 * (killed before it could clean up). Returns how many it removed.
 */
export async function claimBenchDirs(): Promise<number> {
  process.env[OWNER_ENV] = String(process.pid);
  let removed = 0;
  for (const name of await readdir(tmpdir()).catch(() => [] as string[])) {
    const pid = Number(OWNED.exec(name)?.[1]);
    if (!pid || pid === process.pid || isAlive(pid)) continue;
    await removeDir(join(tmpdir(), name));
    removed++;
  }
  return removed;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: alive, someone else's.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

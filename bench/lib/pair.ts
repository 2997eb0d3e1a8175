import { PeerProcess } from './PeerProcess.js';
import { removeDir, startImServer, startRelay, tempDir, type BenchServer } from './servers.js';

/** The raw relay, the relay that syncs each batch to a file before relaying it, or im-client end to end. */
export type System = 'relay' | 'durable-relay' | 'im';

/** A server and two peers in three processes: `a` sends to `b`. */
export interface Pair {
  system: System;
  server: BenchServer;
  a: PeerProcess;
  b: PeerProcess;
  stop(): Promise<void>;
}

export const A = 'bench_a';
export const B = 'bench_b';

/** Starts a server of `system` and two connected peers (IMClients get fresh workspaces). */
export async function startPair(system: System, options: { window: number; modeB?: 'queue' | 'callback'; connectA?: boolean; nodeArgs?: string[] }): Promise<Pair> {
  const server = system === 'im' ? await startImServer([], options.nodeArgs) : await startRelay(options.nodeArgs, system === 'durable-relay');
  const dirs: string[] = [];
  const peer = async (agentId: string, mode: 'queue' | 'callback' | undefined, connect: boolean, started: PeerProcess[]) => {
    const p = PeerProcess.start(options.nodeArgs);
    started.push(p);
    const workspace = system === 'im' ? await tempDir(`im-bench-${agentId}-`) : undefined;
    if (workspace) dirs.push(workspace);
    await p.call('init', { kind: system === 'im' ? 'im' : 'relay', url: server.url, agentId, window: options.window, workspace, mode });
    if (connect) await p.call('connect');
    else if (system === 'im') await p.call('open');
    return p;
  };
  const started: PeerProcess[] = [];
  let a: PeerProcess;
  let b: PeerProcess;
  try {
    b = await peer(B, options.modeB, true, started);
    a = await peer(A, undefined, options.connectA ?? true, started);
  } catch (err) {
    // What did start is stopped: a failed start leaves no process behind.
    await Promise.all(started.map((p) => p.stop()));
    await server.stop();
    await Promise.all(dirs.map(removeDir));
    throw err;
  }
  return {
    system,
    server,
    a,
    b,
    async stop() {
      await Promise.all([a.call('close').catch(() => {}), b.call('close').catch(() => {})]);
      await Promise.all([a.stop(), b.stop()]);
      await server.stop();
      await Promise.all(dirs.map(removeDir));
    },
  };
}

import { ServerProcess } from '../../src/testing/index.js';
import { PeerProcess } from '../lib/PeerProcess.js';
import { now, percentile } from '../lib/stats.js';
import { removeDir, tempDir } from '../lib/servers.js';

export interface StormResult {
  clients: number;
  /** From the restarted server listening until every client is online again, ms. */
  allOnlineMs: number;
  /** ... until every message queued during the outage is acked and received, ms. */
  drainedMs: number;
  /** When clients came back, ms after the restart: p10, p50, p90. */
  onlineP10: number;
  onlineP50: number;
  onlineP90: number;
  /** Most clients that came back within one 100 ms slot (all of them at once would be `clients`). */
  peakPer100ms: number;
  /** Connection attempts per client while the server was down and coming back (median). */
  attemptsMedian: number;
}

/**
 * `clients` connected clients; the server stops (SIGTERM), each client queues
 * `perClient` messages for the next while it is down, the server starts again
 * on the same port and data after `downMs`.
 */
export async function reconnectStorm(clients: number, perClient: number, downMs: number): Promise<StormResult> {
  const dataDir = await tempDir('im-bench-storm-');
  let server = await ServerProcess.start({ dataDir, args: ['--quiet'] });
  const swarm = PeerProcess.start([], 'swarm');
  try {
    await swarm.call('init', { url: server.url, count: clients });
    const downAt = now();
    await server.kill('SIGTERM');
    await swarm.call('send', { perMember: perClient });
    await new Promise((r) => setTimeout(r, downMs));
    server = await ServerProcess.start({ dataDir, port: server.port, args: ['--quiet'] });
    const upAt = now();
    const { drainedAt, onlineAt, attempts } = await swarm.call<{ drainedAt: number; onlineAt: number[]; attempts: number[] }>('drained', {
      perMember: perClient,
      since: downAt,
      downAt,
    });
    const back = onlineAt.map((t) => Math.max(0, t - upAt));
    const slots = new Map<number, number>();
    for (const t of back) slots.set(Math.floor(t / 100), (slots.get(Math.floor(t / 100)) ?? 0) + 1);
    return {
      clients,
      allOnlineMs: Math.max(...back),
      drainedMs: drainedAt - upAt,
      onlineP10: percentile(back, 0.1),
      onlineP50: percentile(back, 0.5),
      onlineP90: percentile(back, 0.9),
      peakPer100ms: Math.max(...slots.values()),
      attemptsMedian: percentile(attempts, 0.5),
    };
  } finally {
    await swarm.call('close').catch(() => {});
    await swarm.stop();
    await server.kill('SIGTERM');
    await removeDir(dataDir);
  }
}

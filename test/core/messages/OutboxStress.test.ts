import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { random } from '../../helpers/random.js';
import { tempDir } from '../../helpers/tmp.js';

/**
 * A seeded random walk over one outbox with a small `maxQueuedInMemory`, so
 * most messages spill and are read back: sends in bursts, the connection
 * flapping, acks, cancels, expiry sweeps and restarts over the same workspace,
 * with each journal read delayed by a random 0-2 ms to shuffle read-backs
 * against everything else. At the end every message must have ended exactly
 * once (acked, cancelled or failed as expired), no expired message may have
 * been sent, and within each conversation messages must first go out in the
 * order they were sent. Everything is real but the socket (frames are
 * recorded) and the server (acks are made up).
 *
 * `SEEDS=500 SEED_BASE=1 npx vitest run test/core/messages/OutboxStress.test.ts`
 * walks more seeds.
 */
const delay = { next: Math.random };
vi.mock('../../../src/fs/readJsonl.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../../src/fs/readJsonl.js')>();
  return {
    ...real,
    readJsonlBatches: async function* (...args: Parameters<typeof real.readJsonlBatches>) {
      const ms = Math.floor(delay.next() * 3);
      if (ms > 0) await new Promise((r) => setTimeout(r, ms));
      yield* real.readJsonlBatches(...args);
    },
  };
});
const { WorkspaceStorage } = await import('../../../src/core/storage/WorkspaceStorage.js');
const { Outbox } = await import('../../../src/core/messages/Outbox.js');

const T = '2026-01-01T00:00:00.000Z';
const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

async function walk(seed: number): Promise<string[]> {
  const rnd = random(seed);
  delay.next = rnd;
  const pick = <V>(values: readonly V[]): V => values[Math.floor(rnd() * values.length)]!;
  const maxQueuedInMemory = pick([1, 2, 3, 4, 6, 10, 40]);
  const window = pick([1, 2, 3, 5, 20]);
  const workspacePath = join(await tempDir(), 'ws');
  let storage = await WorkspaceStorage.open({ workspacePath, agentId: 'agent_001' });
  const errors: string[] = [];
  const statuses = new Map<string, string[]>();
  const sent: string[] = [];
  let online = false;
  let unacked = new Set<string>();
  const link = {
    // The outbox hands the link each send frame as its JSON text.
    sendOrFail: (frame: string, written: () => void) => {
      const { id } = JSON.parse(frame) as { id: string };
      sent.push(id);
      if (online) unacked.add(id);
      queueMicrotask(written);
      return true;
    },
  };
  const start = async () => {
    const outbox = new Outbox({
      storage,
      agentId: 'agent_001',
      link: link as never,
      window,
      ackTimeoutMs: 1_000_000,
      maxAttempts: 3,
      maxQueuedInMemory,
      onStatus: (u) => statuses.set(u.id, [...(statuses.get(u.id) ?? []), u.status]),
      onError: (err) => errors.push(String(err)),
    });
    await outbox.start();
    return outbox;
  };
  let outbox = await start();
  const order = new Map<string, number>();
  const conversationOf = new Map<string, string>();
  const expired = new Set<string>();
  const cancelled = new Set<string>();
  const pending: Array<Promise<unknown>> = [];
  let seq = 1;
  const send = () => {
    const to = pick(['agent_002', 'agent_003', 'agent_004']);
    const id = `msg_${String(order.size).padStart(6, '0')}`;
    const conversationId = `agent_001+${to}`;
    order.set(id, order.size);
    conversationOf.set(id, conversationId);
    const entry: { id: string; conversationId: string; to: string; text: string; sentAt: string; expiresAt?: string } = { id, conversationId, to, text: id, sentAt: T };
    if (rnd() < 0.1) {
      entry.expiresAt = T;
      expired.add(id);
    }
    const record = { type: 'message' as const, id, conversationId, direction: 'out' as const, from: 'agent_001', to, text: id, sentAt: T, status: 'queued' as const };
    pending.push(outbox.enqueue(entry, record, rnd() < 0.5));
  };
  const ack = (share: number) => {
    for (const id of [...unacked]) {
      if (rnd() >= share) continue;
      unacked.delete(id);
      outbox.onAck({ type: 'ack', id, seq: seq++, at: T });
    }
  };
  const goOffline = () => {
    online = false;
    unacked = new Set();
    outbox.offline();
  };
  for (let step = 0; step < 150; step++) {
    const r = rnd();
    if (r < 0.35) {
      const burst = 1 + Math.floor(rnd() * 8);
      for (let i = 0; i < burst; i++) send();
      if (rnd() < 0.5) await Promise.all(pending);
    } else if (r < 0.5) {
      if (online) goOffline();
      else {
        online = true;
        outbox.online();
      }
    } else if (r < 0.7) {
      ack(rnd());
    } else if (r < 0.74) {
      outbox.sweepExpired(Date.now());
    } else if (r < 0.76) {
      // A restart over the same workspace.
      await Promise.all(pending);
      await outbox.enqueued();
      if (online) goOffline();
      await outbox.settled();
      outbox.stop();
      await storage.close();
      storage = await WorkspaceStorage.open({ workspacePath, agentId: 'agent_001' });
      outbox = await start();
    } else if (r < 0.82) {
      const id = pick([...order.keys()]);
      if (id) {
        pending.push(
          outbox.cancel(id).then((ok) => {
            if (!ok) return;
            if (cancelled.has(id)) errors.push(`${id} cancelled twice`);
            cancelled.add(id);
          }),
        );
      }
    } else {
      await tick(Math.floor(rnd() * 3));
    }
  }
  await Promise.all(pending);
  if (!online) {
    online = true;
    outbox.online();
  }
  for (let i = 0; i < 2000 && outbox.size > 0; i++) {
    await tick(1);
    ack(1);
  }
  await outbox.settled();
  await tick(20);
  const problems = [...errors];
  if (outbox.size !== 0) problems.push(`${outbox.size} left in the outbox (${storage.outbox.spilled} spilled)`);
  for (const id of order.keys()) {
    const seen = (statuses.get(id) ?? []).join() || 'none';
    const wanted = cancelled.has(id) ? 'cancelled' : expired.has(id) ? 'failed' : 'acked';
    if (seen !== wanted) problems.push(`${id}: ${seen}, expected ${wanted}`);
    if (expired.has(id) && sent.includes(id)) problems.push(`${id} expired but was sent`);
  }
  const firstSent = new Set<string>();
  const lastOf = new Map<string, number>();
  for (const id of sent) {
    if (firstSent.has(id)) continue;
    firstSent.add(id);
    const conversationId = conversationOf.get(id)!;
    if ((lastOf.get(conversationId) ?? -1) > order.get(id)!) problems.push(`${id} went out after a later message of ${conversationId}`);
    lastOf.set(conversationId, order.get(id)!);
  }
  outbox.stop();
  await storage.close();
  return problems.map((p) => `seed ${seed} (maxQueuedInMemory ${maxQueuedInMemory}, window ${window}): ${p}`);
}

describe('Outbox under a random walk of sends, flaps, acks, cancels, sweeps and restarts', () => {
  it('ends every message once, sends none that expired, and keeps each conversation in order', async () => {
    const seeds = Number(process.env.SEEDS ?? 8);
    const base = Number(process.env.SEED_BASE ?? 1);
    const problems: string[] = [];
    for (let seed = base; seed < base + seeds; seed++) problems.push(...(await walk(seed)).slice(0, 5));
    expect(problems).toEqual([]);
  }, 120_000);
});

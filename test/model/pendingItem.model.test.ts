import { join } from 'node:path';
import { expect } from 'vitest';
import { SimulatedClock } from 'xstate';
import { pendingItemMachine } from '../../machines/pendingItem.js';
import { IMClient } from '../../src/api/client.js';
import { PendingQueueStore } from '../../src/core/storage/PendingQueueStore.js';
import { WorkspacePaths } from '../../src/core/storage/paths.js';
import { eventually } from '../helpers/clients.js';
import { startTestServer, type TestServer } from '../../src/testing/startTestServer.js';
import { modelTest, Trace } from './harness.js';
import { tempDir } from '../helpers/tmp.js';

const LEASE_MS = 1000;

interface World {
  trace: Trace;
  server: TestServer;
  boss: IMClient;
  worker: IMClient;
  workspacePath: string;
  clock: SimulatedClock;
  id: string;
  close(): Promise<void>;
}

function worker(world: Pick<World, 'server' | 'workspacePath' | 'clock' | 'trace'>, traced = true): IMClient {
  return new IMClient({
    workspacePath: world.workspacePath,
    imServerUrl: world.server.url,
    agentId: 'worker',
    mode: 'queue',
    clock: world.clock,
    ...(traced ? { inspect: world.trace.inspect } : {}),
  });
}

async function queued(workspacePath: string) {
  const paths = new WorkspacePaths(workspacePath);
  return PendingQueueStore.read(paths.pending, paths.pendingLog);
}

modelTest<World>({
  machine: pendingItemMachine,
  serializeState: (s) => JSON.stringify(s.value),
  variants: [
    {
      name: 'one job',
      input: { id: 'job' },
      events: () => [
        { type: 'CLAIM', leaseMs: LEASE_MS },
        { type: 'ACK' },
        { type: 'EXTEND', leaseMs: LEASE_MS },
        { type: 'RELEASE' },
        { type: 'RESUME_CLAIM', leaseUntil: 0 },
        { type: 'xstate.after.leaseRemaining.pendingItem.claimed' },
      ],
      async setup() {
        const server = await startTestServer();
        const workspacePath = join(await tempDir('model-'), 'worker');
        const clock = new SimulatedClock();
        const trace = new Trace(pendingItemMachine, (id) => id.startsWith('pending:'));
        const boss = new IMClient({ workspacePath: join(workspacePath, '..', 'boss'), imServerUrl: server.url, agentId: 'boss' });
        const world: World = { trace, server, boss, worker: undefined as never, workspacePath, clock, id: '', close: async () => {} };
        world.worker = worker(world);
        await Promise.all([boss.connect(), world.worker.connect()]);
        const sent = await boss.sendMessage({ to: 'worker', text: 'job', waitFor: 'acked' });
        world.id = sent.id;
        await eventually(async () => (await world.worker.getPendingMessages()).length === 1);
        world.close = async () => {
          await world.worker.close();
          await boss.close();
          await server.close();
        };
        return world;
      },
    },
  ],
  async exec(world, event) {
    const { worker: w, id } = world;
    switch (event.type) {
      case 'CLAIM':
        expect(await w.claimPendingMessages({ max: 1, leaseMs: LEASE_MS })).toHaveLength(1);
        return;
      case 'ACK':
        expect(await w.ackPendingMessages([id])).toBe(1);
        return;
      case 'EXTEND':
        return w.extendPendingLease([id], LEASE_MS);
      case 'RELEASE':
        return w.releasePendingMessages([id]);
      case 'RESUME_CLAIM': {
        // A previous run claimed it and stopped; the client under test starts over the same workspace.
        await w.close();
        const previous = worker(world, false);
        await previous.claimPendingMessages({ max: 1, leaseMs: 60_000 });
        await previous.close();
        world.worker = worker(world);
        await world.worker.open();
        return;
      }
      default:
        // The lease runs out: advance the simulated clock past any lease.
        world.clock.increment(10 * 60_000);
    }
  },
  async verify(world, expected) {
    const items = await queued(world.workspacePath);
    const item = items.find((i) => i.message.id === world.id);
    if (expected.value === 'done') expect(item).toBeUndefined();
    else if (expected.value === 'claimed') expect(item?.leaseUntil).toBeDefined();
    else expect(item && item.leaseUntil === undefined).toBe(true);
  },
});

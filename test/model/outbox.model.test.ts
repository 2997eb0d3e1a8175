import { join } from 'node:path';
import { expect } from 'vitest';
import { SimulatedClock, type AnyEventObject } from 'xstate';
import { outboxMachine } from '../../machines/outbox.js';
import { IMClient } from '../../src/api/client.js';
import { FaultProxy } from '../../src/testing/FaultProxy.js';
import { startTestServer, type TestServer } from '../../src/testing/startTestServer.js';
import { eventually } from '../helpers/clients.js';
import { sleep } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';
import { modelTest, Trace } from './harness.js';
import { outboxIds } from './worlds.js';

interface World {
  trace: Trace;
  server: TestServer;
  proxy: FaultProxy;
  client: IMClient;
  workspacePath: string;
  clock: SimulatedClock;
  connected: boolean;
  sent: number;
  close(): Promise<void>;
}

const AFTER_THROTTLE = 'xstate.after.throttle.outbox.online.throttled';

modelTest<World>({
  machine: outboxMachine,
  serializeState: (s) => JSON.stringify(s.value),
  variants: [
    {
      name: 'one sender',
      input: { window: 10 },
      events: () =>
        [
          { type: 'QUEUE_CHANGED', queued: 1, inflight: 0 },
          { type: 'QUEUE_CHANGED', queued: 0, inflight: 1 },
          { type: 'ONLINE' },
          { type: 'OFFLINE' },
          { type: 'THROTTLE', untilMs: 0 },
          { type: AFTER_THROTTLE },
        ] as AnyEventObject[],
      async setup() {
        // `full_inbox` can hold one undelivered message, and holds one already: sends to it are refused (retryable).
        const server = await startTestServer({ heartbeatMs: 3_600_000, maxInboxEntries: 1 });
        const dir = await tempDir('model-');
        const filler = new IMClient({ workspacePath: join(dir, 'filler'), imServerUrl: server.url, agentId: 'filler' });
        await filler.connect();
        await filler.sendMessage({ to: 'full_inbox', text: 'first', waitFor: 'acked', timeoutMs: 5000 });
        await filler.close();
        const proxy = await FaultProxy.start({ target: server.url });
        const clock = new SimulatedClock();
        const trace = new Trace(outboxMachine, (id) => id === 'outbox');
        const workspacePath = join(dir, 'sender');
        const client = new IMClient({ workspacePath, imServerUrl: proxy.url, agentId: 'sender', clock, inspect: trace.inspect });
        await client.open();
        return {
          trace,
          server,
          proxy,
          client,
          workspacePath,
          clock,
          connected: false,
          sent: 0,
          async close() {
            await client.close();
            await proxy.close();
            await server.close();
          },
        };
      },
    },
  ],
  async exec(world, event, path, i) {
    const from = path.steps[i]!.from.value;
    switch (event.type) {
      case 'ONLINE':
        if (world.connected) world.client.reconnectNow();
        else void world.client.connect().catch(() => {});
        world.connected = true;
        await eventually(() => world.client.connectionState === 'online', 5000, 'online');
        return;
      case 'OFFLINE':
        world.proxy.dropAll();
        return;
      case 'QUEUE_CHANGED':
        // A new message for a peer that takes it (sent at once when online and not throttled).
        await world.client.sendMessage({ to: 'peer', text: `m${world.sent++}` });
        return;
      case 'THROTTLE': {
        if (JSON.stringify(from) !== JSON.stringify({ online: 'draining' })) return; // the refusal came with the previous one
        // Two messages the server refuses; both refusals arrive together when the next step expects a second.
        const both = path.steps[i + 1]?.event.type === 'THROTTLE';
        if (both) world.proxy.setDirection('toServer', 'hold');
        await world.client.sendMessage({ to: 'full_inbox', text: 'refused' });
        if (both) {
          await world.client.sendMessage({ to: 'full_inbox', text: 'refused too' });
          await sleep(20);
          world.proxy.setDirection('toServer', 'pass');
        }
        return;
      }
      case AFTER_THROTTLE:
        world.clock.increment(60_000);
        return;
    }
  },
  // Counts change all the time as messages go out and come back acked: only the steps the path names are checked.
  ignore: (entry) => entry.event.type === 'QUEUE_CHANGED',
  async verify(world, expected) {
    // Whatever the state, a message is in the outbox until the server acked it. Acks keep arriving
    // between the two reads (each file is read on its own), so the two must agree once they settle.
    await eventually(
      async () => {
        const live = await outboxIds(world.workspacePath);
        const history = await world.client.getConversationHistory({ contactId: 'peer', limit: 1000 });
        return history.every((m) => live.includes(m.id) === (m.status !== 'acked' && m.status !== 'delivered'));
      },
      3000,
      'the outbox and the history agree on what is acked',
    );
    if (expected.value === 'offline') expect(['backoff', 'disconnected', 'connecting']).toContain(world.client.connectionState);
  },
});

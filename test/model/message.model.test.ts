import { join } from 'node:path';
import { expect } from 'vitest';
import { SimulatedClock, type AnyEventObject } from 'xstate';
import { messageMachine } from '../../machines/message.js';
import { IMClient } from '../../src/api/client.js';
import { FaultProxy } from '../../src/testing/FaultProxy.js';
import { startTestServer, type TestServer } from '../../src/testing/startTestServer.js';
import { eventually } from '../helpers/clients.js';
import { sleep } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';
import { modelTest, Trace, type PlannedPath } from './harness.js';
import { linesOf, outboxIds } from './worlds.js';

const ACK_TIMEOUT_MS = 1000;
const AFTER_ACK_TIMEOUT = 'xstate.after.ackTimeout.message.inFlight.awaitingAck';

interface World {
  trace: Trace;
  server: TestServer;
  proxy: FaultProxy;
  sender: IMClient;
  dir: string;
  clock: SimulatedClock;
  id: string;
  conversationId: string;
  close(): Promise<void>;
}

/** Who the message goes to decides the server's answer: a peer acks, a full inbox refuses for now, nobody for good. */
function recipientFor(path: PlannedPath): string {
  const nack = path.steps.find((s) => s.event.type === 'NACK')?.event as { retryable?: boolean } | undefined;
  if (!nack) return 'peer';
  return nack.retryable ? 'full_inbox' : 'nobody';
}

const tokens = { sender: 't-sender', peer: 't-peer', full_inbox: 't-full', filler: 't-filler' };

function variant(name: string, expired: boolean) {
  return {
    name,
    input: { id: 'msg_00000001', conversationId: 'peer+sender', to: 'peer', maxAttempts: 2, ackTimeoutMs: ACK_TIMEOUT_MS, expiresAt: expired ? 1 : null },
    // Events where the real client can meet them: the server answers only once the frame is written
    // (awaitingAck), a receipt only follows an ack, and only a message never sent can expire.
    events: (s: { value: unknown; context: { attempts: number; expiresAt: number | null } }) => {
      const events: AnyEventObject[] = [];
      if (s.value === 'queued') {
        events.push({ type: 'DISPATCH' }, { type: 'CANCEL' });
        if (s.context.expiresAt !== null && s.context.attempts === 0) events.push({ type: 'EXPIRE' });
      }
      const inFlight = s.value as { inFlight?: string };
      if (inFlight.inFlight === 'sending') events.push({ type: 'SENT' });
      if (inFlight.inFlight === 'awaitingAck') {
        events.push(
          { type: 'ACK', seq: 1, at: '2026-01-01T00:00:00.000Z' },
          { type: 'NACK', code: 'inbox_full', message: 'full', retryable: true },
          { type: 'NACK', code: 'unknown_recipient', message: 'nobody', retryable: false },
          { type: 'CONNECTION_LOST' },
          { type: AFTER_ACK_TIMEOUT },
        );
      }
      if (s.value === 'acked') events.push({ type: 'RECEIPT', at: '2026-01-01T00:00:01.000Z' });
      return events;
    },
    async setup(path: PlannedPath): Promise<World> {
      const server = await startTestServer({ heartbeatMs: 3_600_000, maxInboxEntries: 1, tokens });
      const dir = await tempDir('model-');
      // full_inbox already holds its one undelivered message.
      const filler = new IMClient({ workspacePath: join(dir, 'filler'), imServerUrl: server.url, agentId: 'filler', token: tokens.filler });
      await filler.connect();
      await filler.sendMessage({ to: 'full_inbox', text: 'first', waitFor: 'acked', timeoutMs: 5000 });
      await filler.close();
      const proxy = await FaultProxy.start({ target: server.url });
      const clock = new SimulatedClock();
      const trace = new Trace(messageMachine, (id) => id.startsWith('message:'));
      const sender = new IMClient({
        workspacePath: join(dir, 'sender'),
        imServerUrl: proxy.url,
        agentId: 'sender',
        token: tokens.sender,
        clock,
        inspect: trace.inspect,
        ackTimeoutMs: ACK_TIMEOUT_MS,
        maxAttempts: 2,
      });
      await sender.open();
      // The message under test, queued while offline.
      const m = await sender.sendMessage({ to: recipientFor(path), text: 'under test', ...(expired ? { ttlMs: 1 } : {}) });
      if (expired) await sleep(5);
      return {
        trace,
        server,
        proxy,
        sender,
        dir,
        clock,
        id: m.id,
        conversationId: m.conversationId,
        async close() {
          await sender.close();
          await proxy.close();
          await server.close();
        },
      };
    },
  };
}

modelTest<World>({
  machine: messageMachine,
  // Guards read how many ack timeouts happened and whether it was ever sent.
  serializeState: (s) => `${JSON.stringify(s.value)} failures=${s.context.failures} sent=${s.context.attempts > 0}`,
  variants: [variant('fresh message', false), variant('time to live already over', true)],
  async exec(world, event, path, i) {
    switch (event.type) {
      case 'DISPATCH':
        if (world.sender.connectionState === 'online') return; // a requeued message goes out again on its own
        // Hold the server's answers from the moment the session is up: the path decides when they arrive.
        world.sender.onConnectionStateChange((c) => c.newState === 'online' && world.proxy.setDirection('toClient', 'hold'));
        void world.sender.connect().catch(() => {});
        return;
      case 'SENT':
        return; // the frame is written on its own
      case 'ACK':
      case 'NACK':
        world.proxy.setDirection('toClient', 'pass');
        return;
      case 'CONNECTION_LOST':
        world.proxy.dropAll();
        return;
      case AFTER_ACK_TIMEOUT:
        world.clock.increment(ACK_TIMEOUT_MS);
        return;
      case 'RECEIPT': {
        // The recipient comes online and acknowledges; its receipt travels back to the sender.
        world.proxy.setDirection('toClient', 'pass');
        const peer = new IMClient({ workspacePath: join(world.dir, 'peer'), imServerUrl: world.server.url, agentId: 'peer', token: tokens.peer });
        await peer.connect();
        const close = world.close;
        world.close = async () => {
          await peer.close();
          await close();
        };
        return;
      }
      case 'CANCEL':
        expect(await world.sender.cancelMessage(world.id)).toBe(true);
        return;
      case 'EXPIRE':
        // The expiry sweep runs on the client's clock.
        world.clock.increment(30_000);
        return;
    }
    void path;
    void i;
  },
  async verify(world, expected) {
    const value = expected.value as string | { inFlight: string };
    const inOutbox = typeof value === 'object' || value === 'queued';
    await eventually(async () => (await outboxIds(world.dir + '/sender')).includes(world.id) === inOutbox, 3000, `outbox membership in ${JSON.stringify(value)}`);
    const lines = await linesOf(join(world.dir, 'sender'), world.conversationId, world.id);
    expect(lines[0]).toBe('message');
    if (typeof value === 'string' && value !== 'queued') {
      await eventually(async () => (await linesOf(join(world.dir, 'sender'), world.conversationId, world.id)).includes(value), 3000, `a ${value} line`);
    }
  },
});

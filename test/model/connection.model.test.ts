import { join } from 'node:path';
import { expect } from 'vitest';
import { SimulatedClock, type AnyEventObject } from 'xstate';
import { connectionMachine } from '../../machines/connection.js';
import { IMClient } from '../../src/api/client.js';
import { stateOf } from '../../src/core/connection/ConnectionManager.js';
import { FaultProxy } from '../../src/testing/FaultProxy.js';
import { startTestServer, type TestServer } from '../../src/testing/startTestServer.js';
import { tempDir } from '../helpers/tmp.js';
import { modelTest, Trace } from './harness.js';

const T = { heartbeat: 1000, pong: 500, connect: 2000, handshake: 2000, stable: 300, retry: 100 };
const after = (delay: string, state: string) => `xstate.after.${delay}.connection.${state}`;

interface World {
  trace: Trace;
  server: TestServer;
  proxy: FaultProxy;
  client: IMClient;
  dir: string;
  clock: SimulatedClock;
  extra: IMClient[];
  close(): Promise<void>;
}

const flat = (value: unknown) => stateOf(value);

async function eventuallyOpen(proxy: FaultProxy): Promise<void> {
  for (let i = 0; i < 200 && proxy.openConnections === 0; i++) await new Promise((r) => setTimeout(r, 5));
}

modelTest<World>({
  machine: connectionMachine,
  serializeState: (s) => JSON.stringify(s.value),
  variants: [
    {
      name: 'one client',
      input: {
        heartbeatMs: T.heartbeat,
        pongTimeoutMs: T.pong,
        connectTimeoutMs: T.connect,
        handshakeTimeoutMs: T.handshake,
        stableAfterMs: T.stable,
        backoff: { baseMs: T.retry, maxMs: T.retry },
      },
      // Events where a real connection can meet them.
      events: (s) => {
        const value = s.value as string | { session: string | { online: string } };
        const session = typeof value === 'object' ? value.session : undefined;
        const events: AnyEventObject[] = [];
        if (value === 'disconnected' || value === 'backoff' || value === 'failed') events.push({ type: 'CONNECT' });
        if (value === 'backoff' || value === 'failed') events.push({ type: 'RECONNECT_NOW' });
        if (value !== 'closed') events.push({ type: 'CLOSE' });
        if (value === 'backoff') events.push({ type: after('retryDelay', 'backoff') });
        if (session !== undefined) events.push({ type: 'SOCKET_CLOSED', code: 1006, reason: '' });
        if (session === 'connecting') events.push({ type: 'SOCKET_OPEN' }, { type: after('connectTimeout', 'session.connecting') });
        if (session === 'handshaking') events.push({ type: 'WELCOME', sessionId: 's', heartbeatMs: T.heartbeat }, { type: after('handshakeTimeout', 'session.handshaking') });
        if (typeof session === 'object') {
          events.push(
            { type: 'SOCKET_CLOSED', code: 4003, reason: 'replaced' },
            { type: 'SERVER_ERROR', code: 'internal', message: 'injected' },
            { type: after('stableAfter', 'session.online') },
          );
          if (session.online === 'waiting') events.push({ type: after('heartbeatInterval', 'session.online.waiting') });
          if (session.online === 'pinging') events.push({ type: 'PONG' }, { type: after('pongTimeout', 'session.online.pinging') });
        }
        return events;
      },
      async setup() {
        const server = await startTestServer({ heartbeatMs: 3_600_000 });
        const proxy = await FaultProxy.start({ target: server.url });
        const dir = await tempDir('model-');
        const clock = new SimulatedClock();
        const trace = new Trace(connectionMachine, (id) => id === 'connection');
        const client = new IMClient({
          workspacePath: join(dir, 'agent'),
          imServerUrl: proxy.url,
          agentId: 'agent_001',
          clock,
          inspect: trace.inspect,
          heartbeat: { intervalMs: T.heartbeat, timeoutMs: T.pong },
          connectTimeoutMs: T.connect,
          handshakeTimeoutMs: T.handshake,
          reconnect: { baseMs: T.retry, maxMs: T.retry, stableAfterMs: T.stable },
        });
        await client.open();
        const world: World = {
          trace,
          server,
          proxy,
          client,
          dir,
          clock,
          extra: [],
          async close() {
            await client.close();
            for (const c of world.extra) await c.close();
            await proxy.close();
            await server.close();
          },
        };
        return world;
      },
    },
  ],
  async exec(world, event) {
    const { proxy, client, clock } = world;
    // A new session waits at each step of its handshake until the path lets it through.
    const holdNextSession = () => {
      proxy.setDirection('toServer', 'pass');
      proxy.setMode('hold');
    };
    switch (event.type) {
      case 'CONNECT':
        holdNextSession();
        void client.connect().catch(() => {});
        return;
      case 'RECONNECT_NOW':
        holdNextSession();
        client.reconnectNow();
        return;
      case 'CLOSE':
        await client.close();
        return;
      case 'SOCKET_OPEN':
        // The upgrade goes through; the hello waits.
        proxy.setDirection('toServer', 'hold');
        proxy.setMode('pass');
        return;
      case 'WELCOME':
      case 'PONG':
        proxy.setDirection('toServer', 'pass');
        return;
      case 'SOCKET_CLOSED':
        if (event.code === 1006) {
          // The socket must exist before it can be cut.
          await eventuallyOpen(proxy);
          proxy.dropAll();
        } else {
          // Another session logs in as the same agent and takes over.
          const usurper = new IMClient({ workspacePath: join(world.dir, `usurper${world.extra.length}`), imServerUrl: world.server.url, agentId: 'agent_001' });
          world.extra.push(usurper);
          await usurper.connect();
        }
        return;
      case 'SERVER_ERROR':
        proxy.injectToClient(JSON.stringify({ type: 'error', code: 'internal', message: 'injected', fatal: false }));
        return;
      default: {
        const delay = /^xstate\.after\.(\w+)\./.exec(event.type)![1]!;
        if (delay === 'heartbeatInterval') proxy.setDirection('toServer', 'hold'); // the ping waits: no pong yet
        if (delay === 'retryDelay') holdNextSession();
        const ms = { connectTimeout: T.connect, handshakeTimeout: T.handshake, heartbeatInterval: T.heartbeat, pongTimeout: T.pong, stableAfter: T.stable, retryDelay: T.retry }[delay]!;
        clock.increment(ms);
      }
    }
  },
  // A takeover sends an error frame before closing: that error is part of the close, not a step. And a
  // stable period ends on its own whenever the clock passes it (it only resets the attempt count).
  ignore: (entry) => entry.event.type === 'SERVER_ERROR' || entry.label.includes('after stableAfter'),
  async verify(world, expected) {
    // The public state is the machine's, flattened.
    expect(world.client.connectionState).toBe(flat(expected.value));
  },
});

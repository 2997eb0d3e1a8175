import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { SimulatedClock, type AnyEventObject } from 'xstate';
import { inboxMachine } from '../../machines/inbox.js';
import { IMClient } from '../../src/api/client.js';
import { CursorFile, MessageRecord } from '../../src/core/storage/records.js';
import { LoggedJsonFile } from '../../src/fs/LoggedJsonFile.js';
import { readJsonl } from '../../src/fs/readJsonl.js';
import { FaultProxy } from '../../src/testing/FaultProxy.js';
import { startTestServer, type TestServer } from '../../src/testing/startTestServer.js';
import { eventually } from '../helpers/clients.js';
import { sleep } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';
import { modelTest, Trace, type PlannedPath } from './harness.js';

interface World {
  trace: Trace;
  server: TestServer;
  proxy: FaultProxy;
  peer: IMClient;
  receiver: IMClient;
  clock: SimulatedClock;
  sent: number;
  conversationFile: string;
  cursorFile: string;
  cursorLog: string;
  close(): Promise<void>;
}

const ERROR = 'xstate.error.actor.persistBatch';
const DONE = 'xstate.done.actor.persistBatch';

/** Whether step `i` of the path, or the batch it starts, is meant to fail: the disk must refuse before it. */
function failsNext(path: PlannedPath, i: number): boolean {
  for (let k = i + 1; k < path.steps.length; k++) {
    const type = path.steps[k]!.event.type;
    if (type === ERROR) return true;
    if (type === DONE) return false;
  }
  return false;
}

async function block(world: World, blocked: boolean): Promise<void> {
  if (blocked) await mkdir(world.conversationFile, { recursive: true });
  else await rm(world.conversationFile, { recursive: true, force: true });
}

async function send(world: World, count: number): Promise<void> {
  for (let i = 0; i < count; i++) await world.peer.sendMessage({ to: 'receiver', text: `m${world.sent++}`, waitFor: 'acked' });
}

modelTest<World>({
  machine: inboxMachine,
  // The guard reads how many deliveries wait: part of the state.
  serializeState: (s) => `${JSON.stringify(s.value)} ${s.context.buffered}`,
  variants: [
    {
      name: 'deliveries',
      input: { storedUpTo: 0 },
      // A batch takes the one delivery that started it; any that arrived meanwhile remain.
      // At most two wait at once, which keeps the graph finite.
      events: (s) =>
        [
          ...(s.context.buffered < 2 ? [{ type: 'DELIVERED', count: 1 }] : []),
          { type: DONE, output: { count: 1, upTo: 1, remaining: Math.max(0, s.context.buffered - 1) } },
          { type: ERROR, error: new Error('disk') },
          { type: 'xstate.after.retryDelay.inbox.retrying' },
        ] as AnyEventObject[],
      async setup() {
        const server = await startTestServer({ heartbeatMs: 3_600_000 });
        const proxy = await FaultProxy.start({ target: server.url });
        const dir = await tempDir('model-');
        const clock = new SimulatedClock();
        const trace = new Trace(inboxMachine, (id) => id === 'inbox');
        const peer = new IMClient({ workspacePath: join(dir, 'peer'), imServerUrl: server.url, agentId: 'peer' });
        const receiver = new IMClient({ workspacePath: join(dir, 'receiver'), imServerUrl: proxy.url, agentId: 'receiver', clock, inspect: trace.inspect });
        await Promise.all([peer.connect(), receiver.connect()]);
        const root = join(dir, 'receiver', 'im_client');
        return {
          trace,
          server,
          proxy,
          peer,
          receiver,
          clock,
          sent: 0,
          conversationFile: join(root, 'conversations', 'peer+receiver.jsonl'),
          cursorFile: join(root, 'cursor.json'),
          cursorLog: join(root, 'cursor.log.jsonl'),
          async close() {
            await receiver.close();
            await peer.close();
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
      case 'DELIVERED': {
        if (from !== 'idle') return send(world, 1); // arrives while writing or retrying
        await block(world, failsNext(path, i));
        if (path.steps[i + 1]?.event.type === 'DELIVERED') {
          // Two deliveries in one read: the second arrives while the first is being written.
          world.proxy.setDirection('toClient', 'hold');
          await send(world, 2);
          await sleep(50);
          world.proxy.setDirection('toClient', 'pass');
          return;
        }
        return send(world, 1);
      }
      case 'xstate.after.retryDelay.inbox.retrying':
        await block(world, failsNext(path, i));
        world.clock.increment(10_000);
        return;
      default:
        // A batch finishing or failing happens on its own.
        return;
    }
  },
  ignore: (entry) => entry.label === 'writing --DELIVERED--> writing' || entry.label === 'retrying --DELIVERED--> retrying',
  async verify(world, expected) {
    const cursor = await LoggedJsonFile.read(world.cursorFile, world.cursorLog, CursorFile);
    if (expected.value === 'retrying') {
      // Nothing is acknowledged past a batch that could not be written.
      expect(cursor?.ackedUpTo ?? 0).toBeLessThan(world.sent);
      return;
    }
    if (expected.value !== 'idle') return;
    await eventually(async () => (await LoggedJsonFile.read(world.cursorFile, world.cursorLog, CursorFile))?.ackedUpTo === world.sent, 3000, 'the cursor to cover every delivery');
    const texts: string[] = [];
    for await (const { value } of readJsonl(world.conversationFile, MessageRecord)) texts.push(value.text);
    expect(texts).toEqual(Array.from({ length: world.sent }, (_, k) => `m${k}`));
    expect((await LoggedJsonFile.read(world.cursorFile, world.cursorLog, CursorFile))?.inflight).toBeUndefined();
  },
});

/**
 * Watch im-client's statecharts live in the Stately inspector.
 *
 *   npm run example:inspect                  # opens the inspector in your browser, runs until Ctrl-C
 *   npm run example:inspect -- --port 8099 --no-open --seconds 10
 *
 * It starts a reference IM server and two agents that keep talking; every
 * actor they run (connection, outbox, inbox, each message, each claimed
 * pending message) reports to the inspector. No message text reaches it:
 * the actors' contexts and events carry ids and counts only.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createWebSocketInspector } from '@statelyai/inspect';
import { createInspectorServer } from '@statelyai/inspect/server';
import { IMClient } from '../src/index.js';
import { startTestServer } from '../src/testing/index.js';

const { values } = parseArgs({ options: { port: { type: 'string' }, 'no-open': { type: 'boolean' }, seconds: { type: 'string' } } });
const port = Number(values.port ?? 8081);

// A local bridge between this process and the inspector UI in the browser.
const inspectorServer = createInspectorServer({ port, autoOpen: values['no-open'] !== true });
const inspector = createWebSocketInspector({ url: `ws://localhost:${port}` });

const im = await startTestServer();
const dir = await mkdtemp(join(tmpdir(), 'im-inspect-'));
const agent = (agentId: string, mode: 'callback' | 'queue' = 'callback') =>
  new IMClient({ workspacePath: join(dir, agentId), imServerUrl: im.url, agentId, mode, inspect: inspector.inspect });
const alice = agent('agent_001');
const bob = agent('agent_002', 'queue');
await Promise.all([alice.connect(), bob.connect()]);
process.stdout.write(`inspector on http://localhost:${port} — watching agent_001 and agent_002 talk\n`);

let n = 0;
const timer = setInterval(() => {
  void alice.sendMessage({ to: 'agent_002', text: `ping ${++n}` });
  void bob.claimPendingMessages({ max: 1 }).then((claimed) => bob.ackPendingMessages(claimed));
}, 500);

const stop = async () => {
  clearInterval(timer);
  await alice.close();
  await bob.close();
  await im.close();
  inspector.stop();
  inspectorServer.stop();
  process.exit(0);
};
process.on('SIGINT', () => void stop());
if (values.seconds) setTimeout(() => void stop(), Number(values.seconds) * 1000);

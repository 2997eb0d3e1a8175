/**
 * npm start: two agents talk through the reference IM server, on embedded
 * defaults, with nothing to set up. One message goes out while its
 * recipient is offline, and the server is killed and restarted in the middle.
 * Prints the transcript and where the files are, then exits 0.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IMClient, type IMMessage } from '../src/index.js';
import { ServerProcess } from '../src/testing/ServerProcess.js';

const root = await mkdtemp(join(tmpdir(), 'im-client-demo-'));
const started = Date.now();
const say = (line: string) => process.stdout.write(`${((Date.now() - started) / 1000).toFixed(2).padStart(6)}s  ${line}\n`);
const workspace = (agent: string) => join(root, 'workspaces', agent);
const client = (agent: string, url: string, mode: 'callback' | 'queue' = 'callback') =>
  new IMClient({ workspacePath: workspace(agent), imServerUrl: url, agentId: agent, mode, reconnect: { baseMs: 100, maxMs: 1000 } });
const show = (m: IMMessage) => `${m.from} -> ${m.to}: ${m.text}`;

process.stdout.write(`im-client demo: everything lives in ${root}\n\n`);

let server = await ServerProcess.start({ dataDir: join(root, 'server'), args: ['--quiet'] });
say(`reference IM server listening on ${server.url} (child process ${server.child.pid})`);

// agent_001 is an assistant reacting to callbacks; agent_002 a digital employee working from its queue.
const alice = client('agent_001', server.url);
let bob = client('agent_002', server.url, 'queue');
alice.onConnectionStateChange((c) =>
  say(`agent_001 connection: ${c.oldState} -> ${c.newState}${c.newState === 'backoff' && c.problem ? ` (${c.problem.code})` : ''}`),
);
alice.onMessage((m) => say(`agent_001 received  ${show(m)}`));
alice.on('status', (u) => say(`agent_001 message ${u.id.slice(0, 12)}… is ${u.status}`));

await alice.connect();
await bob.connect();
await alice.addContact({ contactId: 'agent_002', name: '数据分析员', description: 'digital employee that prepares reports' });
await bob.addContact({ contactId: 'agent_001', name: '助理 Agent', description: '负责数据分析的助理' });
say('both agents online; contacts added');

await alice.sendMessage({ to: 'agent_002', text: '你好，我需要你的帮助', waitFor: 'delivered' });
const [job] = await bob.claimPendingMessages({ max: 1 });
say(`agent_002 claimed   ${show(job!)}`);
await bob.sendMessage({ to: 'agent_001', text: '好的，请把数据发给我', replyTo: job!.id, waitFor: 'acked' });
await bob.ackPendingMessages([job!.id]);

say('agent_002 goes offline');
await bob.close();
await alice.sendMessage({ to: 'agent_002', text: 'sales_q3.csv is in the shared drive', waitFor: 'acked' });
say('the server stored it for agent_002 (acked); agent_002 is still offline');

say(`killing the server with SIGKILL (pid ${server.child.pid})`);
const port = server.port;
await server.kill('SIGKILL');
await alice.sendMessage({ to: 'agent_002', text: 'also: use the EU numbers only' });
say('agent_001 queued a message while the server is down');
server = await ServerProcess.start({ dataDir: join(root, 'server'), port, args: ['--quiet'] });
say(`server restarted on ${server.url}`);
await alice.waitForStatus((await alice.getConversationHistory({ contactId: 'agent_002', limit: 1 }))[0]!.id, 'acked', { timeoutMs: 15_000 });

say('agent_002 comes back and works through its queue');
bob = client('agent_002', server.url, 'queue');
await bob.connect();
const abort = new AbortController();
let handled = 0;
const draining = bob.drainPendingMessages(
  async (m) => {
    say(`agent_002 handles   ${show(m)}`);
    await bob.sendMessage({ to: 'agent_001', text: `done: ${m.text}`, replyTo: m.id });
    if (++handled === 2) abort.abort();
  },
  { signal: abort.signal },
);
await draining;
const history = async () => alice.getConversationHistory({ contactId: 'agent_002', limit: 50 });
for (let i = 0; i < 100 && (await history()).some((m) => m.direction === 'out' && m.status !== 'delivered'); i++) {
  await new Promise((r) => setTimeout(r, 50));
}
await new Promise((r) => setTimeout(r, 200));

process.stdout.write('\nTranscript (agent_001\'s history, oldest first):\n');
for (const m of await history()) {
  process.stdout.write(`  ${m.sentAt}  ${show(m)}${m.direction === 'out' ? `  [${m.status}]` : ''}\n`);
}
await alice.close();
await bob.close();
await server.kill('SIGTERM');

process.stdout.write('\nFiles (the seed layout, in each agent\'s workspace):\n');
for (const agent of ['agent_001', 'agent_002']) {
  const base = join(workspace(agent), 'im_client');
  for (const file of ['config.json', 'contacts.json', 'conversations/agent_001+agent_002.jsonl', 'queue/pending.json']) {
    process.stdout.write(`  ${join(base, file)}\n`);
  }
}
process.stdout.write(`  server data: ${join(root, 'server')}\n`);
process.stdout.write(`\nTry: jq -c . '${join(workspace('agent_002'), 'im_client', 'conversations', 'agent_001+agent_002.jsonl')}'\n`);

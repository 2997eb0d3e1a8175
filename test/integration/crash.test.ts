import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { IMClient } from '../../src/api/client.js';
import type { IMMessage } from '../../src/core/IMMessage.js';
import { ServerProcess } from '../../src/testing/ServerProcess.js';
import { runFixture, type Child } from '../helpers/child.js';
import { collect, eventually, makeClient } from '../helpers/clients.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

const id = (i: number) => `msg_${String(i).padStart(8, '0')}`;

/** The history of a workspace as a fresh client reads it from disk (no connection). */
async function historyOf(workspacePath: string, agentId: string, contactId: string, limit: number): Promise<IMMessage[]> {
  const client = new IMClient({ workspacePath, imServerUrl: 'http://127.0.0.1:1', agentId });
  try {
    return await client.getConversationHistory({ contactId, limit });
  } finally {
    await client.close();
  }
}

function expectExactlyOnceInOrder(history: IMMessage[], n: number, direction: 'in' | 'out'): void {
  const ids = history.filter((m) => m.direction === direction).map((m) => m.id);
  expect(ids).toEqual(Array.from({ length: n }, (_, i) => id(i)));
}

async function stop(child: Child): Promise<void> {
  child.process.kill('SIGTERM');
  expect((await child.exited).code).toBe(0);
}

describe('crash safety end to end', () => {
  it('server SIGKILLed mid-stream and restarted: every message delivered once, in order, and acked', async () => {
    const dataDir = await tempDir('im-server-');
    let server = await ServerProcess.start({ dataDir, args: ['--quiet'] });
    onTestFinished(() => server.kill('SIGKILL').then(() => {}));
    const a = await makeClient(server.url, 'agent_001');
    const b = await makeClient(server.url, 'agent_002');
    const got = collect(b);
    await Promise.all([a.connect(), b.connect()]);
    const N = 300;
    let stored = 0;
    const sending = (async () => {
      for (let i = 0; i < N; i++) {
        await a.sendMessage({ to: 'agent_002', text: `message ${i}`, id: id(i) });
        stored++;
      }
    })();
    await eventually(() => got.length >= 60, 10_000, 'traffic flowing');
    await server.kill('SIGKILL');
    const port = server.port;
    await eventually(() => stored >= 150 || stored === N);
    server = await ServerProcess.start({ dataDir, port, args: ['--quiet'] });
    await sending;
    await eventually(() => got.length >= N, 20_000, 'all deliveries');
    expect(got.map((m) => m.id)).toEqual(Array.from({ length: N }, (_, i) => id(i)));
    expectExactlyOnceInOrder(await b.getConversationHistory({ contactId: 'agent_001', limit: N + 50 }), N, 'in');
    const sent = await eventually(async () => {
      const h = await a.getConversationHistory({ contactId: 'agent_002', limit: N + 50 });
      return h.every((m) => m.status === 'acked' || m.status === 'delivered') && h;
    });
    expectExactlyOnceInOrder(sent, N, 'out');
  });

  it('client processes SIGKILLed mid-stream and restarted over their workspaces: the same', { timeout: 60_000 }, async () => {
    const server = await startServer();
    const [rxWs, txWs] = [await tempDir('rx-'), await tempDir('tx-')];
    const N = 400;
    const receiver = () => runFixture('agent.ts', [rxWs, server.url, 'agent_rx', 'receive']);
    const sender = () => runFixture('agent.ts', [txWs, server.url, 'agent_tx', 'send', 'agent_rx', String(N)]);

    let rx = receiver();
    await rx.waitFor(/online/);
    let tx = sender();
    // Kill the receiver while deliveries stream in, then the sender while it is still sending.
    await eventually(() => (rx.output().match(/got msg_/g) ?? []).length >= 40, 20_000, 'deliveries streaming in');
    rx.process.kill('SIGKILL');
    await rx.exited;
    await tx.waitFor(/stored (1[5-9]\d|[2-9]\d\d)\n/);
    tx.process.kill('SIGKILL');
    await tx.exited;

    rx = receiver();
    tx = sender();
    // The sender sees every message delivered only once the receiver stored each durably.
    await tx.waitFor(/all delivered/, 40_000);
    await stop(rx);
    await stop(tx);
    expectExactlyOnceInOrder(await historyOf(rxWs, 'agent_rx', 'agent_tx', N + 50), N, 'in');
    expectExactlyOnceInOrder(await historyOf(txWs, 'agent_tx', 'agent_rx', N + 50), N, 'out');
  });
});

/**
 * A workspace of agent_001 that a previous run left with these files (relative to `im_client/`),
 * as a crash at a chosen moment would have: opened once, so everything else is as the client writes it.
 */
async function workspaceLeftWith(serverUrl: string, files: Record<string, unknown[]>): Promise<string> {
  const workspacePath = await tempDir('ws-');
  const first = await makeClient(serverUrl, 'agent_001', { workspacePath });
  await first.open();
  await first.close();
  for (const [file, lines] of Object.entries(files)) {
    await writeFile(join(workspacePath, 'im_client', file), lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
  }
  return workspacePath;
}

describe('crash between the two writes of a send', () => {
  it('writes the missing history line of a queued message on start, and sends it', async () => {
    const server = await startServer();
    // A previous run queued a message durably in the outbox and died before its conversation line.
    const entry = { id: id(7), conversationId: 'agent_001+agent_002', to: 'agent_002', text: 'survived', sentAt: new Date().toISOString(), offset: 0 };
    const workspacePath = await workspaceLeftWith(server.url, { 'outbox.jsonl': [{ op: 'put', entry }] });

    const again = await makeClient(server.url, 'agent_001', { workspacePath });
    expect((await again.getConversationHistory({ contactId: 'agent_002' })).map((m) => [m.id, m.text, m.status])).toEqual([[id(7), 'survived', 'queued']]);
    const b = await makeClient(server.url, 'agent_002');
    const got = collect(b);
    await Promise.all([again.connect(), b.connect()]);
    await eventually(() => got.length === 1);
    expect(got[0]).toMatchObject({ id: id(7), text: 'survived' });
  });

  it('is not fooled by the contact\'s message with the same id after the place of ours', async () => {
    const server = await startServer();
    const entry = { id: id(8), conversationId: 'agent_001+agent_002', to: 'agent_002', text: 'ours', sentAt: new Date().toISOString(), offset: 0 };
    // Ids are unique per sender: the contact's message, received after the crash point, has our id.
    const theirs = { type: 'message', id: id(8), conversationId: 'agent_001+agent_002', direction: 'in', from: 'agent_002', to: 'agent_001', text: 'theirs', sentAt: entry.sentAt, seq: 1, serverAt: entry.sentAt };
    const workspacePath = await workspaceLeftWith(server.url, { 'outbox.jsonl': [{ op: 'put', entry }], 'conversations/agent_001+agent_002.jsonl': [theirs] });

    const again = await makeClient(server.url, 'agent_001', { workspacePath });
    const history = await again.getConversationHistory({ contactId: 'agent_002' });
    expect(history.map((m) => [m.from, m.text])).toEqual([
      ['agent_002', 'theirs'],
      ['agent_001', 'ours'],
    ]);
  });
});

describe('crash after a status line, before the journal was compacted', () => {
  it('does not send again a message whose conversation file says it left the outbox', async () => {
    const server = await startServer();
    // A previous run put two messages, wrote both lines, got the first acked, and died: its journal still has both puts.
    const at = new Date().toISOString();
    const cid = 'agent_001+agent_002';
    const puts = [id(1), id(2)].map((mid, i) => ({ op: 'put', entry: { id: mid, conversationId: cid, to: 'agent_002', text: `old ${i + 1}`, sentAt: at, offset: 0 } }));
    const lines = [
      ...puts.map(({ entry: e }) => ({ type: 'message', id: e.id, conversationId: cid, direction: 'out', from: 'agent_001', to: 'agent_002', text: e.text, sentAt: at, status: 'queued' })),
      { type: 'status', id: id(1), status: 'acked', at, seq: 1, serverAt: at },
    ];
    const workspacePath = await workspaceLeftWith(server.url, { 'outbox.jsonl': puts, [`conversations/${cid}.jsonl`]: lines });

    const again = await makeClient(server.url, 'agent_001', { workspacePath });
    const b = await makeClient(server.url, 'agent_002');
    const got = collect(b);
    await Promise.all([again.connect(), b.connect()]);
    await again.sendMessage({ to: 'agent_002', text: 'new', id: id(3) });
    // Sends go in order: had the acked one been resent, it would have arrived first.
    await eventually(() => got.length >= 2);
    expect(got.map((m) => m.text)).toEqual(['old 2', 'new']);
    await eventually(async () => (await again.getConversationHistory({ contactId: 'agent_002' })).every((m) => m.status !== 'queued'));
    await again.close();
    // Everything left the outbox: closing compacted the journal to nothing.
    expect(await readFile(join(workspacePath, 'im_client', 'outbox.jsonl'), 'utf8')).toBe('');
  });
});

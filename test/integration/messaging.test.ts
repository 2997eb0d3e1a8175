import { mkdir, readFile, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readJsonl } from '../../src/fs/readJsonl.js';
import { ConversationRecord } from '../../src/core/storage/records.js';
import { collect, eventually, makeClient } from '../helpers/clients.js';
import { startServer } from '../helpers/server.js';

describe('IMClient messaging', () => {
  it('sends and receives both ways, with history and contacts on disk in the seed layout', async () => {
    const server = await startServer();
    const a = await makeClient(server.url, 'agent_001');
    const b = await makeClient(server.url, 'agent_002');
    const gotB = collect(b);
    const gotA = collect(a);
    await Promise.all([a.connect(), b.connect()]);

    const sent = await a.sendMessage({ to: 'agent_002', text: '你好，我需要你的帮助', meta: { task: 'report' } });
    expect(sent).toMatchObject({ from: 'agent_001', to: 'agent_002', conversationId: 'agent_001+agent_002', direction: 'out' });
    expect(sent.id).toMatch(/^[A-Za-z0-9_-]{8,128}$/);
    await eventually(() => gotB.length === 1);
    expect(gotB[0]).toMatchObject({ id: sent.id, from: 'agent_001', to: 'agent_002', text: '你好，我需要你的帮助', meta: { task: 'report' }, direction: 'in' });
    expect(gotB[0]!.sentAt).toBe(sent.sentAt);

    const reply = await b.sendMessage({ to: 'agent_001', text: '好的', replyTo: sent.id, waitFor: 'delivered', timeoutMs: 5000 });
    expect(reply.status).toBe('delivered');
    await eventually(() => gotA.length === 1);
    expect(gotA[0]).toMatchObject({ text: '好的', replyTo: sent.id });
    await a.waitForStatus(sent.id, 'delivered', { timeoutMs: 5000 });

    await a.addContact({ contactId: 'agent_002', name: '助理 Agent', description: '负责数据分析的助理' });
    const history = await a.getConversationHistory({ contactId: 'agent_002', limit: 50 });
    expect(history.map((m) => [m.direction, m.text, m.status])).toEqual([
      ['out', '你好，我需要你的帮助', 'delivered'],
      ['in', '好的', undefined],
    ]);

    // The files say the same, in the seed's layout.
    const root = join(a.workspacePath, 'im_client');
    expect(await readdir(join(root, 'conversations'))).toEqual(['agent_001+agent_002.jsonl']);
    const lines: ConversationRecord[] = [];
    for await (const { value } of readJsonl(join(root, 'conversations', 'agent_001+agent_002.jsonl'), ConversationRecord)) lines.push(value);
    expect(lines.filter((l) => l.type === 'status' && l.id === sent.id).map((l) => (l as { status: string }).status)).toEqual(['acked', 'delivered']);
    expect(JSON.parse(await readFile(join(root, 'contacts.json'), 'utf8')).contacts[0]).toMatchObject({ contactId: 'agent_002', name: '助理 Agent' });
    expect(await a.listContacts()).toHaveLength(1);
  });

  it('answers a wait for a message whose update it no longer holds: settled thousands of messages ago, or acked and still awaiting its receipt', async () => {
    const server = await startServer();
    const a = await makeClient(server.url, 'agent_001');
    const b = await makeClient(server.url, 'agent_002');
    // agent_003 is known to the server but offline: its messages are acked and never delivered.
    const c = await makeClient(server.url, 'agent_003');
    await c.connect();
    await c.close();
    await Promise.all([a.connect(), b.connect()]);
    const toB = await a.sendMessage({ to: 'agent_002', text: 'the first', waitFor: 'delivered', timeoutMs: 5000 });
    const toC = await a.sendMessage({ to: 'agent_003', text: 'for later', waitFor: 'acked', timeoutMs: 5000 });
    // Thousands of messages settle after them: more updates than the client keeps.
    let last = toB;
    for (let round = 0; round < 5; round++) {
      const sent = await Promise.all(Array.from({ length: 500 }, (_, i) => a.sendMessage({ to: 'agent_002', text: `later ${round}/${i}` })));
      last = sent.at(-1)!;
    }
    await a.waitForStatus(last.id, 'delivered', { timeoutMs: 10_000 });
    // No conversation given: the client remembers it, and the history line tells the rest.
    await expect(a.waitForStatus(toB.id, 'delivered', { timeoutMs: 2000 })).resolves.toMatchObject({ id: toB.id, status: 'delivered', seq: toB.seq, conversationId: toB.conversationId });
    await expect(a.waitForStatus(toC.id, 'acked', { timeoutMs: 2000 })).resolves.toMatchObject({ id: toC.id, status: 'acked', seq: toC.seq, serverAt: toC.serverAt });
    // A send of an id already acked waits the same way.
    await expect(a.sendMessage({ to: 'agent_003', text: 'for later', id: toC.id, waitFor: 'acked', timeoutMs: 2000 })).resolves.toMatchObject({ id: toC.id, status: 'acked' });
    await expect(a.waitForStatus('never-sent-0001', 'acked')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it("resolves waitFor 'acked' on the server's ack, and history already says acked", async () => {
    const server = await startServer();
    const a = await makeClient(server.url, 'agent_001');
    const b = await makeClient(server.url, 'agent_002');
    await Promise.all([a.connect(), b.connect()]);
    const statuses: string[] = [];
    a.on('status', (u) => statuses.push(u.status));
    const sent = await a.sendMessage({ to: 'agent_002', text: 'ack me', waitFor: 'acked', timeoutMs: 5000 });
    expect(sent).toMatchObject({ status: 'acked', seq: expect.any(Number), serverAt: expect.any(String) });
    // The local acked line may still be on its way to disk; a history read waits for it.
    const [inHistory] = await a.getConversationHistory({ contactId: 'agent_002', limit: 1 });
    expect(inHistory).toMatchObject({ id: sent.id, seq: sent.seq, serverAt: sent.serverAt });
    expect(['acked', 'delivered']).toContain(inHistory!.status);
    await eventually(() => statuses.includes('acked'));
  });

  it('keeps a conversation in send order when the same batch opens another conversation', async () => {
    const server = await startServer();
    const a = await makeClient(server.url, 'agent_001');
    const b = await makeClient(server.url, 'agent_002');
    const gotB = collect(b);
    await Promise.all([a.connect(), b.connect()]);
    await a.sendMessage({ to: 'agent_002', text: 'b-1' });
    for (let i = 0; i < 20; i++) {
      // The first batch writes to a conversation file not open yet; the second, a turn later, does not.
      const first = [a.sendMessage({ to: `new_contact_${i}`, text: 'hello' }), a.sendMessage({ to: 'agent_002', text: `b${2 * i}` })];
      await new Promise((r) => setImmediate(r));
      await Promise.all([...first, a.sendMessage({ to: 'agent_002', text: `b${2 * i + 1}` })]);
    }
    await eventually(() => gotB.length === 41, 10_000, 'every message to agent_002');
    expect(gotB.map((m) => m.text)).toEqual(['b-1', ...Array.from({ length: 40 }, (_, i) => `b${i}`)]);
  });

  it('a history file that refuses its status lines for a while: the receipt is not acknowledged until its line is written', async () => {
    const server = await startServer();
    const a = await makeClient(server.url, 'agent_001');
    const b = await makeClient(server.url, 'agent_002');
    const gotB = collect(b);
    const errors: unknown[] = [];
    a.on('error', (e) => errors.push(e));
    await b.connect();
    // Offline: the message line is written; then 64 other conversations push its file out of the
    // pool of open files, so the next line reopens it.
    const sent = await a.sendMessage({ to: 'agent_002', text: 'through a bad disk' });
    for (let i = 0; i < 64; i++) await a.sendMessage({ to: `agent_x${i}`, text: 'filler' });
    // The disk refuses the file: a directory stands where it was.
    const file = join(a.workspacePath, 'im_client', 'conversations', 'agent_001+agent_002.jsonl');
    await rename(file, `${file}.away`);
    await mkdir(file);
    await a.connect();
    await eventually(() => gotB.length === 1, 5000, 'the recipient gets it');
    await eventually(() => errors.length >= 2, 5000, 'the failed acked and delivered lines reported');
    // The disk recovers: the receipt, not acknowledged, comes again and is written this time.
    await rm(file, { recursive: true });
    await rename(`${file}.away`, file);
    await eventually(async () => (await a.getConversationHistory({ contactId: 'agent_002', limit: 5 }))[0]?.status === 'delivered', 10_000, 'history says delivered');
    expect((await a.getConversationHistory({ contactId: 'agent_002', limit: 5 })).map((m) => [m.id, m.status])).toEqual([[sent.id, 'delivered']]);
  });

  it('queues messages sent while offline and delivers them all, in order, once connected', async () => {
    const server = await startServer();
    const a = await makeClient(server.url, 'agent_001');
    const b = await makeClient(server.url, 'agent_002');
    const got = collect(b);
    const texts = Array.from({ length: 120 }, (_, i) => `offline ${i}`);
    for (const text of texts) await a.sendMessage({ to: 'agent_002', text });
    expect(a.connectionState).toBe('disconnected');
    expect((await a.getConversationHistory({ contactId: 'agent_002', limit: 200 })).every((m) => m.status === 'queued')).toBe(true);
    await b.connect();
    await a.connect();
    await eventually(() => got.length === texts.length, 15_000, 'all deliveries');
    expect(got.map((m) => m.text)).toEqual(texts);
    const history = await eventually(async () => {
      const h = await a.getConversationHistory({ contactId: 'agent_002', limit: 200 });
      return h.every((m) => m.status === 'delivered') && h;
    });
    expect(history.map((m) => m.text)).toEqual(texts);
  });

  it('keeps a digital employee\'s messages in the pending queue until acknowledged', async () => {
    const server = await startServer();
    const a = await makeClient(server.url, 'agent_001');
    const worker = await makeClient(server.url, 'worker_1', { mode: 'queue' });
    await Promise.all([a.connect(), worker.connect()]);
    for (let i = 0; i < 3; i++) await a.sendMessage({ to: 'worker_1', text: `job ${i}` });
    const pending = await eventually(async () => {
      const p = await worker.getPendingMessages();
      return p.length === 3 && p;
    });
    expect(pending.map((m) => m.text)).toEqual(['job 0', 'job 1', 'job 2']);
    // Peeking does not consume: they stay until acknowledged.
    expect(await worker.getPendingMessages()).toHaveLength(3);
    expect(await worker.ackPendingMessages([pending[0]!.id])).toBe(1);
    expect((await worker.getPendingMessages()).map((m) => m.text)).toEqual(['job 1', 'job 2']);
    // After a clean close, the seed's queue/pending.json alone lists what is left.
    await worker.close();
    const queueFile = JSON.parse(await readFile(join(worker.workspacePath, 'im_client', 'queue', 'pending.json'), 'utf8'));
    expect(queueFile.items.map((i: { message: { text: string } }) => i.message.text)).toEqual(['job 1', 'job 2']);
  });

  it('hands each incoming message to callbacks and iterators once, in order', async () => {
    const server = await startServer();
    const a = await makeClient(server.url, 'agent_001');
    const b = await makeClient(server.url, 'agent_002');
    const controller = new AbortController();
    const iterated: string[] = [];
    const loop = (async () => {
      for await (const m of b.messages({ signal: controller.signal })) iterated.push(m.text);
    })();
    const got = collect(b);
    await Promise.all([a.connect(), b.connect()]);
    for (let i = 0; i < 20; i++) await a.sendMessage({ to: 'agent_002', text: `m${i}` });
    await eventually(() => got.length === 20 && iterated.length === 20);
    controller.abort();
    await loop;
    const expected = Array.from({ length: 20 }, (_, i) => `m${i}`);
    expect(got.map((m) => m.text)).toEqual(expected);
    expect(iterated).toEqual(expected);
    expect(new Set(got.map((m) => m.id)).size).toBe(20);
  });

  it('unsubscribes a callback with the function onMessage returns', async () => {
    const server = await startServer();
    const a = await makeClient(server.url, 'agent_001');
    const b = await makeClient(server.url, 'agent_002');
    const seen: string[] = [];
    const off = b.onMessage((m) => seen.push(m.text));
    const all = collect(b);
    await Promise.all([a.connect(), b.connect()]);
    await a.sendMessage({ to: 'agent_002', text: 'first' });
    await eventually(() => seen.length === 1);
    off();
    await a.sendMessage({ to: 'agent_002', text: 'second' });
    await eventually(() => all.length === 2);
    expect(seen).toEqual(['first']);
  });

  it('pages history backwards with before', async () => {
    const server = await startServer();
    const a = await makeClient(server.url, 'agent_001');
    for (let i = 0; i < 25; i++) await a.sendMessage({ to: 'agent_002', text: `m${i}` });
    const page1 = await a.getConversationHistory({ contactId: 'agent_002', limit: 10 });
    const page2 = await a.getConversationHistory({ contactId: 'agent_002', limit: 10, before: page1[0]!.id });
    const page3 = await a.getConversationHistory({ contactId: 'agent_002', limit: 10, before: page2[0]!.id });
    expect([...page3, ...page2, ...page1].map((m) => m.text)).toEqual(Array.from({ length: 25 }, (_, i) => `m${i}`));
  });

  it('threads a conversation id chosen by the sender on both ends', async () => {
    const server = await startServer();
    const a = await makeClient(server.url, 'agent_001');
    const b = await makeClient(server.url, 'agent_002');
    const got = collect(b);
    await Promise.all([a.connect(), b.connect()]);
    await a.sendMessage({ to: 'agent_002', text: 'about task 42', conversationId: 'task-42' });
    await eventually(() => got.length === 1);
    expect(got[0]!.conversationId).toBe('task-42');
    expect((await b.getConversationHistory({ conversationId: 'task-42' })).map((m) => m.text)).toEqual(['about task 42']);
  });

  it('updates and removes contacts', async () => {
    const server = await startServer();
    const a = await makeClient(server.url, 'agent_001');
    const added = await a.addContact({ contactId: 'user_7', name: 'Lin', kind: 'user' });
    const updated = await a.updateContact('user_7', { description: 'reviewer' });
    expect(updated).toMatchObject({ contactId: 'user_7', name: 'Lin', kind: 'user', description: 'reviewer', addedAt: added.addedAt });
    await expect(a.updateContact('nobody', { name: 'x' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await a.removeContact('user_7')).toBe(true);
    expect(await a.removeContact('user_7')).toBe(false);
    expect(await a.listContacts()).toEqual([]);
  });

  it("keeps a contact's metadata as its JSON copy, and refuses metadata that does not encode", async () => {
    const server = await startServer();
    const a = await makeClient(server.url, 'agent_001');
    const added = await a.addContact({ contactId: 'user_8', name: 'Mei', meta: { since: new Date(0) } as never });
    expect(added.meta).toEqual({ since: '1970-01-01T00:00:00.000Z' });
    const throwing = Object.create({ toJSON: () => { throw new Error('cannot encode'); } }) as never;
    await expect(a.addContact({ contactId: 'user_9', name: 'Ann', meta: throwing })).rejects.toMatchObject({ code: 'INVALID_OPTION', option: 'meta' });
    await expect(a.updateContact('user_8', { meta: throwing })).rejects.toMatchObject({ code: 'INVALID_OPTION', option: 'meta' });
    expect(await a.listContacts()).toEqual([added]);
  });
});

describe('IMClient under server back-pressure', () => {
  it('waits out rate limits: every message is delivered, in order, none fails', async () => {
    const server = await startServer({ rateLimit: { perSecond: 400, burst: 20 } });
    const a = await makeClient(server.url, 'agent_001');
    const b = await makeClient(server.url, 'agent_002');
    const got = collect(b);
    const failed: string[] = [];
    a.on('status', (u) => u.status === 'failed' && failed.push(u.id));
    await Promise.all([a.connect(), b.connect()]);
    const texts = Array.from({ length: 300 }, (_, i) => `burst ${i}`);
    for (const text of texts) await a.sendMessage({ to: 'agent_002', text });
    await eventually(() => got.length === texts.length, 20_000, 'all deliveries');
    expect(got.map((m) => m.text)).toEqual(texts);
    expect(failed).toEqual([]);
  });

  it('waits for a full inbox to drain instead of failing', async () => {
    const server = await startServer({ maxInboxEntries: 5 });
    const a = await makeClient(server.url, 'agent_001');
    await a.connect();
    const sent = [];
    for (let i = 0; i < 12; i++) sent.push(await a.sendMessage({ to: 'agent_002', text: `m${i}` }));
    // The recipient is offline: 5 fit, the rest wait (not fail) until it reads.
    await eventually(async () => (await a.getConversationHistory({ contactId: 'agent_002' })).filter((m) => m.status === 'acked').length === 5);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await a.getConversationHistory({ contactId: 'agent_002' })).some((m) => m.status === 'failed')).toBe(false);
    const b = await makeClient(server.url, 'agent_002');
    const got = collect(b);
    await b.connect();
    await eventually(() => got.length === 12, 20_000, 'all twelve');
    expect(got.map((m) => m.text)).toEqual(sent.map((m) => m.text));
  });
});

/**
 * Regressions for defects found in review, each reproduced before its fix.
 */
import { describe, expect, it } from 'vitest';
import { IMClient } from '../../src/api/client.js';
import { FaultProxy } from '../../src/testing/FaultProxy.js';
import { collect, eventually, makeClient } from '../helpers/clients.js';
import { sleep, startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

describe('review regressions', () => {
  it('delivers two senders\' messages that share an id (ids are unique per sender, not globally)', async () => {
    const server = await startServer();
    const [a, c, b] = [await makeClient(server.url, 'agent_a'), await makeClient(server.url, 'agent_c'), await makeClient(server.url, 'agent_b')];
    const got = collect(b);
    await Promise.all([a.connect(), b.connect(), c.connect()]);
    await a.sendMessage({ to: 'agent_b', text: 'from a', id: 'daily_report_2026' });
    await c.sendMessage({ to: 'agent_b', text: 'from c', id: 'daily_report_2026' });
    await eventually(() => got.length === 2);
    expect(got.map((m) => `${m.from}: ${m.text}`).sort()).toEqual(['agent_a: from a', 'agent_c: from c']);
  });

  it('sends a caller id once under concurrent calls, and not again once it was sent (even by an earlier run)', async () => {
    const server = await startServer();
    const workspacePath = await tempDir('ws-');
    const a = await makeClient(server.url, 'agent_001', { workspacePath, window: 1 });
    const b = await makeClient(server.url, 'agent_002');
    const got = collect(b);
    await Promise.all([a.connect(), b.connect()]);
    const [first, second] = await Promise.all([
      a.sendMessage({ to: 'agent_002', text: 'reply', id: 'task_0001_reply' }),
      a.sendMessage({ to: 'agent_002', text: 'reply', id: 'task_0001_reply' }),
    ]);
    expect(second.id).toBe(first.id);
    for (let i = 0; i < 3; i++) await a.sendMessage({ to: 'agent_002', text: `after ${i}` });
    await eventually(() => got.length === 4, 5000, 'the outbox keeps flowing');
    await a.close();
    const again = await makeClient(server.url, 'agent_001', { workspacePath });
    await again.connect();
    const resent = await again.sendMessage({ to: 'agent_002', text: 'reply', id: 'task_0001_reply' });
    expect(resent.status).toBe('delivered');
    await sleep(200);
    expect(got.map((m) => m.text)).toEqual(['reply', 'after 0', 'after 1', 'after 2']);
    expect((await again.getConversationHistory({ contactId: 'agent_002' })).filter((m) => m.id === 'task_0001_reply')).toHaveLength(1);
  });

  it('refuses a message whose escaped frame would exceed the server\'s frame limit, keeping the outbox flowing', async () => {
    const server = await startServer({ maxFrameBytes: 64 * 1024, maxMessageBytes: 32 * 1024 });
    const a = await makeClient(server.url, 'agent_001');
    const b = await makeClient(server.url, 'agent_002');
    const got = collect(b);
    await Promise.all([a.connect(), b.connect()]);
    // 20 KB of control characters: under the byte limit, but six bytes each once JSON-escaped.
    await expect(a.sendMessage({ to: 'agent_002', text: '\u0001'.repeat(20_000) })).rejects.toMatchObject({ code: 'MESSAGE_TOO_LARGE' });
    await a.sendMessage({ to: 'agent_002', text: 'still flowing' });
    await eventually(() => got.length === 1);
  });

  it('resends rather than expires a message sent before its time to live ran out', async () => {
    const server = await startServer();
    const proxy = await FaultProxy.start({ target: server.url });
    const a = await makeClient(proxy.url, 'agent_001', { heartbeat: { intervalMs: 5000, timeoutMs: 5000 }, ackTimeoutMs: 60_000 });
    const b = await makeClient(server.url, 'agent_002');
    const got = collect(b);
    await Promise.all([a.connect(), b.connect()]);
    proxy.setMode('stall');
    const m = await a.sendMessage({ to: 'agent_002', text: 'transfer $100', ttlMs: 200 });
    await sleep(400);
    proxy.setMode('pass');
    proxy.dropAll();
    const update = await a.waitForStatus(m.id, 'acked', { timeoutMs: 10_000 });
    expect(update.status).toMatch(/acked|delivered/);
    await eventually(() => got.length === 1);
    await proxy.close();
  });

  it('settles waits that start while or after the client closes, and waits on messages of an earlier run', async () => {
    const server = await startServer();
    const workspacePath = await tempDir('ws-');
    const a = await makeClient(server.url, 'agent_001', { workspacePath });
    const b = await makeClient(server.url, 'agent_002');
    await Promise.all([a.connect(), b.connect()]);
    const m = await a.sendMessage({ to: 'agent_002', text: 'x', waitFor: 'delivered', timeoutMs: 5000 });
    const closing = a.close();
    await expect(a.waitForStatus(m.id, 'acked')).rejects.toMatchObject({ code: 'CLOSED' });
    await closing;
    const again = await makeClient(server.url, 'agent_001', { workspacePath });
    await expect(again.waitForStatus(m.id, 'delivered')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(again.waitForStatus(m.id, 'delivered', { conversationId: m.conversationId })).resolves.toMatchObject({ status: 'delivered' });
  });

  it('retries a pending message whose handler keeps failing at a bounded pace', async () => {
    const server = await startServer();
    const boss = await makeClient(server.url, 'boss');
    const worker = await makeClient(server.url, 'worker', { mode: 'queue' });
    await Promise.all([boss.connect(), worker.connect()]);
    await boss.sendMessage({ to: 'worker', text: 'poison' });
    await eventually(async () => (await worker.getPendingMessages()).length === 1);
    let calls = 0;
    const controller = new AbortController();
    const draining = worker.drainPendingMessages(
      () => {
        calls++;
        throw new Error('always fails');
      },
      { signal: controller.signal },
    );
    await sleep(1000);
    controller.abort();
    await draining;
    // 250, 500 ms pauses: a handful of calls in a second, not thousands.
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(calls).toBeLessThanOrEqual(4);
    expect(await worker.getPendingMessages()).toHaveLength(1);
  });

  it('rejects malformed arguments with IMClientError, and opens again once a locked workspace is free', async () => {
    const server = await startServer();
    const workspacePath = await tempDir('ws-');
    const a = await makeClient(server.url, 'agent_001', { workspacePath });
    await expect(a.sendMessage(undefined as never)).rejects.toMatchObject({ code: 'INVALID_OPTION' });
    await expect(a.getConversationHistory(undefined as never)).rejects.toMatchObject({ code: 'INVALID_OPTION' });
    await expect(a.ackPendingMessages('id' as never)).rejects.toMatchObject({ code: 'INVALID_OPTION', option: 'ids' });
    await a.open();
    const second = new IMClient({ workspacePath, imServerUrl: server.url, agentId: 'agent_001' });
    await expect(second.open()).rejects.toMatchObject({ code: 'WORKSPACE_LOCKED' });
    await a.close();
    await second.open();
    await second.close();
    a.reconnectNow(); // after close: ignored, not thrown
  });
});

describe('inbox write failures', () => {
  it('keeps a batch it could not write and delivers it once the disk lets it, losing nothing', async () => {
    const { mkdir, rm } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const server = await startServer();
    const a = await makeClient(server.url, 'agent_001');
    const b = await makeClient(server.url, 'agent_002');
    const got = collect(b);
    await b.open();
    // A directory where the conversation file should be: every append to it fails (EISDIR).
    const blocker = join(b.workspacePath, 'im_client', 'conversations', 'agent_001+agent_002.jsonl');
    await mkdir(blocker);
    await Promise.all([a.connect(), b.connect()]);
    await a.sendMessage({ to: 'agent_002', text: 'm0' });
    await sleep(300);
    await a.sendMessage({ to: 'agent_002', text: 'm1' });
    await sleep(300);
    expect(got).toEqual([]);
    await rm(blocker, { recursive: true });
    await eventually(() => got.length === 2, 10_000, 'both messages after the disk recovers');
    expect(got.map((m) => m.text)).toEqual(['m0', 'm1']);
    expect((await b.getConversationHistory({ contactId: 'agent_001' })).map((m) => m.text)).toEqual(['m0', 'm1']);
  });
});

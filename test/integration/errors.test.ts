import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IMClient } from '../../src/api/client.js';
import { IMClientError, InvalidIdError, InvalidOptionError, MessageRejectedError, WorkspaceLockedError } from '../../src/errors.js';
import { FaultProxy } from '../../src/testing/FaultProxy.js';
import { collect, eventually, makeClient } from '../helpers/clients.js';
import { sleep, startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

describe('IMClient errors', () => {
  it('validates options in the constructor with errors naming the option', async () => {
    const workspacePath = await tempDir();
    const base = { workspacePath, imServerUrl: 'http://127.0.0.1:1', agentId: 'agent_001' };
    expect(() => new IMClient({ ...base, agentId: '../../etc' })).toThrow(InvalidIdError);
    expect(() => new IMClient({ ...base, imServerUrl: 'im-server:8080' })).toThrow(expect.objectContaining({ option: 'imServerUrl' }));
    expect(() => new IMClient({ ...base, window: 0 })).toThrow(expect.objectContaining({ option: 'window' }));
    expect(() => new IMClient({ ...base, mode: 'batch' as 'queue' })).toThrow(InvalidOptionError);
    expect(() => new IMClient({ ...base, workspacePath: '' })).toThrow(expect.objectContaining({ option: 'workspacePath' }));
  });

  it('rejects bad sends with typed errors and queues nothing', async () => {
    const server = await startServer({ maxMessageBytes: 1000, maxFrameBytes: 8000 });
    const a = await makeClient(server.url, 'agent_001');
    await a.connect();
    await expect(a.sendMessage({ to: '../x', text: 'hi' })).rejects.toBeInstanceOf(InvalidIdError);
    await expect(a.sendMessage({ to: 'agent_002', text: 42 as unknown as string })).rejects.toMatchObject({ option: 'text' });
    await expect(a.sendMessage({ to: 'agent_002', text: 'x', conversationId: 'a/b' })).rejects.toMatchObject({ code: 'INVALID_ID' });
    await expect(a.sendMessage({ to: 'agent_002', text: 'x', conversationId: 'agent_003+agent_004' })).rejects.toMatchObject({ option: 'conversationId' });
    await expect(a.sendMessage({ to: 'agent_002', text: 'x', id: 'bad id!' })).rejects.toMatchObject({ code: 'INVALID_ID' });
    // The limit comes from the server's welcome.
    await expect(a.sendMessage({ to: 'agent_002', text: 'x'.repeat(1001) })).rejects.toMatchObject({ code: 'MESSAGE_TOO_LARGE' });
    expect(await a.getConversationHistory({ contactId: 'agent_002' })).toEqual([]);
  });

  it("takes a send's metadata once, as JSON: what a toJSON says later reaches neither history nor the recipient", async () => {
    const server = await startServer();
    const a = await makeClient(server.url, 'agent_001');
    const b = await makeClient(server.url, 'agent_002');
    const gotB = collect(b);
    await Promise.all([a.connect(), b.connect()]);
    // A different answer each time it is encoded: the outbox entry, history line and frame must still agree.
    let reads = 0;
    const meta = Object.assign(Object.create({ toJSON: () => ({ task: ++reads }) }) as object, { task: 0 }) as Record<string, never>;
    const sent = await a.sendMessage({ to: 'agent_002', text: 'once', meta, waitFor: 'delivered', timeoutMs: 5000 });
    expect(sent.meta).toEqual({ task: 1 });
    await eventually(() => gotB.length === 1);
    expect(gotB[0]!.meta).toEqual({ task: 1 });
    expect((await a.getConversationHistory({ contactId: 'agent_002' })).map((m) => m.meta)).toEqual([{ task: 1 }]);
    // Metadata that does not encode to a JSON object is refused with a typed error, and nothing is queued.
    const throwing = Object.create({ toJSON: () => { throw new Error('cannot encode'); } }) as Record<string, never>;
    await expect(a.sendMessage({ to: 'agent_002', text: 'no', meta: throwing })).rejects.toMatchObject({ code: 'INVALID_OPTION', option: 'meta' });
    const notObject = Object.create({ toJSON: () => 'a string' }) as Record<string, never>;
    await expect(a.sendMessage({ to: 'agent_002', text: 'no', meta: notObject })).rejects.toMatchObject({ code: 'INVALID_OPTION', option: 'meta' });
    let deep: unknown = 1;
    for (let i = 0; i < 20_000; i++) deep = [deep];
    await expect(a.sendMessage({ to: 'agent_002', text: 'no', meta: { deep } as never })).rejects.toMatchObject({ code: 'INVALID_OPTION', option: 'meta' });
    await expect(a.sendMessage({ to: 'agent_002', text: 'no', meta: (() => 1) as never })).rejects.toMatchObject({ code: 'INVALID_OPTION', option: 'meta' });
    // What JSON makes of a value is what is sent: a Date arrives as its ISO string.
    const dated = await a.sendMessage({ to: 'agent_002', text: 'dated', meta: { when: new Date(0) } as never });
    expect(dated.meta).toEqual({ when: '1970-01-01T00:00:00.000Z' });
    expect(await a.getConversationHistory({ contactId: 'agent_002' })).toHaveLength(2);
  });

  it('fails a message to an unknown recipient with MessageRejectedError, without retrying', async () => {
    const server = await startServer({ tokens: { agent_001: 't1', agent_002: 't2' } });
    const a = await makeClient(server.url, 'agent_001', { token: 't1' });
    await a.connect();
    const err = await a.sendMessage({ to: 'agent_404', text: 'hello?', waitFor: 'acked' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MessageRejectedError);
    expect(err).toMatchObject({ code: 'MESSAGE_REJECTED', reason: 'unknown_recipient' });
    const [m] = await a.getConversationHistory({ contactId: 'agent_404' });
    expect(m).toMatchObject({ status: 'failed', error: { code: 'MESSAGE_REJECTED', nack: 'unknown_recipient' } });
  });

  it('ends a refused token in failed, with UNAUTHORIZED and no retry storm', async () => {
    const server = await startServer({ tokens: { agent_001: 'right' } });
    const proxy = await FaultProxy.start({ target: server.url });
    const a = await makeClient(proxy.url, 'agent_001', { token: 'wrong' });
    const err = await a.connect().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IMClientError);
    expect((err as IMClientError).code).toBe('UNAUTHORIZED');
    expect(a.connectionState).toBe('failed');
    await sleep(600);
    expect(proxy.connections).toBe(1);
    expect(a.connectionState).toBe('failed');
    await proxy.close();
  });

  it('refuses a second client on the same workspace, naming the holder', async () => {
    const server = await startServer();
    const workspacePath = await tempDir();
    const first = await makeClient(server.url, 'agent_001', { workspacePath });
    await first.open();
    const second = await makeClient(server.url, 'agent_001', { workspacePath });
    const err = await second.connect().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkspaceLockedError);
    expect((err as WorkspaceLockedError).holder.pid).toBe(process.pid);
    await first.close();
    await second.close();
    const third = await makeClient(server.url, 'agent_001', { workspacePath });
    await third.connect();
  });

  it('bounds waits with timeoutMs and AbortSignal, and rejects waits when closed', async () => {
    const server = await startServer();
    const a = await makeClient(server.url, 'agent_001');
    // Offline: nothing can be acked.
    await expect(a.sendMessage({ to: 'agent_002', text: 'x', waitFor: 'acked', timeoutMs: 50 })).rejects.toMatchObject({ code: 'TIMEOUT' });
    const reason = new Error('caller gave up');
    const controller = new AbortController();
    const wait = a.sendMessage({ to: 'agent_002', text: 'y', waitFor: 'delivered', signal: controller.signal });
    setTimeout(() => controller.abort(reason), 20);
    await expect(wait).rejects.toBe(reason);
    const pendingWait = expect(a.sendMessage({ to: 'agent_002', text: 'z', waitFor: 'acked' })).rejects.toMatchObject({ code: 'CLOSED' });
    await sleep(20);
    await a.close();
    await pendingWait;
    await expect(a.sendMessage({ to: 'agent_002', text: 'late' })).rejects.toMatchObject({ code: 'CLOSED' });
    expect(a.connectionState).toBe('closed');
  });

  it('cancels a queued message, which then never leaves', async () => {
    const server = await startServer();
    const a = await makeClient(server.url, 'agent_001');
    const m = await a.sendMessage({ to: 'agent_002', text: 'never mind' });
    expect(await a.cancelMessage(m.id)).toBe(true);
    expect(await a.cancelMessage(m.id)).toBe(false);
    await expect(a.waitForStatus(m.id, 'acked')).rejects.toMatchObject({ code: 'MESSAGE_CANCELLED' });
    await a.connect();
    const b = await makeClient(server.url, 'agent_002');
    await b.connect();
    await sleep(200);
    expect(await b.getConversationHistory({ contactId: 'agent_001' })).toEqual([]);
    expect((await a.getConversationHistory({ contactId: 'agent_002' }))[0]).toMatchObject({ status: 'cancelled' });
  });

  it('fails a message whose time to live runs out before it is sent', async () => {
    const server = await startServer();
    const a = await makeClient(server.url, 'agent_001');
    const m = await a.sendMessage({ to: 'agent_002', text: 'stale soon', ttlMs: 30 });
    await sleep(60);
    await a.connect();
    await expect(a.waitForStatus(m.id, 'acked', { timeoutMs: 2000 })).rejects.toMatchObject({ code: 'MESSAGE_EXPIRED' });
    await eventually(async () => (await a.getConversationHistory({ contactId: 'agent_002' }))[0]?.status === 'failed');
  });

  it('sends a caller-chosen id once even when sendMessage is called twice with it', async () => {
    const server = await startServer();
    const a = await makeClient(server.url, 'agent_001');
    const first = await a.sendMessage({ to: 'agent_002', text: 'once', id: 'task-42-report' });
    const second = await a.sendMessage({ to: 'agent_002', text: 'once', id: 'task-42-report' });
    expect(second.id).toBe(first.id);
    expect(await a.getConversationHistory({ contactId: 'agent_002' })).toHaveLength(1);
  });

  it('does not send a caller-chosen id again once it was acked, nor mistake the contact\'s message with that id for it', async () => {
    const server = await startServer();
    const a = await makeClient(server.url, 'agent_001');
    const b = await makeClient(server.url, 'agent_002');
    const gotA = collect(a);
    const gotB = collect(b);
    await Promise.all([a.connect(), b.connect()]);
    // Ids are unique per sender: the contact may use the same one.
    await b.sendMessage({ to: 'agent_001', text: 'from b', id: 'shared-id-0001', waitFor: 'acked' });
    await eventually(() => gotA.length === 1);
    const first = await a.sendMessage({ to: 'agent_002', text: 'from a', id: 'shared-id-0001', waitFor: 'acked' });
    expect(first).toMatchObject({ from: 'agent_001', status: 'acked' });
    // Sent again right after its ack (its delivered line may be on its way): the same message, not a second one.
    const again = await a.sendMessage({ to: 'agent_002', text: 'from a', id: 'shared-id-0001' });
    expect(again).toMatchObject({ from: 'agent_001', text: 'from a' });
    expect(['acked', 'delivered']).toContain(again.status);
    await a.waitForStatus('shared-id-0001', 'delivered', { conversationId: first.conversationId, timeoutMs: 5000 });
    await sleep(100);
    expect(gotB.map((m) => m.text)).toEqual(['from a']);
    const history = await a.getConversationHistory({ contactId: 'agent_002' });
    expect(history.map((m) => `${m.from}: ${m.text} ${m.status ?? ''}`.trim())).toEqual(['agent_002: from b', 'agent_001: from a delivered']);
  });

  it('waits as asked on a caller-chosen id sent again: for its delivery, or rejects with how it failed', async () => {
    const server = await startServer();
    const a = await makeClient(server.url, 'agent_001');
    await a.connect();
    await a.sendMessage({ to: 'agent_002', text: 'hello', id: 'resend-id-0001', waitFor: 'acked' });
    // agent_002 never connects: sent again, it is still not delivered.
    await expect(a.sendMessage({ to: 'agent_002', text: 'hello', id: 'resend-id-0001', waitFor: 'delivered', timeoutMs: 300 })).rejects.toMatchObject({ code: 'TIMEOUT' });
    // A message that expired before it was sent: sent again, the same failure.
    const offline = await makeClient(server.url, 'agent_003');
    await offline.sendMessage({ to: 'agent_002', text: 'stale', id: 'resend-id-0002', ttlMs: 20 });
    await sleep(50);
    await offline.connect();
    await expect(offline.waitForStatus('resend-id-0002', 'acked')).rejects.toMatchObject({ code: 'MESSAGE_EXPIRED' });
    await expect(offline.sendMessage({ to: 'agent_002', text: 'stale', id: 'resend-id-0002', waitFor: 'acked' })).rejects.toMatchObject({ code: 'MESSAGE_EXPIRED' });
    // An invalid waitFor is refused before anything is queued.
    await expect(a.sendMessage({ to: 'agent_002', text: 'never', waitFor: 'read' as never })).rejects.toMatchObject({ code: 'INVALID_OPTION' });
    expect((await a.getConversationHistory({ contactId: 'agent_002' })).map((m) => m.text)).toEqual(['hello']);
  });

  it('sends a caller-chosen id once when a second send comes while the first looks through a long history', async () => {
    const server = await startServer();
    const workspacePath = join(await tempDir('ws-'), 'agent_001');
    const first = await makeClient(server.url, 'agent_001', { workspacePath });
    await first.open();
    await first.close();
    // A long conversation: looking for an id not in it reads the whole file.
    const line = (i: number) => `${JSON.stringify({ type: 'message', id: `old-${String(i).padStart(8, '0')}`, conversationId: 'agent_001+agent_002', direction: 'out', from: 'agent_001', to: 'agent_002', text: 'x'.repeat(150), sentAt: '2026-01-01T00:00:00.000Z', status: 'failed' })}\n`;
    await writeFile(join(workspacePath, 'im_client', 'conversations', 'agent_001+agent_002.jsonl'), Array.from({ length: 60_000 }, (_, i) => line(i)).join(''));
    const a = await makeClient(server.url, 'agent_001', { workspacePath });
    await a.connect();
    let t0 = performance.now();
    await a.sendMessage({ to: 'agent_002', text: 'probe', id: 'probe-id-0001', waitFor: 'acked' });
    const lookup = performance.now() - t0;
    // The second send starts halfway through the first one's look: before, it finished looking after the
    // first was acked, found nothing (its read began before the first's line), and sent it again.
    t0 = performance.now();
    const sends = [a.sendMessage({ to: 'agent_002', text: 'once', id: 'race-id-0001', waitFor: 'acked' })];
    await sleep(lookup / 2);
    sends.push(a.sendMessage({ to: 'agent_002', text: 'once', id: 'race-id-0001', waitFor: 'acked' }));
    const [one, two] = await Promise.all(sends);
    expect(two!.id).toBe(one!.id);
    const history = await a.getConversationHistory({ contactId: 'agent_002', limit: 5 });
    expect(history.filter((m) => m.id === 'race-id-0001')).toHaveLength(1);
  });

  it('refuses a caller-chosen id already queued for another contact, instead of pretending to queue it', async () => {
    const server = await startServer();
    const a = await makeClient(server.url, 'agent_001');
    // Offline: the first is queued, not sent.
    await a.sendMessage({ to: 'agent_002', text: 'to 2', id: 'one-id-0001' });
    await expect(a.sendMessage({ to: 'agent_003', text: 'to 3', id: 'one-id-0001' })).rejects.toMatchObject({ code: 'INVALID_OPTION', option: 'id' });
    expect(await a.getConversationHistory({ contactId: 'agent_003' })).toEqual([]);
    // The same contact: the queued message, not a second one.
    expect(await a.sendMessage({ to: 'agent_002', text: 'to 2', id: 'one-id-0001' })).toMatchObject({ id: 'one-id-0001', status: 'queued' });
    expect(await a.getConversationHistory({ contactId: 'agent_002' })).toHaveLength(1);
  });

  it('sends a caller-chosen id once when two sends of it race, and either can be waited on', async () => {
    const server = await startServer();
    const workspacePath = join(await tempDir('ws-'), 'agent_001');
    const a = await makeClient(server.url, 'agent_001', { workspacePath });
    await a.connect();
    // The second call comes while the first is still being made durable.
    const [first, second] = await Promise.all([
      a.sendMessage({ to: 'agent_002', text: 'once', id: 'task-43-report', waitFor: 'acked' }),
      a.sendMessage({ to: 'agent_002', text: 'once', id: 'task-43-report' }),
    ]);
    expect(second.id).toBe(first.id);
    expect(first.status).toBe('acked');
    await a.close();
    const again = await makeClient(server.url, 'agent_001', { workspacePath });
    const history = await again.getConversationHistory({ contactId: 'agent_002' });
    expect(history).toHaveLength(1);
    expect(history[0]).toMatchObject({ id: 'task-43-report', status: 'acked' });
  });
});

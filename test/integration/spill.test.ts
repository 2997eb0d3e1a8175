import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import type { IMMessage } from '../../src/index.js';
import { collect, eventually, makeClient } from '../helpers/clients.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

/** Texts received per sender, in arrival order. */
function texts(got: IMMessage[], from: string): string[] {
  return got.filter((m) => m.from === from).map((m) => m.text);
}

describe('a queue longer than maxQueuedInMemory', () => {
  it('waits in outbox.jsonl and is sent in order, each message once, to every contact', async () => {
    const server = await startServer();
    const a = await makeClient(server.url, 'agent_a', { maxQueuedInMemory: 20, window: 8 });
    const b = await makeClient(server.url, 'agent_b');
    const c = await makeClient(server.url, 'agent_c');
    const gotB = collect(b);
    const gotC = collect(c);
    await Promise.all([b.connect(), c.connect()]);
    // Offline: 150 messages to two contacts, interleaved; most of them spill.
    for (let i = 0; i < 150; i++) await a.sendMessage({ to: i % 3 === 0 ? 'agent_c' : 'agent_b', text: `m${i}` });
    const journal = (await readFile(join(a.workspacePath, 'im_client', 'outbox.jsonl'), 'utf8')).trim().split('\n');
    expect(journal).toHaveLength(150);

    await a.connect();
    await eventually(() => gotB.length === 100 && gotC.length === 50, 10_000, 'every message delivered');
    const expected = (to: string) => Array.from({ length: 150 }, (_, i) => i).filter((i) => (i % 3 === 0) === (to === 'agent_c')).map((i) => `m${i}`);
    expect(texts(gotB, 'agent_a')).toEqual(expected('agent_b'));
    expect(texts(gotC, 'agent_a')).toEqual(expected('agent_c'));
    const history = await a.getConversationHistory({ contactId: 'agent_b', limit: 200 });
    expect(history.map((m) => m.text)).toEqual(expected('agent_b'));
    await eventually(async () => (await a.getConversationHistory({ contactId: 'agent_b', limit: 200 })).every((m) => m.status === 'delivered'), 10_000, 'every message delivered');
  });

  it('cancels a spilled message, and a resend of a spilled caller id is not a second message', async () => {
    const server = await startServer();
    const a = await makeClient(server.url, 'agent_a', { maxQueuedInMemory: 10 });
    const b = await makeClient(server.url, 'agent_b');
    const gotB = collect(b);
    await b.connect();
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) ids.push((await a.sendMessage({ to: 'agent_b', text: `m${i}`, id: `msg-${String(i).padStart(4, '0')}` })).id);
    // m45 waits in the journal only; it can still be cancelled.
    expect(await a.cancelMessage(ids[45]!)).toBe(true);
    // Sending m50 again with its id returns the queued message instead of queueing it twice.
    const again = await a.sendMessage({ to: 'agent_b', text: 'm50', id: ids[50] });
    expect(again).toMatchObject({ id: ids[50], status: 'queued' });
    // Its id to another contact is refused, spilled as it is (ids are unique per sender).
    await expect(a.sendMessage({ to: 'agent_c', text: 'm51', id: ids[51] })).rejects.toMatchObject({ code: 'INVALID_OPTION', option: 'id' });

    await a.connect();
    await eventually(() => gotB.length === 59, 10_000, '59 messages delivered');
    await new Promise((r) => setTimeout(r, 200));
    expect(gotB.map((m) => m.text)).toEqual(Array.from({ length: 60 }, (_, i) => `m${i}`).filter((t) => t !== 'm45'));
    const [cancelled] = (await a.getConversationHistory({ contactId: 'agent_b', limit: 100 })).filter((m) => m.id === ids[45]);
    expect(cancelled?.status).toBe('cancelled');
  });

  it('survives a restart while spilled: the next run sends them all, in order', async () => {
    const server = await startServer();
    const first = await makeClient(server.url, 'agent_a', { maxQueuedInMemory: 10 });
    for (let i = 0; i < 80; i++) await first.sendMessage({ to: 'agent_b', text: `m${i}` });
    await first.close();
    const b = await makeClient(server.url, 'agent_b');
    const gotB = collect(b);
    await b.connect();
    const second = await makeClient(server.url, 'agent_a', { maxQueuedInMemory: 10, workspacePath: first.workspacePath });
    await second.connect();
    await eventually(() => gotB.length === 80, 10_000, 'every message delivered');
    expect(gotB.map((m) => m.text)).toEqual(Array.from({ length: 80 }, (_, i) => `m${i}`));
  });

  it('fails spilled messages whose time to live ran out while offline, as it fails those in memory', async () => {
    const server = await startServer();
    const clock = new SimulatedClock();
    const a = await makeClient(server.url, 'agent_a', { maxQueuedInMemory: 10, clock });
    const ids: string[] = [];
    // The 10 kept in memory live for a day, as do the last 10; m10-m29, in the journal only, for 50 ms.
    const short = (i: number) => i >= 10 && i < 30;
    for (let i = 0; i < 40; i++) ids.push((await a.sendMessage({ to: 'agent_b', text: `m${i}`, ttlMs: short(i) ? 50 : 86_400_000 })).id);
    const outcomes = ids.slice(10, 30).map((id) => a.waitForStatus(id, 'acked').then(() => 'acked', (err: { code?: string }) => err.code ?? 'error'));
    await new Promise((r) => setTimeout(r, 100));
    // The expiry sweep runs on the client's clock, without a connection.
    clock.increment(30_000);
    expect(await Promise.all(outcomes)).toEqual(Array.from({ length: 20 }, () => 'MESSAGE_EXPIRED'));
    const history = await a.getConversationHistory({ contactId: 'agent_b', limit: 100 });
    expect(history.map((m) => m.status)).toEqual(Array.from({ length: 40 }, (_, i) => (short(i) ? 'failed' : 'queued')));
    // The rest still go, in order, once online.
    const b = await makeClient(server.url, 'agent_b');
    const gotB = collect(b);
    await b.connect();
    await a.connect();
    await eventually(() => gotB.length === 20, 10_000, 'the unexpired messages delivered');
    expect(gotB.map((m) => m.text)).toEqual(Array.from({ length: 40 }, (_, i) => i).filter((i) => !short(i)).map((i) => `m${i}`));
  });

  it('fails spilled messages that expire before those spilled ahead of them, and only those, sweep after sweep', async () => {
    const server = await startServer();
    const clock = new SimulatedClock();
    const a = await makeClient(server.url, 'agent_a', { maxQueuedInMemory: 10, clock });
    const errors: string[] = [];
    a.on('error', (err) => errors.push(`${err.code}: ${err.message}`));
    // m0-m9 in memory; m10-m39 in the journal only, where m20-m29 live for 50 ms and the rest for a day.
    const short = (i: number) => i >= 20 && i < 30;
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) ids.push((await a.sendMessage({ to: 'agent_b', text: `m${i}`, ttlMs: short(i) ? 50 : 86_400_000 })).id);
    const statuses = async () => (await a.getConversationHistory({ contactId: 'agent_b', limit: 100 })).map((m) => m.status);
    // A sweep before anything expired fails nothing.
    clock.increment(30_000);
    await new Promise((r) => setTimeout(r, 50));
    expect(await statuses()).toEqual(Array.from({ length: 40 }, () => 'queued'));
    await new Promise((r) => setTimeout(r, 100));
    clock.increment(30_000);
    await eventually(async () => (await statuses()).filter((s) => s === 'failed').length === 10, 10_000, 'the short-lived messages failed');
    // The next sweeps find nothing more to fail.
    clock.increment(30_000);
    clock.increment(30_000);
    await new Promise((r) => setTimeout(r, 100));
    expect(await statuses()).toEqual(Array.from({ length: 40 }, (_, i) => (short(i) ? 'failed' : 'queued')));
    const b = await makeClient(server.url, 'agent_b');
    const gotB = collect(b);
    await b.connect();
    await a.connect();
    await eventually(() => gotB.length === 30, 10_000, 'the 30 others delivered');
    expect(gotB.map((m) => m.text)).toEqual(Array.from({ length: 40 }, (_, i) => i).filter((i) => !short(i)).map((i) => `m${i}`));
    expect(errors).toEqual([]);
  });

  it('after a sweep fails a spilled backlog, later spilled messages still go out, with no error', async () => {
    const server = await startServer();
    const clock = new SimulatedClock();
    const a = await makeClient(server.url, 'agent_a', { maxQueuedInMemory: 10, clock });
    const errors: string[] = [];
    a.on('error', (err) => errors.push(`${err.code}: ${err.message}`));
    // 200 short-lived messages, 190 of them in the journal only: the sweep fails them all while the
    // queue in memory refills from the journal at the same time.
    for (let i = 0; i < 200; i++) await a.sendMessage({ to: 'agent_b', text: `old ${i}`, ttlMs: 50 });
    await new Promise((r) => setTimeout(r, 100));
    clock.increment(30_000);
    await eventually(async () => (await a.getConversationHistory({ contactId: 'agent_b', limit: 300 })).every((m) => m.status === 'failed'), 10_000, 'every old message failed');
    for (let i = 0; i < 30; i++) await a.sendMessage({ to: 'agent_b', text: `new ${i}` });
    const b = await makeClient(server.url, 'agent_b');
    const gotB = collect(b);
    await b.connect();
    await a.connect();
    await eventually(() => gotB.length === 30, 10_000, 'the 30 new messages delivered');
    expect(gotB.map((m) => m.text)).toEqual(Array.from({ length: 30 }, (_, i) => `new ${i}`));
    expect(errors).toEqual([]);
  });
});

describe('a pending queue longer than maxQueuedInMemory', () => {
  it('keeps the rest in its files, across a restart, and a digital employee works through all of it in order', async () => {
    const server = await startServer();
    const boss = await makeClient(server.url, 'boss');
    const workspacePath = join(await tempDir('ws-'), 'worker');
    const worker = await makeClient(server.url, 'worker', { mode: 'queue', maxQueuedInMemory: 10, workspacePath });
    await Promise.all([boss.connect(), worker.connect()]);
    const jobs = Array.from({ length: 60 }, (_, i) => `job ${i} ${'ü'.repeat(i % 4)}`);
    for (const text of jobs.slice(0, 40)) await boss.sendMessage({ to: 'worker', text });
    await eventually(async () => (await worker.getPendingMessages()).length === 40, 10_000, 'first jobs queued');
    await worker.close();
    // Restarted: what was queued is read from the snapshot (most of it left there), more arrives into the log.
    const again = await makeClient(server.url, 'worker', { mode: 'queue', maxQueuedInMemory: 10, workspacePath });
    await again.connect();
    for (const text of jobs.slice(40)) await boss.sendMessage({ to: 'worker', text });
    await eventually(async () => (await again.getPendingMessages()).length === 60, 10_000, 'every job queued');
    expect((await again.getPendingMessages({ limit: 60 })).map((m) => m.text)).toEqual(jobs);
    const done: string[] = [];
    expect(await again.drainPendingMessages((m) => void done.push(m.text), { untilEmpty: true })).toBe(60);
    expect(done).toEqual(jobs);
    expect(await again.getPendingMessages()).toEqual([]);
  });
});

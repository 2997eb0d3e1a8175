import { SimulatedClock } from 'xstate';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import type { IMClient } from '../../src/api/client.js';
import { ConversationStore } from '../../src/core/storage/ConversationStore.js';
import { eventually, makeClient } from '../helpers/clients.js';
import { sleep, startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

async function workerWithJobs(n: number, options: { leaseMs?: number; workspacePath?: string; clock?: SimulatedClock } = {}) {
  const server = await startServer();
  const boss = await makeClient(server.url, 'boss');
  const worker = await makeClient(server.url, 'worker', { mode: 'queue', ...options });
  await Promise.all([boss.connect(), worker.connect()]);
  for (let i = 0; i < n; i++) await boss.sendMessage({ to: 'worker', text: `job ${i}` });
  await eventually(async () => (await worker.getPendingMessages()).length === n, 10_000, 'jobs queued');
  return { server, boss, worker };
}

const texts = (ms: Array<{ text: string }>) => ms.map((m) => m.text);

describe('pending queue (digital employee)', () => {
  it('claims the oldest messages with a lease; claimed ones are not handed out twice', async () => {
    const { worker } = await workerWithJobs(5);
    const first = await worker.claimPendingMessages({ max: 2, leaseMs: 10_000 });
    expect(texts(first)).toEqual(['job 0', 'job 1']);
    expect(first[0]!.pending.attempts).toBe(1);
    expect(Date.parse(first[0]!.pending.leaseUntil!)).toBeGreaterThan(Date.now());
    expect(texts(await worker.claimPendingMessages({ max: 10 }))).toEqual(['job 2', 'job 3', 'job 4']);
    expect(await worker.claimPendingMessages({ max: 10 })).toEqual([]);
    // Still pending (claimed) until acknowledged.
    expect(await worker.getPendingMessages()).toHaveLength(5);
    expect(await worker.ackPendingMessages(first.map((m) => m.id))).toBe(2);
    expect(texts(await worker.getPendingMessages())).toEqual(['job 2', 'job 3', 'job 4']);
  });

  it('queues two senders\' messages that share an id, and acks each by sender and id', async () => {
    const server = await startServer();
    const [a, c] = [await makeClient(server.url, 'agent_a'), await makeClient(server.url, 'agent_c')];
    const workspacePath = join(await tempDir('ws-'), 'worker');
    const worker = await makeClient(server.url, 'worker', { mode: 'queue', workspacePath });
    await Promise.all([a.connect(), c.connect(), worker.connect()]);
    // Message ids are unique per sender: both are delivered, and both must be processed.
    await a.sendMessage({ to: 'worker', text: 'report from a', id: 'daily_report_2026', waitFor: 'delivered' });
    await c.sendMessage({ to: 'worker', text: 'report from c', id: 'daily_report_2026', waitFor: 'delivered' });
    const both = await worker.getPendingMessages();
    expect(both.map((m) => `${m.from}: ${m.text}`)).toEqual(['agent_a: report from a', 'agent_c: report from c']);
    // The id alone could name either: refused, naming the senders, and nothing is acked.
    await expect(worker.ackPendingMessages(['daily_report_2026'])).rejects.toMatchObject({ code: 'INVALID_OPTION', message: expect.stringContaining('agent_a, agent_c') });
    expect(await worker.getPendingMessages()).toHaveLength(2);
    // A pending message names itself; so does { from, id }.
    const [fromA] = await worker.claimPendingMessages({ max: 1 });
    expect(await worker.ackPendingMessages([fromA!])).toBe(1);
    await worker.close();
    // After a restart (snapshot plus log replayed), the other one is still there, and its id alone is now enough.
    const again = await makeClient(server.url, 'worker', { mode: 'queue', workspacePath });
    expect((await again.getPendingMessages()).map((m) => m.from)).toEqual(['agent_c']);
    expect(await again.ackPendingMessages([{ from: 'agent_c', id: 'daily_report_2026' }])).toBe(1);
    expect(await again.getPendingMessages()).toEqual([]);
  });

  it('returns a released claim, and a lapsed one, to the queue', async () => {
    const { worker } = await workerWithJobs(2);
    const [a, b] = await worker.claimPendingMessages({ max: 2, leaseMs: 150 });
    await worker.releasePendingMessages([a!.id]);
    const again = await worker.claimPendingMessages({ max: 5, leaseMs: 10_000 });
    expect(texts(again)).toEqual(['job 0']);
    expect(again[0]!.pending.attempts).toBe(2);
    // b's lease lapses: it comes back without anyone releasing it.
    await sleep(250);
    const lapsed = await worker.claimPendingMessages({ max: 5 });
    expect(lapsed.map((m) => m.id)).toEqual([b!.id]);
    expect(lapsed[0]!.pending.attempts).toBe(2);
  });

  it('keeps claims across a restart, and lets them lapse on their original deadline', async () => {
    const workspacePath = join(await tempDir(), 'worker');
    const { server, worker } = await workerWithJobs(1, { workspacePath });
    const [job] = await worker.claimPendingMessages({ max: 1, leaseMs: 400 });
    await worker.close();
    const restarted = await makeClient(server.url, 'worker', { mode: 'queue', workspacePath });
    await restarted.open();
    expect(await restarted.claimPendingMessages({ max: 1 })).toEqual([]);
    const [pending] = await restarted.getPendingMessages();
    expect(pending!.pending.leaseUntil).toBe(job!.pending.leaseUntil);
    await eventually(async () => (await restarted.claimPendingMessages({ max: 1 }))[0]?.id === job!.id, 3000, 'lapse after restart');
  });

  it('extends a lease, all or nothing', async () => {
    const { worker } = await workerWithJobs(2);
    const [job, other] = await worker.claimPendingMessages({ max: 2, leaseMs: 400 });
    await worker.extendPendingLease([job!], 10_000);
    // One not claimed refuses the whole call: the other claim keeps its lease and lapses.
    await expect(worker.extendPendingLease([other!, 'not-claimed-id'], 10_000)).rejects.toMatchObject({ code: 'INVALID_OPTION' });
    await sleep(500);
    expect(texts(await worker.claimPendingMessages({ max: 2 }))).toEqual([other!.text]);
  });

  it('drains with a handler: acknowledges what it finishes, retries what throws', async () => {
    const { worker } = await workerWithJobs(6);
    const done: string[] = [];
    let failedOnce = false;
    const processed = await worker.drainPendingMessages(
      async (m) => {
        await sleep(10);
        if (m.text === 'job 3' && !failedOnce) {
          failedOnce = true;
          throw new Error('flaky tool');
        }
        done.push(m.text);
      },
      { concurrency: 3, untilEmpty: true },
    );
    expect(processed).toBe(6);
    expect([...done].sort()).toEqual(['job 0', 'job 1', 'job 2', 'job 3', 'job 4', 'job 5']);
    expect(await worker.getPendingMessages()).toEqual([]);
  });

  it('skips a claimed message whose lease lapsed before its turn: only a handler that outlives its lease runs twice', async () => {
    const clock = new SimulatedClock();
    const { worker } = await workerWithJobs(20, { clock, leaseMs: 60_000 });
    const calls = new Map<string, number>();
    let started = 0;
    let outlived: string | undefined;
    await worker.drainPendingMessages(
      async (m) => {
        calls.set(m.text, (calls.get(m.text) ?? 0) + 1);
        if (++started === 8) {
          // By now both workers claim in batches: every claim lapses, this handler's own too,
          // while the other worker is in the middle of its batch.
          outlived = m.text;
          clock.increment(61_000);
          await new Promise((r) => setTimeout(r, 200));
        } else {
          await new Promise((r) => setTimeout(r, 5));
        }
      },
      { concurrency: 2, untilEmpty: true },
    );
    expect([...calls.keys()].sort()).toEqual(Array.from({ length: 20 }, (_, i) => `job ${i}`).sort());
    for (const [text, count] of calls) if (text !== outlived) expect(count, text).toBe(1);
    expect(await worker.getPendingMessages()).toEqual([]);
  });

  it('drains until aborted, picking up messages as they arrive', async () => {
    const { boss, worker } = await workerWithJobs(0);
    const controller = new AbortController();
    const seen: string[] = [];
    const draining = worker.drainPendingMessages((m) => void seen.push(m.text), { signal: controller.signal });
    await boss.sendMessage({ to: 'worker', text: 'late job' });
    await eventually(() => seen.length === 1);
    controller.abort();
    expect(await draining).toBe(1);
    expect(seen).toEqual(['late job']);
  });

  it('counts an extension as the same claim: a handler that extends its lease and then throws is retried soon', async () => {
    const { worker } = await workerWithJobs(1);
    const controller = new AbortController();
    const attempts: number[] = [];
    const draining = worker.drainPendingMessages(
      async (m) => {
        attempts.push(m.pending.attempts);
        if (attempts.length > 1) return;
        // A heartbeat, then a failure: the message goes back after the first retry pause (250 ms).
        await worker.extendPendingLease([m], 60_000);
        throw new Error('transient');
      },
      { signal: controller.signal, leaseMs: 60_000 },
    );
    await eventually(() => attempts.length === 2, 5000, 'retried');
    controller.abort();
    expect(await draining).toBe(1);
    expect(attempts).toEqual([1, 2]);
    expect(await worker.getPendingMessages()).toEqual([]);
  });

  it('does not acknowledge a message its handler gave back and another worker took', async () => {
    const { worker } = await workerWithJobs(1);
    const controller = new AbortController();
    const log: string[] = [];
    let second: () => void = () => {};
    const secondStarted = new Promise<void>((r) => (second = r));
    const draining = worker.drainPendingMessages(
      async (m) => {
        log.push(`run ${m.pending.attempts}`);
        if (m.pending.attempts === 1) {
          // "Not now": given back, then taken by the other worker before this handler returns.
          await worker.releasePendingMessages([m]);
          await secondStarted;
          return;
        }
        second();
        if (m.pending.attempts === 2) {
          await sleep(100);
          throw new Error('the second run fails');
        }
      },
      { signal: controller.signal, concurrency: 2 },
    );
    // The second run's failure is retried (a third run), which only happens if the first did not ack it away.
    await eventually(() => log.includes('run 3'), 5000, 'a third run');
    controller.abort();
    await draining;
    expect(await worker.getPendingMessages()).toEqual([]);
  });

  it('on close, lets the running handler finish and record its ack, and gives back the claims it had not started', async () => {
    const workspacePath = join(await tempDir('ws-'), 'worker');
    const { server, worker } = await workerWithJobs(8, { workspacePath });
    let finish: () => void = () => {};
    const running = new Promise<void>((r) => (finish = r));
    const seen: string[] = [];
    const draining = worker.drainPendingMessages(async (m) => {
      seen.push(m.text);
      // Batches of 1, 2, 4...: job 3 is the first of a batch of four, held until the client is closing.
      if (m.text === 'job 3') await running;
    });
    await eventually(() => seen.length === 4);
    const claimed = (await worker.getPendingMessages()).filter((m) => m.pending.leaseUntil !== undefined);
    expect(texts(claimed)).toEqual(['job 3', 'job 4', 'job 5', 'job 6']);
    const closed = worker.close();
    await sleep(50);
    finish();
    await closed;
    expect(await draining).toBe(4);
    const again = await makeClient(server.url, 'worker', { mode: 'queue', workspacePath });
    const left = await again.getPendingMessages();
    // job 3's ack was written; the batch's unstarted claims are back in the queue, unclaimed, in order.
    expect(texts(left)).toEqual(['job 4', 'job 5', 'job 6', 'job 7']);
    expect(left.every((m) => m.pending.leaseUntil === undefined)).toBe(true);
  });

  it('on close, gives back at once a message waiting out its retry pause', async () => {
    const workspacePath = join(await tempDir('ws-'), 'worker');
    const { server, worker } = await workerWithJobs(1, { workspacePath });
    let threw = false;
    const draining = worker.drainPendingMessages(
      () => {
        threw = true;
        throw new Error('transient');
      },
      { leaseMs: 60_000 },
    );
    await eventually(() => threw);
    await worker.close();
    expect(await draining).toBe(0);
    const again = await makeClient(server.url, 'worker', { mode: 'queue', workspacePath });
    expect(texts(await again.claimPendingMessages({ max: 1 }))).toEqual(['job 0']);
  });

  it('lets a handler close the client: the close waits for it to return, and its message is acknowledged', async () => {
    const workspacePath = join(await tempDir('ws-'), 'worker');
    const { server, worker } = await workerWithJobs(3, { workspacePath });
    const errors: string[] = [];
    worker.on('error', (err) => errors.push(err.message));
    let closed: Promise<void> | undefined;
    const draining = worker.drainPendingMessages((m) => {
      // A "shut down" job: asks for the close and returns (awaiting it here would wait out its bound).
      if (m.text === 'job 0') closed = worker.close();
    });
    await eventually(() => closed !== undefined);
    const started = Date.now();
    await closed;
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await draining).toBe(1);
    await sleep(100);
    expect(errors).toEqual([]);
    const again = await makeClient(server.url, 'worker', { mode: 'queue', workspacePath });
    expect(texts(await again.claimPendingMessages({ max: 10 }))).toEqual(['job 1', 'job 2']);
  });

  it('does not acknowledge a message its handler gave back', async () => {
    const { worker } = await workerWithJobs(1);
    const controller = new AbortController();
    const runs: number[] = [];
    const draining = worker.drainPendingMessages(
      async (m) => {
        runs.push(m.pending.attempts);
        if (runs.length === 1) await worker.releasePendingMessages([m]);
      },
      { signal: controller.signal },
    );
    await eventually(() => runs.length === 2, 5000, 'run again after being given back');
    controller.abort();
    expect(await draining).toBe(1);
    expect(runs).toEqual([1, 2]);
    expect(await worker.getPendingMessages()).toEqual([]);
  });

  it('does not queue a message twice when its delivery batch is retried after another write failed', async () => {
    const { worker, boss } = await workerWithJobs(0);
    const errors: string[] = [];
    worker.on('error', (err) => errors.push(err.message));
    // The disk fails once, for the history write of the incoming message only (a fault no real file
    // can be made to give on demand here): the pending queue's add, made alongside, succeeds.
    const append = ConversationStore.prototype.append;
    let failed = false;
    const spy = vi.spyOn(ConversationStore.prototype, 'append').mockImplementation(function (this: ConversationStore, id, records) {
      if (!failed && records.some((r) => r.type === 'message' && r.direction === 'in')) {
        failed = true;
        return sleep(50).then(() => Promise.reject(Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' })));
      }
      return append.call(this, id, records);
    });
    try {
      const seen: string[] = [];
      const controller = new AbortController();
      const draining = worker.drainPendingMessages((m) => void seen.push(m.text), { signal: controller.signal });
      await boss.sendMessage({ to: 'worker', text: 'job once' });
      await eventually(async () => (await worker.getConversationHistory({ contactId: 'boss' })).length === 1, 5000, 'history written on a retry');
      await sleep(300);
      controller.abort();
      expect(await draining).toBe(1);
      expect(seen).toEqual(['job once']);
      expect(errors.some((e) => e.includes('EIO'))).toBe(true);
      expect(await worker.getPendingMessages()).toEqual([]);
    } finally {
      spy.mockRestore();
    }
  });

  it('has an empty queue in callback mode', async () => {
    const server = await startServer();
    const boss = await makeClient(server.url, 'boss');
    const plain: IMClient = await makeClient(server.url, 'plain');
    const got: string[] = [];
    plain.onMessage((m) => got.push(m.text));
    await Promise.all([boss.connect(), plain.connect()]);
    await boss.sendMessage({ to: 'plain', text: 'hi' });
    await eventually(() => got.length === 1);
    expect(await plain.getPendingMessages()).toEqual([]);
  });
});

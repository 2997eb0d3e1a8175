import { open as fsOpen } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { drainPending } from '../../../src/core/messages/drainPending.js';
import { PendingQueue } from '../../../src/core/messages/PendingQueue.js';
import { JsonlWriter } from '../../../src/fs/JsonlWriter.js';
import { PendingQueueStore } from '../../../src/core/storage/PendingQueueStore.js';
import type { MessageRecord } from '../../../src/core/storage/records.js';
import { tempDir } from '../../helpers/tmp.js';

const T = '2026-01-01T00:00:00.000Z';
const message = (n: number): MessageRecord => ({ type: 'message', id: `in_${String(n).padStart(8, '0')}`, conversationId: 'agent_001+agent_002', direction: 'in', from: 'agent_002', to: 'agent_001', text: `m${n}`, sentAt: T, seq: n });

async function open() {
  const dir = await tempDir();
  const [snap, log] = [join(dir, 'pending.json'), join(dir, 'pending.log.jsonl')];
  const store = await PendingQueueStore.open(snap, log);
  const errors: unknown[] = [];
  const queue = new PendingQueue({ store, onError: (err) => errors.push(err) });
  await queue.start();
  return { store, queue, errors, snap, log };
}

/** The next line the queue log appends fails (the disk's fault, which no real file gives on demand here). */
function failNextLogWrite() {
  vi.spyOn(JsonlWriter.prototype, 'append').mockImplementationOnce(() => Promise.reject(Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' })));
}

/** What the queue holds in memory, and what a restart would find on disk: the same. */
async function bothSides(queue: PendingQueue, snap: string, log: string) {
  const memory = (await queue.list()).map((m) => [m.text, m.pending.attempts, m.pending.leaseUntil !== undefined]);
  const disk = (await PendingQueueStore.read(snap, log)).map((i) => [i.message.text, i.attempts, i.leaseUntil !== undefined]);
  return { memory, disk };
}

describe('PendingQueue', () => {
  it('rejects a claim, extension, release or ack whose log line could not be written, and memory stays what the disk says', async () => {
    const { store, queue, errors, snap, log } = await open();
    await queue.add([message(1), message(2)]);

    failNextLogWrite();
    await expect(queue.claim(1, 60_000)).rejects.toThrow('EIO');
    // Not claimed on disk, so not in memory either: handed out again, as its first attempt.
    const [c] = await queue.claimKeyed(1, 60_000);
    expect([c!.message.text, c!.message.pending.attempts]).toEqual(['m1', 1]);

    const lease = store.get(c!.key)!.leaseUntil;
    failNextLogWrite();
    await expect(queue.extend([c!.key], 600_000)).rejects.toThrow('EIO');
    expect(store.get(c!.key)!.leaseUntil).toBe(lease);

    failNextLogWrite();
    await expect(queue.ack([c!.key])).rejects.toThrow('EIO');
    // Still claimed, in memory as on disk (until its lease ends): not handed out to anyone else.
    expect(await bothSides(queue, snap, log)).toEqual({
      memory: [['m2', 0, false], ['m1', 1, true]],
      disk: [['m1', 1, true], ['m2', 0, false]],
    });
    const [c2] = await queue.claimKeyed(10, 60_000);
    expect(c2!.message.text).toBe('m2');
    failNextLogWrite();
    await expect(queue.release([c2!.key])).rejects.toThrow('EIO');
    // Not given back on disk: still claimed here too.
    expect(queue.holds(c2!.key, 1)).toBe(true);
    await queue.release([c2!.key]);
    // Acknowledging again works, and reaches the disk.
    expect(await queue.ack([c!.key])).toBe(1);
    expect(await bothSides(queue, snap, log)).toEqual({ memory: [['m2', 1, false]], disk: [['m2', 1, false]] });
    // Each failure went to its caller, not also to the error listener.
    expect(errors).toEqual([]);
    queue.stop();
    await store.close();
  });

  it('refuses an ack or a give-back once stopped (closed), starting nothing that would outlive the close', async () => {
    const { store, queue } = await open();
    await queue.add([message(1)]);
    const [c] = await queue.claimKeyed(1, 60_000);
    queue.stop();
    await expect(queue.ack([c!.key])).rejects.toMatchObject({ code: 'CLOSED' });
    await expect(queue.release([c!.key])).rejects.toMatchObject({ code: 'CLOSED' });
    expect(store.get(c!.key)!.leaseUntil).toBeDefined();
    await store.close();
  });

  it('undoes two changes of one message that failed in the same write, whichever is undone first', async () => {
    const { store, queue, snap, log } = await open();
    await queue.add([message(1)]);
    const key = queue.keys([message(1).id])[0]!;
    // A claim and an ack issued together share a write, which fails.
    vi.spyOn(JsonlWriter.prototype, 'append')
      .mockImplementationOnce(() => Promise.reject(new Error('EIO: i/o error, write')))
      .mockImplementationOnce(() => Promise.reject(new Error('EIO: i/o error, write')));
    const claiming = queue.claim(1, 60_000);
    const acking = queue.ack([key]);
    await expect(claiming).rejects.toThrow('EIO');
    await expect(acking).rejects.toThrow('EIO');
    vi.restoreAllMocks();
    expect(await bothSides(queue, snap, log)).toEqual({ memory: [['m1', 0, false]], disk: [['m1', 0, false]] });
    // Unclaimed in memory as on disk: handed out at once.
    expect((await queue.claim(1, 60_000)).map((m) => [m.text, m.pending.attempts])).toEqual([['m1', 1]]);
    queue.stop();
    await store.close();
  });

  it('undoes an extension and a give-back that failed in the same write, newest first', async () => {
    const { store, queue, snap, log } = await open();
    await queue.add([message(1)]);
    const [c] = await queue.claimKeyed(1, 60_000);
    const onDisk = (await PendingQueueStore.read(snap, log))[0]!.leaseUntil;
    vi.spyOn(JsonlWriter.prototype, 'append')
      .mockImplementationOnce(() => Promise.reject(new Error('EIO: i/o error, write')))
      .mockImplementationOnce(() => Promise.reject(new Error('EIO: i/o error, write')));
    const extending = queue.extend([c!.key], 600_000);
    const releasing = queue.release([c!.key]);
    await expect(extending).rejects.toThrow('EIO');
    await expect(releasing).rejects.toThrow('EIO');
    vi.restoreAllMocks();
    // Claimed until the first deadline, in memory as on disk.
    expect(store.get(c!.key)!.leaseUntil).toBe(onDisk);
    expect((await PendingQueueStore.read(snap, log))[0]!.leaseUntil).toBe(onDisk);
    queue.stop();
    await store.close();
  });

  it('writes the snapshot again when a change it took in then fails', async () => {
    const { store, snap, log } = await open();
    await store.add([{ message: message(1), enqueuedAt: T, attempts: 0 }]);
    const key = [...store.entries()][0]![0];
    const compacting = store.compact();
    vi.spyOn(JsonlWriter.prototype, 'append').mockImplementationOnce(() => Promise.reject(new Error('EIO: i/o error, write')));
    await expect(store.ack([key])).rejects.toThrow('EIO');
    await compacting;
    vi.restoreAllMocks();
    // The ack failed: the message is queued, in memory and (once the snapshot is written again) on disk.
    expect(store.size).toBe(1);
    await new Promise((r) => setTimeout(r, 100));
    expect(await PendingQueueStore.read(snap, log)).toHaveLength(1);
    await store.close();
  });

  it('extends the claim it holds without counting a new attempt, also after a restart', async () => {
    const { store, queue, snap, log } = await open();
    await queue.add([message(1)]);
    const [c] = await queue.claimKeyed(1, 1_000);
    const until = Date.parse(c!.message.pending.leaseUntil!);
    await queue.extend([c!.key], 60_000);
    expect(store.get(c!.key)!.attempts).toBe(1);
    expect(Date.parse(store.get(c!.key)!.leaseUntil!)).toBeGreaterThan(until + 50_000);
    expect(queue.holds(c!.key, c!.message.pending.attempts)).toBe(true);
    queue.stop();
    // Replayed from the log (no compaction: the process stops here), the extension holds.
    const [item] = await PendingQueueStore.read(snap, log);
    expect(item!.attempts).toBe(1);
    expect(Date.parse(item!.leaseUntil!)).toBeGreaterThan(until + 50_000);
    await store.close();
  });

  it('undoes a failed change only where nothing changed the message since', async () => {
    const { store, snap, log } = await open();
    await store.add([{ message: message(1), enqueuedAt: T, attempts: 0 }]);
    const key = [...store.entries()][0]![0];
    await store.claim([key], '2026-01-01T00:01:00.000Z');
    // The give-back's line fails, but only after a new claim of the same message went through.
    vi.spyOn(JsonlWriter.prototype, 'append').mockImplementationOnce(() => new Promise((_, reject) => setTimeout(() => reject(new Error('EIO: i/o error, write')), 20)));
    const released = store.release([key]);
    await store.claim([key], '2026-01-01T00:09:00.000Z');
    await expect(released).rejects.toThrow('EIO');
    const [onDisk] = await PendingQueueStore.read(snap, log);
    expect([store.get(key)!.attempts, store.get(key)!.claimSeq, store.get(key)!.leaseUntil]).toEqual([2, 2, '2026-01-01T00:09:00.000Z']);
    expect([onDisk!.attempts, onDisk!.claimSeq, onDisk!.leaseUntil]).toEqual([2, 2, '2026-01-01T00:09:00.000Z']);
    await store.close();
  });
});

const eio = () => Promise.reject(Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' }));
const settings = (stop: { v: boolean }, warns: string[]) => ({ concurrency: 1, leaseMs: 60_000, untilEmpty: false, stopped: () => stop.v, warn: (w: { message: string }) => void warns.push(w.message) });

describe('drainPending against failing writes', () => {
  afterEach(() => vi.restoreAllMocks());

  it('keeps a message its handler gave back queued, even when someone\'s claim of it then fails', async () => {
    const { store, queue, snap, log } = await open();
    await queue.add([message(1)]);
    const stop = { v: false };
    const warns: string[] = [];
    let afterRelease!: () => void;
    const gate = new Promise<void>((r) => (afterRelease = r));
    let handlerDone = false;
    let runs = 0;
    const draining = drainPending(queue, async (m) => {
      runs++;
      if (runs > 1) return;
      await queue.release(queue.keys([m.id])); // "not now"
      await gate; // the handler does a bit more before returning
      handlerDone = true;
    }, settings(stop, warns));
    await vi.waitFor(() => expect(runs).toBe(1));
    await vi.waitFor(() => expect(queue.givenBack(queue.keys([message(1).id])[0]!, 1)).toBe(true));
    // Someone else tries to take it (claimPendingMessages), and that claim's line fails (transient EIO).
    // (The drain's single worker is busy in the handler; a user claim plays the second worker.)
    vi.spyOn(JsonlWriter.prototype, 'append').mockImplementationOnce(eio);
    await expect(queue.claim(1, 60_000)).rejects.toThrow('EIO');
    vi.restoreAllMocks();
    afterRelease();
    await vi.waitFor(() => expect(handlerDone).toBe(true));
    stop.v = true;
    queue.interrupt();
    const processed = await draining;
    const disk = await PendingQueueStore.read(snap, log);
    // The give-back held through the failed claim: not acknowledged when the first run returned, so
    // the worker ran it again, and that run's acknowledgement is the one that counts.
    expect({ processed, runs, memory: store.size, disk: disk.length }).toEqual({ processed: 1, runs: 2, memory: 0, disk: 0 });
    queue.stop();
    await store.close();
  });

  it('acknowledges a message whose give-back failed and whose handler then finished it', async () => {
    const { store, queue, snap, log } = await open();
    await queue.add([message(1)]);
    const stop = { v: false };
    const warns: string[] = [];
    let done = false;
    const draining = drainPending(queue, async (m) => {
      vi.spyOn(JsonlWriter.prototype, 'append').mockImplementationOnce(eio);
      // Tries to give it back; the write fails, so it still holds the claim, and processes the message after all.
      await queue.release(queue.keys([m.id])).catch(() => {});
      vi.restoreAllMocks();
      expect(queue.holds(queue.keys([m.id])[0]!, m.pending.attempts)).toBe(true);
      done = true;
    }, settings(stop, warns));
    await vi.waitFor(() => expect(done).toBe(true));
    await new Promise((r) => setTimeout(r, 50));
    stop.v = true;
    queue.interrupt();
    const processed = await draining;
    const disk = await PendingQueueStore.read(snap, log);
    // Processed once and acknowledged: the failed give-back left the claim with the handler.
    expect({ processed, memory: store.size, disk: disk.length }).toEqual({ processed: 1, memory: 0, disk: 0 });
    queue.stop();
    await store.close();
  });

  it('keeps out of the snapshot a change whose line failed in the batch a close flushed', async () => {
    const { store, snap, log } = await open();
    await store.add([{ message: message(1), enqueuedAt: T, attempts: 0 }]);
    const key = [...store.entries()][0]![0];
    // The disk refuses the file write itself (below the log's batching), once.
    const probe = await fsOpen(`${snap}.probe`, 'w');
    const handle = Object.getPrototypeOf(probe) as { write: () => Promise<unknown> };
    await probe.close();
    vi.spyOn(handle, 'write').mockImplementationOnce(() => Promise.reject(Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' })));
    const acking = store.ack([key]);
    const closing = store.close();
    await expect(acking).rejects.toThrow('EIO');
    await closing;
    vi.restoreAllMocks();
    expect(store.size).toBe(1);
    expect(await PendingQueueStore.read(snap, log)).toHaveLength(1);
  });

  it('drains a queue to the end across the log\'s compactions', async () => {
    const { store, queue } = await open();
    // More changes than a compaction's threshold (4,096 lines): adds, claims and acks.
    await queue.add(Array.from({ length: 6000 }, (_, i) => message(i + 1)));
    const stop = { v: false };
    const drained = await drainPending(queue, () => {}, { ...settings(stop, []), untilEmpty: true });
    expect(drained).toBe(6000);
    expect(store.size).toBe(0);
    queue.stop();
    await store.close();
  });
});

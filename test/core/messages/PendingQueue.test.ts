import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { PendingQueue } from '../../../src/core/messages/PendingQueue.js';
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

describe('PendingQueue', () => {
  it('rejects a claim, extension, release or ack whose log line could not be written, and reports it once', async () => {
    const { store, queue, errors } = await open();
    await queue.add([message(1), message(2)]);
    // The disk refuses each kind of line once (a fault no real file gives on demand).
    const eio = () => Promise.reject(Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' }));
    vi.spyOn(store, 'claim').mockImplementationOnce(eio);
    await expect(queue.claim(1, 60_000)).rejects.toThrow('EIO');
    // The claim that did not reach the disk is given back: the message is handed out again.
    const [claimed] = await queue.claimKeyed(1, 60_000);
    expect(claimed!.message.id).toBe(message(1).id);
    vi.spyOn(store, 'extend').mockImplementationOnce(eio);
    await expect(queue.extend([claimed!.key], 60_000)).rejects.toThrow('EIO');
    vi.spyOn(store, 'release').mockImplementationOnce(eio);
    await expect(queue.release([claimed!.key])).rejects.toThrow('EIO');
    vi.spyOn(store, 'ack').mockImplementationOnce(eio);
    await expect(queue.ack([claimed!.key])).rejects.toThrow('EIO');
    // Each failure went to its caller, not also to the error listener.
    expect(errors).toEqual([]);
    // Nothing was lost: acknowledging again works.
    expect(await queue.ack([claimed!.key])).toBe(1);
    expect(store.has(claimed!.key)).toBe(false);
    expect(store.size).toBe(1);
    queue.stop();
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
});

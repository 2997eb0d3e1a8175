import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PendingQueueStore } from '../../../src/core/storage/PendingQueueStore.js';
import { pendingKey, type MessageRecord, type PendingItem } from '../../../src/core/storage/records.js';
import { failNthSync, failWritesOf, onFirstWriteFile } from '../../helpers/diskFaults.js';
import { tempDir } from '../../helpers/tmp.js';

afterEach(() => vi.restoreAllMocks());
const T = '2026-01-01T00:00:00.000Z';
const message = (n: number, text = `m${n}`): MessageRecord => ({ type: 'message', id: `in_${String(n).padStart(8, '0')}`, conversationId: 'agent_001+agent_002', direction: 'in', from: 'agent_002', to: 'agent_001', text, sentAt: T, seq: n });
const item = (n: number, text?: string): PendingItem => ({ message: message(n, text), enqueuedAt: T, attempts: 0 });
const key = (n: number) => pendingKey('agent_002', message(n).id);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, k) => from + k);
const big = 'x'.repeat(900);
const tick = () => new Promise((resolve) => setImmediate(resolve));
async function files() {
  const dir = await tempDir('spill-');
  return { snap: join(dir, 'pending.json'), log: join(dir, 'pending.log.jsonl') };
}

describe('PendingQueueStore: spilled messages when changes fail while others run', () => {
  it('compacts when asked during a read-back that went past the line of a spilled item acknowledged meanwhile', async () => {
    const { snap, log } = await files();
    const first = await PendingQueueStore.open(snap, log, { maxInMemory: 10 });
    await first.add(range(1, 2000).map((i) => item(i, big)));
    await first.close();
    const store = await PendingQueueStore.open(snap, log, { maxInMemory: 10 });
    const loading = store.load([key(1500)]);
    const compacting = store.compact();
    const acked = store.ack([key(20)]);
    await loading;
    await acked;
    await expect(compacting).resolves.toBeUndefined();
    await store.close();
  });

  it('keeps the message of a spilled item acknowledged and added again during a compaction, both lines failing', async () => {
    const { snap, log } = await files();
    const store = await PendingQueueStore.open(snap, log, { maxInMemory: 10 });
    await store.add(range(1, 100).map((i) => item(i, big))); // 11..100 spilled in the log
    await failWritesOf('"op":"', () => 0, 'EIO');
    const compacting = store.compact();
    const acked = store.ack([key(50)]).catch((e: unknown) => e);
    const added = store.add([item(50, big)]).catch((e: unknown) => e);
    await compacting;
    expect(await acked).toMatchObject({ code: 'STORAGE_IO' });
    expect(await added).toMatchObject({ code: 'STORAGE_IO' });
    vi.restoreAllMocks();
    await tick();
    expect(store.has(key(50))).toBe(true);
    expect((await store.load([key(50)])).get(key(50))?.message.text).toBe(big);
    await store.close();
    expect(await PendingQueueStore.read(snap, log)).toHaveLength(100);
  });

  it('keeps the message of a spilled item acknowledged, added and acknowledged again around one compaction, every line failing', async () => {
    const { snap, log } = await files();
    const store = await PendingQueueStore.open(snap, log, { maxInMemory: 10 });
    await store.add(range(1, 100).map((i) => item(i, big))); // 11..100 spilled in the log
    await failWritesOf('"op":"', () => 0, 'EIO');
    let acked2: Promise<unknown> | undefined;
    // Rows taken: the re-added item is acknowledged again while the snapshot is written.
    await onFirstWriteFile(() => (acked2 = store.ack([key(50)]).catch((e: unknown) => e)));
    const compacting = store.compact();
    const acked = store.ack([key(50)]).catch((e: unknown) => e);
    const added = store.add([item(50, big)]).catch((e: unknown) => e);
    await compacting;
    expect(await acked).toMatchObject({ code: 'STORAGE_IO' });
    expect(await added).toMatchObject({ code: 'STORAGE_IO' });
    expect(await acked2).toMatchObject({ code: 'STORAGE_IO' });
    vi.restoreAllMocks();
    await tick();
    expect(store.has(key(50))).toBe(true);
    expect((await store.load([key(50)])).get(key(50))?.message.text).toBe(big);
    await store.close();
  });

  it('hands out the messages a peek found in memory even if a compaction queued ahead of it spills them', async () => {
    const { snap, log } = await files();
    const store = await PendingQueueStore.open(snap, log, { maxInMemory: 10 });
    await store.add(range(1, 100).map((i) => item(i, big)));
    await store.load([key(60)]); // 1..60 in memory now
    expect(store.inMemory).toBeGreaterThanOrEqual(60);
    const compacting = store.compact();
    const peeked = store.peek([key(30), key(80)]);
    await compacting;
    const got = await peeked;
    expect(got.get(key(80))?.message.text).toBe(big);
    expect(got.get(key(30))?.message?.text).toBe(big);
    await store.close();
  });

  it('reads a wanted item again whose acknowledgement failed after its read-back passed its line', async () => {
    const { snap, log } = await files();
    const first = await PendingQueueStore.open(snap, log, { maxInMemory: 10 });
    await first.add(range(1, 2000).map((i) => item(i, big)));
    await first.close();
    const store = await PendingQueueStore.open(snap, log, { maxInMemory: 10 });
    let fail!: () => void;
    await failWritesOf('"op":"ack"', () => 0, 'EIO', new Promise<void>((resolve) => (fail = resolve)));
    const loading = store.load([key(20), key(1500)]);
    // The read-back has begun (key 20 is among those it looks for) but not read a line yet.
    for (let i = 0; i < 3; i++) await null;
    expect(store.inMemory).toBe(10);
    const acked = store.ack([key(20)]).catch((err: unknown) => err);
    while (store.inMemory < 300) await tick();
    fail();
    expect(await acked).toMatchObject({ code: 'STORAGE_IO' });
    expect(store.has(key(20))).toBe(true);
    const got = await loading;
    expect(got.get(key(1500))?.message.text).toBe(big);
    await store.close();
  });

  it('keeps a message queued whose acknowledgement and new add both fail, in separate writes (nothing spilled)', async () => {
    const { snap, log } = await files();
    const store = await PendingQueueStore.open(snap, log, { maxInMemory: 10_000 });
    await store.add(range(1, 100).map((i) => item(i)));
    await failWritesOf('"op":"', () => 0, 'EIO');
    const acked = store.ack([key(50)]).catch((e: unknown) => e);
    const added = store.add([item(50)]).catch((e: unknown) => e);
    expect(await acked).toMatchObject({ code: 'STORAGE_IO' });
    expect(await added).toMatchObject({ code: 'STORAGE_IO' });
    vi.restoreAllMocks();
    await tick();
    await store.close();
    // Neither line reached the disk: item 50 must still be queued.
    expect((await PendingQueueStore.read(snap, log)).some((i) => i.message.seq === 50)).toBe(true);
  });

  it('refuses changes rather than write to the replaced log when its directory sync fails after the rename', async () => {
    const { snap, log } = await files();
    const store = await PendingQueueStore.open(snap, log, { maxInMemory: 10 });
    await store.add(range(1, 100).map((i) => item(i, big)));
    // 1: the snapshot's temp file, 2: its directory, 3: the log's temp file, 4: its directory (after the log's rename).
    const calls = await failNthSync(4);
    await store.compact().catch(() => {});
    vi.restoreAllMocks();
    expect(calls()).toBe(4);
    // The new log may not survive a crash: a change is refused rather than reported durable.
    await expect(store.add(range(101, 110).map((i) => item(i, big)))).rejects.toMatchObject({ code: 'STORAGE_IO' });
    // Its undo compacts again, which reopens the log: an add made now is durable, and found again.
    await store.add(range(101, 110).map((i) => item(i, big)));
    expect((await PendingQueueStore.read(snap, log)).map((i) => i.message.seq)).toEqual(range(1, 110));
    expect((await store.load([key(105)])).get(key(105))?.message.text).toBe(big);
    await store.close();
  });

  it('keeps the message of an item spilled in the log whose ack failed while a re-add held by a compaction waited, and then failed', async () => {
    const { snap, log } = await files();
    const store = await PendingQueueStore.open(snap, log, { maxInMemory: 1 });
    await store.add([item(1)]);
    // Spilled in the log.
    await store.add([item(2)]);
    expect(store.inMemory).toBe(1);
    // The ack's line and the re-add's both fail.
    await failWritesOf(message(2).id, (n) => n, 'EIO');
    // A write of its own, under way when the compaction is asked for; the re-add waits for the compaction.
    const acked = store.ack([key(2)]).catch((e: unknown) => e);
    const compacting = store.compact();
    const added = store.add([item(2)]).catch((e: unknown) => e);
    await compacting.catch(() => {});
    expect(await acked).toMatchObject({ code: 'STORAGE_IO' });
    expect(await added).toMatchObject({ code: 'STORAGE_IO' });
    vi.restoreAllMocks();
    await tick();
    await tick();
    expect(store.has(key(2))).toBe(true);
    expect((await store.peek([key(2)])).get(key(2))?.message.text).toBe('m2');
    await store.close();
    expect(await PendingQueueStore.read(snap, log)).toHaveLength(2);
  });
});

import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { OutboxJournal } from '../../../src/core/storage/OutboxJournal.js';
import { PendingQueueStore } from '../../../src/core/storage/PendingQueueStore.js';
import { JsonlWriter } from '../../../src/fs/JsonlWriter.js';
import { pendingKey, type MessageRecord, type OutboxEntry, type PendingItem } from '../../../src/core/storage/records.js';
import { failNthSync, failWritesOf, ioError } from '../../helpers/diskFaults.js';
import { tempDir } from '../../helpers/tmp.js';

const T = '2026-01-01T00:00:00.000Z';
const entry = (n: number): OutboxEntry => ({ id: `msg_${String(n).padStart(8, '0')}`, conversationId: 'agent_001+agent_002', to: 'agent_002', text: `m${n}`, sentAt: T });
const message = (n: number): MessageRecord => ({ type: 'message', id: `in_${String(n).padStart(8, '0')}`, conversationId: 'agent_001+agent_002', direction: 'in', from: 'agent_002', to: 'agent_001', text: `m${n}`, sentAt: T, seq: n });
const item = (n: number): PendingItem => ({ message: message(n), enqueuedAt: T, attempts: 0 });
const key = (n: number) => pendingKey('agent_002', message(n).id);
/** The items a store holds in memory, as the files hold them (messages all in memory here). */
const held = (q: PendingQueueStore): PendingItem[] => [...q.items()].map(({ place: _, ...item }) => item as PendingItem);

afterEach(() => {
  vi.restoreAllMocks();
});

describe('OutboxJournal', () => {
  it('replays to the messages still to send, in send order', async () => {
    const path = join(await tempDir(), 'outbox.jsonl');
    const j = await OutboxJournal.open(path);
    await j.put([entry(1), entry(2), entry(3)]);
    await j.put([entry(4)]);
    // Leaving writes nothing (the status line in the conversation file records it): closing compacts.
    j.finish([entry(2).id]);
    j.finish([entry(4).id]);
    expect((await readFile(path, 'utf8')).trim().split('\n')).toHaveLength(4);
    await j.close();
    const again = await OutboxJournal.open(path);
    expect([...again.entries()].map((e) => e.text)).toEqual(['m1', 'm3']);
    await again.close();
    expect((await readFile(path, 'utf8')).trim().split('\n')).toHaveLength(2);
  });

  it('honours the done lines of earlier versions, and compacts them away on open', async () => {
    const path = join(await tempDir(), 'outbox.jsonl');
    const lines = [1, 2, 3].map((n) => JSON.stringify({ op: 'put', entry: entry(n) }));
    lines.push(JSON.stringify({ op: 'done', id: entry(2).id, status: 'acked' }), JSON.stringify({ op: 'done', id: entry(3).id, status: 'cancelled' }));
    await writeFile(path, `${lines.join('\n')}\n`);
    const j = await OutboxJournal.open(path);
    expect([...j.entries()].map((e) => e.text)).toEqual(['m1']);
    await j.close();
    expect((await readFile(path, 'utf8')).trim().split('\n')).toEqual([JSON.stringify({ op: 'put', entry: entry(1) })]);
  });

  it('reads spilled entries back in order, and refuses to spill while compacting (which rewrites from memory)', async () => {
    const path = join(await tempDir(), 'outbox.jsonl');
    const j = await OutboxJournal.open(path);
    const at = await j.put(Array.from({ length: 5000 }, (_, i) => entry(i)));
    expect(j.spill([[entry(4990).id, 7], [entry(4991).id, 8]])).toBe(true);
    expect(j.has(entry(4990).id)).toBe(true);
    expect(j.isSpilled(entry(4990).id)).toBe(true);
    expect([...j.entries()].some((e) => e.id === entry(4990).id)).toBe(false);
    const back = await j.readSpilled(at, 10);
    // Found, still spilled until taken back; then each comes back with the order key it was spilled with.
    expect(j.spilled).toBe(2);
    expect(j.unspill(back.found).map(({ entry, order }) => [entry.text, order])).toEqual([['m4990', 7], ['m4991', 8]]);
    expect(j.spilled).toBe(0);
    expect(j.isSpilled(entry(4990).id)).toBe(false);
    // Enough finished entries to start a compaction as this resolves.
    j.finish(Array.from({ length: 4500 }, (_, i) => entry(i).id));
    expect(j.spill([[entry(4600).id, 9]])).toBe(false);
    await j.close();
    const again = await OutboxJournal.open(path);
    expect(again.has(entry(4600).id)).toBe(true);
    expect(again.size).toBe(500);
    await again.close();
  });

  it('reads a long spill back a little at a time, and the next spill from the file a compaction put in its place', async () => {
    const path = join(await tempDir(), 'outbox.jsonl');
    const j = await OutboxJournal.open(path);
    const at = await j.put(Array.from({ length: 5000 }, (_, i) => entry(i)));
    expect(j.spill(Array.from({ length: 5000 }, (_, i) => [entry(i).id, i] as const))).toBe(true);
    const texts: string[] = [];
    let from = at;
    while (j.spilled > 0) {
      const back = await j.readSpilled(from, 333);
      expect(back.found.length).toBeGreaterThan(0);
      texts.push(...j.unspill(back.found).map(({ entry }) => entry.text));
      from = back.next;
    }
    expect(texts).toEqual(Array.from({ length: 5000 }, (_, i) => `m${i}`));
    // All sent: the journal is rewritten, and the next spill's lines are at offsets of the new file.
    j.finish(Array.from({ length: 5000 }, (_, i) => entry(i).id));
    const later = [entry(7000), entry(7001), entry(7002)];
    const laterAt = await j.put(later);
    expect(laterAt).toBe(0);
    expect(j.spill(later.map((e, i) => [e.id, i] as const))).toBe(true);
    const back = await j.readSpilled(laterAt, 10);
    expect(j.unspill(back.found).map(({ entry }) => entry.text)).toEqual(['m7000', 'm7001', 'm7002']);
    await j.close();
  });

  it('reads back a spilled put whose newline a crash cut off, and the puts appended after it', async () => {
    const path = join(await tempDir(), 'outbox.jsonl');
    // The crash came after the last put's bytes and before its newline: replayed as a message to send.
    await writeFile(path, [1, 2, 3].map((i) => JSON.stringify({ op: 'put', entry: entry(i) })).join('\n'));
    const j = await OutboxJournal.open(path);
    expect(j.spill([1, 2, 3].map((i) => [entry(i).id, i] as const))).toBe(true);
    const back = await j.readSpilled(0, 10);
    expect(j.unspill(back.found).map(({ entry }) => entry.text)).toEqual(['m1', 'm2', 'm3']);
    const at = await j.put([entry(4)]);
    expect(j.spill([[entry(4).id, 4]])).toBe(true);
    const later = await j.readSpilled(Math.min(back.next, at), 10);
    expect(j.unspill(later.found).map(({ entry }) => entry.text)).toEqual(['m4']);
    await j.close();
  });

  it('reads back exactly the spilled puts among done lines, other puts and lines of another shape', async () => {
    const path = join(await tempDir(), 'outbox.jsonl');
    // A put written with its keys in another order (by another tool, or a future version): still found.
    // Before it, a message that left (a done line of an earlier version).
    const reordered = { text: 'm7', sentAt: T, to: 'agent_002', conversationId: 'agent_001+agent_002', id: entry(7).id };
    const earlier = [JSON.stringify({ op: 'put', entry: entry(9) }), JSON.stringify({ op: 'done', id: entry(9).id, status: 'acked' })];
    await writeFile(path, `${[...earlier, JSON.stringify({ entry: reordered, op: 'put' })].join('\n')}\n`);
    const j = await OutboxJournal.open(path);
    const at = 0;
    await j.put([entry(1), entry(2), entry(3), entry(4), entry(5)]);
    j.finish([entry(2).id]);
    await j.put([entry(6)]);
    expect(j.spill([entry(7).id, entry(1).id, entry(3).id, entry(5).id, entry(6).id].map((id, i) => [id, i] as const))).toBe(true);
    // Chosen ids only: the others stay spilled.
    const chosen = await j.readSpilled(at, 10, new Set([entry(5).id]));
    expect(j.unspill(chosen.found).map(({ entry }) => entry.text)).toEqual(['m5']);
    const back = await j.readSpilled(at, 3);
    // One finished after it was found (a receipt): not taken back.
    j.finish([entry(3).id]);
    expect(j.unspill(back.found).map(({ entry }) => entry.text)).toEqual(['m7', 'm1']);
    const rest = await j.readSpilled(back.next, 10);
    expect(j.unspill(rest.found).map(({ entry }) => entry.text)).toEqual(['m6']);
    expect(j.spilled).toBe(0);
    expect([...j.entries()].map((e) => e.text).sort()).toEqual(['m1', 'm4', 'm5', 'm6', 'm7']);
    await j.close();
  });

  it('compacts while appends continue, losing nothing', async () => {
    const path = join(await tempDir(), 'outbox.jsonl');
    const j = await OutboxJournal.open(path);
    const N = 10_000;
    await j.put(Array.from({ length: N }, (_, i) => entry(i)));
    // Finish all but the last 10, in chunks, with new puts racing the compaction that triggers.
    const work: Array<Promise<unknown>> = [];
    for (let i = 0; i < N - 10; i += 500) {
      j.finish(Array.from({ length: Math.min(500, N - 10 - i) }, (_, k) => entry(i + k).id));
      work.push(j.put([entry(N + i)]));
    }
    await Promise.all(work);
    await j.close();
    const lines = (await readFile(path, 'utf8')).trim().split('\n');
    expect(lines.length).toBeLessThan(N / 2);
    const again = await OutboxJournal.open(path);
    const live = [...again.entries()].map((e) => e.id);
    expect(live).toHaveLength(10 + work.length);
    expect(live.slice(0, 10)).toEqual(Array.from({ length: 10 }, (_, k) => entry(N - 10 + k).id));
    await again.close();
  });
});

describe('OutboxJournal when a put made during a compaction fails', () => {
  it('leaves it out of the rewritten journal: a send the caller was told failed is not sent after a restart', async () => {
    const path = join(await tempDir(), 'outbox.jsonl');
    const j = await OutboxJournal.open(path);
    await j.put(Array.from({ length: 5000 }, (_, i) => entry(i)));
    await failWritesOf(entry(9000).id, () => 0, 'EIO');
    // Finishing most of them starts a compaction; the put waits for it, then its own append fails.
    j.finish(Array.from({ length: 4500 }, (_, i) => entry(i).id));
    await expect(j.put([entry(9000)])).rejects.toMatchObject({ code: 'STORAGE_IO' });
    vi.restoreAllMocks();
    await j.put([entry(9001)]);
    await j.close();
    const again = await OutboxJournal.open(path);
    const ids = [...again.entries()].map((e) => e.id);
    expect(ids).not.toContain(entry(9000).id);
    expect(ids).toEqual([...Array.from({ length: 500 }, (_, i) => entry(4500 + i).id), entry(9001).id]);
    await again.close();
  });
});

describe('OutboxJournal around a compaction', () => {
  it('keeps a put whose lines were being written when the compaction began', async () => {
    const path = join(await tempDir(), 'outbox.jsonl');
    const j = await OutboxJournal.open(path);
    await j.put(Array.from({ length: 5000 }, (_, i) => entry(i)));
    // Its lines go to the writer now; the compaction starts while they are written.
    const put = j.put([entry(9000)]);
    j.finish(Array.from({ length: 4500 }, (_, i) => entry(i).id));
    await put;
    await j.put([entry(9001)]);
    const ids = (await readFile(path, 'utf8')).trim().split('\n').map((l) => (JSON.parse(l) as { entry: OutboxEntry }).entry.id);
    expect(ids).toContain(entry(9000).id);
    await j.close();
  });

  it('keeps a durable message when a second put of its id, made during a compaction, fails', async () => {
    const path = join(await tempDir(), 'outbox.jsonl');
    const j = await OutboxJournal.open(path);
    await j.put(Array.from({ length: 5000 }, (_, i) => entry(i)));
    // Durable: its sendMessage resolved.
    await j.put([entry(9000)]);
    await failWritesOf(entry(9000).id, () => 0, 'EIO');
    j.finish(Array.from({ length: 4500 }, (_, i) => entry(i).id));
    await expect(j.put([entry(9000)])).rejects.toMatchObject({ code: 'STORAGE_IO' });
    vi.restoreAllMocks();
    expect(j.has(entry(9000).id)).toBe(true);
    await j.close();
    const again = await OutboxJournal.open(path);
    expect([...again.entries()].map((e) => e.id)).toContain(entry(9000).id);
    await again.close();
  });
});

describe('OutboxJournal when its directory sync fails after a compaction renamed the new journal', () => {
  it('refuses puts rather than append them to the old journal, which is no longer the file', async () => {
    const path = join(await tempDir(), 'outbox.jsonl');
    const j = await OutboxJournal.open(path);
    await j.put(Array.from({ length: 5000 }, (_, i) => entry(i)));
    // The compaction's first sync is its new file's, the second the directory's (after the rename).
    const calls = await failNthSync(2);
    j.finish(Array.from({ length: 4500 }, (_, i) => entry(i).id));
    await expect(j.put([entry(9000)])).rejects.toMatchObject({ code: 'STORAGE_IO' });
    vi.restoreAllMocks();
    expect(calls()).toBeGreaterThanOrEqual(2);
    await j.close();
    // The renamed journal is the file: the live messages are all in it, in order, and the refused put is not.
    const again = await OutboxJournal.open(path);
    expect([...again.entries()].map((e) => e.id)).toEqual(Array.from({ length: 500 }, (_, i) => entry(4500 + i).id));
    await again.close();
  });
});

describe('OutboxJournal keeps send order in memory around spills', () => {
  // Texts of the entries in memory, in the order a compaction writes them.
  const texts = (j: OutboxJournal) => [...j.entries()].map((e) => e.text);

  it('a message put while the last spilled one was read back, and kept, stays ahead of messages sent after it', async () => {
    const path = join(await tempDir(), 'outbox.jsonl');
    const j = await OutboxJournal.open(path);
    await j.put([entry(0)]);
    j.finish([entry(0).id]);
    const at1 = await j.put([entry(1)]);
    expect(j.spill([[entry(1).id, 1]])).toBe(true);
    // 2 is put while 1 is spilled; 1 is read back while 2's put is written; 2 is kept in memory.
    const put2 = j.put([entry(2)]);
    j.unspill((await j.readSpilled(at1, 10)).found);
    await put2;
    expect(texts(j)).toEqual(['m1', 'm2']);
    // Later, 3 is put and kept, 4 is put, spilled and read back.
    await j.put([entry(3)]);
    const at4 = await j.put([entry(4)]);
    expect(j.spill([[entry(4).id, 4]])).toBe(true);
    j.unspill((await j.readSpilled(at4, 10)).found);
    expect(texts(j)).toEqual(['m1', 'm2', 'm3', 'm4']);
    await j.close();
    const file = (await readFile(path, 'utf8')).trim().split('\n').map((line) => (JSON.parse(line) as { entry: OutboxEntry }).entry.text);
    expect(file).toEqual(['m1', 'm2', 'm3', 'm4']);
  });

  it('the same when the last spilled message leaves by a receipt instead of a read-back', async () => {
    const j = await OutboxJournal.open(join(await tempDir(), 'outbox.jsonl'));
    await j.put([entry(1)]);
    j.spill([[entry(1).id, 1]]);
    const put2 = j.put([entry(2)]);
    expect(j.forgetSpilled(entry(1).id)).toBe(true);
    j.finish([entry(1).id]);
    await put2;
    await j.put([entry(3)]);
    const at4 = await j.put([entry(4)]);
    j.spill([[entry(4).id, 4]]);
    j.unspill((await j.readSpilled(at4, 10)).found);
    expect(texts(j)).toEqual(['m2', 'm3', 'm4']);
    await j.close();
  });
});

describe('PendingQueueStore', () => {
  it('replays snapshot plus log, and an old log replayed over a newer snapshot changes nothing', async () => {
    const dir = await tempDir();
    const [snap, log] = [join(dir, 'pending.json'), join(dir, 'pending.log.jsonl')];
    const q = await PendingQueueStore.open(snap, log);
    await q.add([item(1), item(2), item(3)]);
    await q.claim([key(1), key(2)], '2030-01-01T00:00:00.000Z');
    await q.release([key(2)]);
    await q.ack([key(1)]);
    await q.claim([key(2)], '2031-01-01T00:00:00.000Z');
    const expected = structuredClone(held(q));
    expect(expected[0]).toMatchObject({ attempts: 2, leaseUntil: '2031-01-01T00:00:00.000Z' });
    // A crash after the snapshot was written but before the log was emptied: keep the old log.
    await copyFile(log, `${log}.old`);
    await q.close();
    expect(JSON.parse(await readFile(snap, 'utf8')).items).toEqual(expected);
    await copyFile(`${log}.old`, log);
    const again = await PendingQueueStore.open(snap, log);
    expect(held(again)).toEqual(expected);
    await again.close();
  });

  it('ignores a duplicate add of a queued message, and keeps another sender\'s message with the same id', async () => {
    const dir = await tempDir();
    const [snap, log] = [join(dir, 'p.json'), join(dir, 'p.log')];
    const q = await PendingQueueStore.open(snap, log);
    const fromOther = (n: number): PendingItem => ({ ...item(n), message: { ...message(n), from: 'agent_003', conversationId: 'agent_001+agent_003', seq: 100 + n } });
    await q.add([item(1)]);
    await q.add([item(1), item(2), fromOther(1)]);
    expect(held(q).map((i) => i.message.seq)).toEqual([1, 2, 101]);
    expect(q.keysOf(message(1).id)).toEqual([key(1), pendingKey('agent_003', message(1).id)]);
    await q.ack([key(1)]);
    await q.close();
    const again = await PendingQueueStore.open(snap, log);
    expect(held(again).map((i) => `${i.message.from} ${i.message.seq}`)).toEqual(['agent_002 2', 'agent_003 101']);
    await again.close();
  });

  it('replays log lines written before keys, which name items by message id', async () => {
    const dir = await tempDir();
    const [snap, log] = [join(dir, 'pending.json'), join(dir, 'pending.log.jsonl')];
    await writeFile(snap, JSON.stringify({ version: 1, items: [item(1), item(2), item(3)] }));
    const lines = [
      { op: 'claim', seq: 1, ids: [message(1).id, message(2).id], leaseUntil: '2030-01-01T00:00:00.000Z' },
      { op: 'release', seq: 1, ids: [message(2).id] },
      { op: 'ack', ids: [message(1).id] },
    ];
    await writeFile(log, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    const q = await PendingQueueStore.open(snap, log);
    expect(held(q).map((i) => [i.message.seq, i.attempts, i.leaseUntil ?? null])).toEqual([
      [2, 1, null],
      [3, 0, null],
    ]);
    await q.close();
  });

  it('applies an extension only while the claim it extends holds the item', async () => {
    const dir = await tempDir();
    const [snap, log] = [join(dir, 'pending.json'), join(dir, 'pending.log.jsonl')];
    const lines = [
      { op: 'add', item: item(1) },
      { op: 'add', item: item(2) },
      { op: 'claim', seq: 1, ids: [key(1), key(2)], leaseUntil: '2026-01-01T00:01:00.000Z' },
      { op: 'extend', seq: 1, ids: [key(1), key(2)], leaseUntil: '2026-01-01T00:05:00.000Z' },
      { op: 'release', seq: 1, ids: [key(2)] },
      // Too late for item 2 (released), and for a claim that no longer holds item 1 once claim 2 took it.
      { op: 'extend', seq: 1, ids: [key(2)], leaseUntil: '2026-01-01T00:09:00.000Z' },
      { op: 'claim', seq: 2, ids: [key(1)], leaseUntil: '2026-01-01T00:06:00.000Z' },
      { op: 'extend', seq: 1, ids: [key(1)], leaseUntil: '2026-01-01T00:09:00.000Z' },
    ];
    await writeFile(log, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    const items = await PendingQueueStore.read(snap, log);
    expect(items.map((i) => [i.attempts, i.claimSeq, i.leaseUntil ?? null])).toEqual([
      [2, 2, '2026-01-01T00:06:00.000Z'],
      [1, 1, null],
    ]);
  });

  it('an add made while a compaction fails still reaches the log: nothing is left queued in memory only', async () => {
    const dir = await tempDir();
    const [snap, log] = [join(dir, 'pending.json'), join(dir, 'pending.log.jsonl')];
    const q = await PendingQueueStore.open(snap, log);
    // A directory where the snapshot goes: the compaction's rename onto it fails, for real.
    await rm(snap);
    await mkdir(snap);
    const compaction = q.compact().then(
      () => 'written',
      (err: NodeJS.ErrnoException) => err.code,
    );
    const added = q.add([item(1)]);
    expect(await compaction).not.toBe('written');
    await added;
    expect(q.has(key(1))).toBe(true);
    // The add is on disk: a crash now (the process gone, the snapshot path repaired) keeps it.
    await rm(snap, { recursive: true });
    expect((await PendingQueueStore.read(snap, log)).map((i) => i.message.id)).toEqual([message(1).id]);
  });

  it('refuses changes once closing, and closes with a snapshot exactly as the disk has it', async () => {
    const dir = await tempDir();
    const [snap, log] = [join(dir, 'pending.json'), join(dir, 'pending.log.jsonl')];
    const q = await PendingQueueStore.open(snap, log);
    await q.add([item(1)]);
    const acking = q.ack([key(1)]);
    const closing = q.close();
    const late = q.add([item(2)]);
    await expect(late).rejects.toMatchObject({ code: 'CLOSED' });
    await acking;
    await closing;
    // The ack made before the close is in; the add refused after it is not.
    expect(await PendingQueueStore.read(snap, log)).toEqual([]);
    expect(await readFile(log, 'utf8')).toBe('');
  });

  it('drains a long queue by appending log lines, folding them into pending.json from time to time', async () => {
    const dir = await tempDir();
    const [snap, log] = [join(dir, 'pending.json'), join(dir, 'pending.log.jsonl')];
    const q = await PendingQueueStore.open(snap, log);
    const N = 20_000;
    await q.add(Array.from({ length: N }, (_, i) => item(i + 1)));
    for (let i = 1; i <= N; i += 100) await q.ack(Array.from({ length: 100 }, (_, k) => key(i + k)));
    expect(q.size).toBe(0);
    await q.close();
    expect(JSON.parse(await readFile(snap, 'utf8'))).toEqual({ version: 1, items: [] });
    expect(await readFile(log, 'utf8')).toBe('');
  });

  it('appends the changes made while a compaction runs ahead of any made after it ends', async () => {
    const dir = await tempDir();
    const [snap, log] = [join(dir, 'pending.json'), join(dir, 'pending.log.jsonl')];
    const q = await PendingQueueStore.open(snap, log);
    await q.add([item(1)]);
    // An add made after the compaction wrote its snapshot, as it reopens the log: its line goes to the new log.
    let added: Promise<void> | undefined;
    const open = JsonlWriter.open.bind(JsonlWriter);
    vi.spyOn(JsonlWriter, 'open').mockImplementationOnce((...args) => {
      added = q.add([item(2)]);
      return open(...args);
    });
    await q.compact();
    // Acknowledged as soon as the compaction is over: the ack's line must not overtake the add's.
    const acked = q.ack([key(2)]);
    await Promise.all([added, acked]);
    expect(held(q).map((i) => i.message.seq)).toEqual([1]);
    // A crash now: the log replayed over the snapshot gives what memory has.
    expect((await PendingQueueStore.read(snap, log)).map((i) => i.message.seq)).toEqual([1]);
    await q.close();
  });

  it('settles a second add of a message only with the first, which may fail', async () => {
    const dir = await tempDir();
    const [snap, log] = [join(dir, 'pending.json'), join(dir, 'pending.log.jsonl')];
    const q = await PendingQueueStore.open(snap, log);
    await failWritesOf(message(1).id, (len) => len, 'EIO');
    const first = q.add([item(1)]);
    const second = q.add([item(1), item(2)]);
    await expect(first).rejects.toMatchObject({ code: 'STORAGE_IO' });
    await expect(second).rejects.toMatchObject({ code: 'STORAGE_IO' });
    vi.restoreAllMocks();
    expect(held(q).map((i) => i.message.seq)).toEqual([2]);
    // Tried again as soon as the failure is heard of: written, not failed with the first error.
    const spy = await failWritesOf(message(3).id, (len) => len, 'EIO');
    await q.add([item(3)]).catch(() => {
      spy.mockRestore();
      return q.add([item(3)]);
    });
    expect(held(q).map((i) => i.message.seq)).toEqual([2, 3]);
    await q.add([item(1)]);
    expect((await PendingQueueStore.read(snap, log)).map((i) => i.message.seq)).toEqual([2, 3, 1]);
    await q.close();
  });

  it('takes changes again once a compaction that could not reopen the log is redone', async () => {
    const dir = await tempDir();
    const [snap, log] = [join(dir, 'pending.json'), join(dir, 'pending.log.jsonl')];
    const q = await PendingQueueStore.open(snap, log);
    await q.add([item(1)]);
    vi.spyOn(JsonlWriter, 'open').mockRejectedValueOnce(ioError('EMFILE'));
    await q.compact();
    // The log was replaced but not reopened: a change cannot be made durable, and is refused.
    await expect(q.add([item(2)])).rejects.toThrow('EMFILE');
    // Its undo compacts again, which reopens the log: changes are taken again.
    await q.add([item(3)]);
    await q.ack([key(1)]);
    expect(held(q).map((i) => i.message.seq)).toEqual([3]);
    expect((await PendingQueueStore.read(snap, log)).map((i) => i.message.seq)).toEqual([3]);
    await q.close();
  });
});

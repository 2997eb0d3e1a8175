import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DedupeIndex } from '../../../src/server/store/DedupeIndex.js';
import { tempDir } from '../../helpers/tmp.js';

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 10, 24, 12);
const accepted = (seq: number, at = T0) => ({ to: 'agent_002', seq, at: new Date(at).toISOString(), digest: `d${seq}` });
const id = (n: number) => `msg_${String(n).padStart(8, '0')}`;

describe('DedupeIndex', () => {
  it('answers with what was accepted until the window is over', async () => {
    let now = T0;
    const index = new DedupeIndex(join(await tempDir(), 'dedupe.jsonl'), { windowMs: HOUR, maxEntries: 100, now: () => now });
    index.remember('agent_001', id(1), accepted(1));
    expect(index.get('agent_001', id(1))).toMatchObject({ to: 'agent_002', seq: 1, digest: 'd1' });
    expect(index.get('agent_009', id(1))).toBeUndefined();
    now = T0 + HOUR - 1;
    expect(index.get('agent_001', id(1))?.seq).toBe(1);
    now = T0 + HOUR;
    expect(index.get('agent_001', id(1))).toBeUndefined();
    // Accepted longer ago than the window: not remembered at all.
    index.remember('agent_001', id(2), accepted(2, T0 - 2 * HOUR));
    expect(index.size).toBe(0);
  });

  it('keeps at most maxEntries, and always the most recent half of that', async () => {
    const index = new DedupeIndex(join(await tempDir(), 'dedupe.jsonl'), { windowMs: HOUR, maxEntries: 1000, now: () => T0 });
    for (let n = 1; n <= 5000; n++) {
      index.remember('agent_001', id(n), accepted(n));
      expect(index.size).toBeLessThanOrEqual(1000);
      if (n % 97 === 0) for (let k = Math.max(1, n - 499); k <= n; k += 37) expect(index.get('agent_001', id(k))?.seq).toBe(k);
    }
    expect(index.get('agent_001', id(1))).toBeUndefined();
  });

  it('forgets a generation whose entries have all expired, without waiting for it to be pushed out', async () => {
    let now = T0;
    const index = new DedupeIndex(join(await tempDir(), 'dedupe.jsonl'), { windowMs: HOUR, maxEntries: 10, now: () => now });
    for (let n = 1; n <= 5; n++) index.remember('agent_001', id(n), accepted(n, now));
    expect(index.size).toBe(5);
    now = T0 + 2 * HOUR;
    index.remember('agent_001', id(6), accepted(6, now));
    expect(index.size).toBe(1);
  });

  it('persists entries still in the window, and loads them back after a restart (dropping expired ones from the file)', async () => {
    const dir = await tempDir();
    const path = join(dir, 'dedupe.jsonl');
    let now = T0;
    const first = new DedupeIndex(path, { windowMs: HOUR, maxEntries: 100, now: () => now });
    await first.load();
    await first.finishLoad();
    first.remember('agent_001', id(1), accepted(1, T0));
    first.remember('agent_001', id(2), accepted(2, T0 + HOUR / 2));
    first.remember('agent_001', id(3), accepted(3, T0));
    await first.persist([
      { from: 'agent_001', id: id(1) },
      { from: 'agent_001', id: id(2) },
      { from: 'agent_001', id: id(9) },
    ]);
    await first.close();
    const lines = (await readFile(path, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toEqual([
      { from: 'agent_001', id: id(1), ...accepted(1, T0) },
      { from: 'agent_001', id: id(2), ...accepted(2, T0 + HOUR / 2) },
    ]);
    now = T0 + HOUR + 1;
    const second = new DedupeIndex(path, { windowMs: HOUR, maxEntries: 100, now: () => now });
    await second.load();
    await second.finishLoad();
    expect(second.get('agent_001', id(1))).toBeUndefined();
    expect(second.get('agent_001', id(2))).toMatchObject({ seq: 2, digest: 'd2' });
    await second.close();
    expect((await readFile(path, 'utf8')).trim().split('\n')).toHaveLength(1);
  });

  it('rewrites dedupe.jsonl while running once most of its lines are expired, keeping what is still remembered', async () => {
    const path = join(await tempDir(), 'dedupe.jsonl');
    let now = T0;
    const index = new DedupeIndex(path, { windowMs: HOUR, maxEntries: 100_000, now: () => now });
    await index.load();
    await index.finishLoad();
    // A day of trimmed segments, 100 messages a minute: about 6,000 stay inside the one-hour window.
    let n = 0;
    for (let minute = 0; minute < 24 * 60; minute++) {
      now = T0 + minute * 60_000;
      const batch = Array.from({ length: 100 }, () => ++n);
      for (const k of batch) index.remember('agent_001', id(k), accepted(k, now));
      await index.persist(batch.map((k) => ({ from: 'agent_001', id: id(k) })));
    }
    const lines = (await readFile(path, 'utf8')).trim().split('\n');
    // 144,000 lines written; the file keeps about what is inside the window, at most twice that (plus a check's worth).
    expect(lines.length).toBeLessThan(3 * 6_100 + 4096);
    const last = n;
    expect(index.get('agent_001', id(last))?.seq).toBe(last);
    await index.close();
    // Reloaded: what is inside the window is all there.
    const again = new DedupeIndex(path, { windowMs: HOUR, maxEntries: 100_000, now: () => now });
    await again.load();
    await again.finishLoad();
    expect(again.get('agent_001', id(last))?.seq).toBe(last);
    expect(again.get('agent_001', id(last - 5_900))?.seq).toBe(last - 5_900);
    expect(again.get('agent_001', id(1))).toBeUndefined();
    await again.close();
  });
});

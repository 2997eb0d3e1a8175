import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { tempDir } from '../../helpers/tmp.js';

/** A directory sync that fails once on demand (the disk's fault, which no real file gives here). */
const fsync = vi.hoisted(() => ({ failNext: 0 }));
vi.mock('../../../src/fs/fsyncDir.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../../src/fs/fsyncDir.js')>();
  return {
    fsyncDir: async (dir: string) => {
      if (fsync.failNext > 0) {
        fsync.failNext--;
        throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
      }
      return real.fsyncDir(dir);
    },
  };
});
const { DedupeIndex } = await import('../../../src/server/store/DedupeIndex.js');
const { JsonlWriter } = await import('../../../src/fs/JsonlWriter.js');

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 10, 24, 12);
const accepted = (seq: number, at: number) => ({ to: 'agent_002', seq, at: new Date(at).toISOString(), digest: `d${seq}` });
const id = (n: number) => `msg_${String(n).padStart(8, '0')}`;

/** An index whose file holds 4,095 lines that have expired by `later`: the next line written checks it. */
async function indexAboutToRewrite() {
  const path = join(await tempDir(), 'dedupe.jsonl');
  const clock = { now: T0 };
  const index = new DedupeIndex(path, { windowMs: HOUR, maxEntries: 100_000, now: () => clock.now });
  await index.load();
  await index.finishLoad();
  const old = Array.from({ length: 4095 }, (_, i) => i + 1);
  for (const k of old) index.remember('agent_001', id(k), accepted(k, clock.now));
  await index.persist(old.map((k) => ({ from: 'agent_001', id: id(k) })));
  clock.now = T0 + HOUR + 1;
  const reopen = async () => {
    const again = new DedupeIndex(path, { windowMs: HOUR, maxEntries: 100_000, now: () => clock.now });
    await again.load();
    await again.finishLoad();
    return again;
  };
  return { path, clock, index, reopen };
}

describe('dedupe.jsonl rewrites', () => {
  it('keeps the line of a trim whose append was under way when another trim started the rewrite', async () => {
    const { clock, index, reopen } = await indexAboutToRewrite();
    index.remember('agent_001', id(9001), accepted(9001, clock.now));
    index.remember('agent_003', id(9002), accepted(9002, clock.now));
    // Two inboxes trim at once: the first reaches the check and rewrites; the second's append was already issued.
    await Promise.all([index.persist([{ from: 'agent_001', id: id(9001) }]), index.persist([{ from: 'agent_003', id: id(9002) }])]);
    await index.close();
    const again = await reopen();
    expect(again.get('agent_001', id(9001))?.seq).toBe(9001);
    expect(again.get('agent_003', id(9002))?.seq).toBe(9002);
    await again.close();
  });

  it('goes on appending to the file in place when the rewrite\'s final directory sync fails', async () => {
    const { clock, index, reopen } = await indexAboutToRewrite();
    index.remember('agent_001', id(9001), accepted(9001, clock.now));
    fsync.failNext = 1;
    await index.persist([{ from: 'agent_001', id: id(9001) }]);
    index.remember('agent_001', id(9002), accepted(9002, clock.now));
    await index.persist([{ from: 'agent_001', id: id(9002) }]);
    await index.close();
    const again = await reopen();
    expect(again.get('agent_001', id(9001))?.seq).toBe(9001);
    expect(again.get('agent_001', id(9002))?.seq).toBe(9002);
    await again.close();
  });

  it('on start, keeps in the file only what the cap keeps', async () => {
    const path = join(await tempDir(), 'dedupe.jsonl');
    const line = (n: number, at: number) => JSON.stringify({ from: 'agent_001', id: id(n), ...accepted(n, at) });
    // One line outside the window, 20,000 inside it, in order; room for 100.
    await writeFile(path, `${[line(1, T0 - 2 * HOUR), ...Array.from({ length: 20_000 }, (_, i) => line(i + 2, T0 + i))].join('\n')}\n`);
    const index = new DedupeIndex(path, { windowMs: HOUR, maxEntries: 100, now: () => T0 + 30_000 });
    await index.load();
    await index.finishLoad();
    expect(index.size).toBeLessThanOrEqual(100);
    expect(index.get('agent_001', id(20_001))?.seq).toBe(20_001);
    const lines = (await readFile(path, 'utf8')).trim().split('\n');
    expect(lines.length).toBe(index.size);
    await index.close();
  });

  it('writes a line once however many times a trim had to try', async () => {
    const { path, clock, index } = await indexAboutToRewrite();
    index.remember('agent_001', id(9001), accepted(9001, clock.now));
    const append = vi.spyOn(JsonlWriter.prototype, 'append');
    for (let i = 0; i < 5; i++) {
      append.mockImplementationOnce(() => Promise.reject(new Error('EIO: i/o error, write')));
      await expect(index.persist([{ from: 'agent_001', id: id(9001) }])).rejects.toThrow('EIO');
    }
    append.mockRestore();
    // The trim that succeeds reaches the check: the rewrite keeps the one live line, once.
    await index.persist([{ from: 'agent_001', id: id(9001) }]);
    expect((await readFile(path, 'utf8')).trim().split('\n')).toEqual([expect.stringContaining(id(9001))]);
    await index.close();
  });

  it('drops from the file, while running, the ids the cap has pushed out', async () => {
    const path = join(await tempDir(), 'dedupe.jsonl');
    const index = new DedupeIndex(path, { windowMs: HOUR, maxEntries: 200, now: () => T0 });
    await index.load();
    await index.finishLoad();
    for (let k = 1; k <= 20_000; k++) {
      index.remember('agent_001', id(k), accepted(k, T0));
      if (k % 100 === 0) await index.persist(Array.from({ length: 100 }, (_, i) => ({ from: 'agent_001', id: id(k - 99 + i) })));
    }
    // All inside the window, but the index keeps at most 200: so does the file, give or take a check.
    expect((await readFile(path, 'utf8')).trim().split('\n').length).toBeLessThan(2 * 200 + 4096 + 100);
    await index.close();
  });
});

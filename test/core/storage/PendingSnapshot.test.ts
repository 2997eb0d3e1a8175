import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PendingSnapshot } from '../../../src/core/storage/PendingSnapshot.js';
import type { MessageRecord, PendingItem } from '../../../src/core/storage/records.js';
import { JsonFile } from '../../../src/fs/JsonFile.js';
import { fileHandlePrototype } from '../../helpers/diskFaults.js';
import { tempDir } from '../../helpers/tmp.js';

afterEach(() => {
  vi.restoreAllMocks();
});

const T = '2026-01-01T00:00:00.000Z';
const message = (n: number, text = `m${n}`): MessageRecord => ({ type: 'message', id: `in_${String(n).padStart(8, '0')}`, conversationId: 'agent_001+agent_002', direction: 'in', from: 'agent_002', to: 'agent_001', text, sentAt: T, seq: n });
const item = (n: number, text?: string): PendingItem => ({ message: message(n, text), enqueuedAt: T, attempts: n % 3, ...(n % 2 ? { claimSeq: n, leaseUntil: T } : {}) });

describe('PendingSnapshot (queue/pending.json)', () => {
  it('writes the seed document with one item per line, and reads it back', async () => {
    const path = join(await tempDir('snap-'), 'pending.json');
    const items = [1, 2, 3].map((n) => item(n));
    await PendingSnapshot.write(path, items);
    const text = await readFile(path, 'utf8');
    // Valid JSON for any tool (jq '.items | length'), laid out an item a line.
    expect(JSON.parse(text)).toEqual({ version: 1, items });
    expect(text.split('\n')).toEqual(['{"version":1,"items":[', ...items.map((i, k) => `${JSON.stringify(i)}${k < 2 ? ',' : ''}`), ']}', '']);
    expect(await PendingSnapshot.read(path)).toEqual(items);
  });

  it('writes an empty queue as valid JSON, and reads a missing file as none', async () => {
    const dir = await tempDir('snap-');
    await PendingSnapshot.write(join(dir, 'pending.json'), []);
    expect(JSON.parse(await readFile(join(dir, 'pending.json'), 'utf8'))).toEqual({ version: 1, items: [] });
    expect(await PendingSnapshot.read(join(dir, 'pending.json'))).toEqual([]);
    expect(await PendingSnapshot.read(join(dir, 'missing.json'))).toBeUndefined();
  });

  it('reads a file in another layout (an earlier version\'s indented JSON) whole', async () => {
    const path = join(await tempDir('snap-'), 'pending.json');
    const items = [item(1), item(2)];
    await writeFile(path, `${JSON.stringify({ version: 1, items }, null, 2)}\n`);
    expect(await PendingSnapshot.read(path)).toEqual(items);
  });

  it('refuses a damaged file, naming the line, and an empty or cut-short one', async () => {
    const dir = await tempDir('snap-');
    const path = join(dir, 'pending.json');
    await PendingSnapshot.write(path, [item(1), item(2), item(3)]);
    const lines = (await readFile(path, 'utf8')).split('\n');
    await writeFile(path, [lines[0], lines[1], '{"message":{"type":"message"}},', lines[3], lines[4], ''].join('\n'));
    await expect(PendingSnapshot.read(path)).rejects.toMatchObject({ code: 'STORAGE_CORRUPT', message: expect.stringContaining('line 3') });
    await writeFile(path, lines.slice(0, 3).join('\n'));
    await expect(PendingSnapshot.read(path)).rejects.toMatchObject({ code: 'STORAGE_CORRUPT', message: expect.stringContaining('cut short') });
    await writeFile(path, '');
    await expect(PendingSnapshot.read(path)).rejects.toMatchObject({ code: 'STORAGE_CORRUPT' });
  });

  it('never holds a long queue as one string: written a part at a time, read a chunk at a time', async () => {
    const path = join(await tempDir('snap-'), 'pending.json');
    // About 3 MB of items.
    const items = Array.from({ length: 3000 }, (_, n) => item(n + 1, 'x'.repeat(900)));
    const proto = await fileHandlePrototype();
    const writeFileOf = vi.spyOn(proto, 'writeFile');
    await PendingSnapshot.write(path, items);
    const parts = writeFileOf.mock.calls.map(([data]) => String(data).length);
    expect(parts.length).toBeGreaterThan(2);
    expect(Math.max(...parts)).toBeLessThan(2 << 20);
    vi.restoreAllMocks();
    const whole = vi.spyOn(JsonFile.prototype, 'read');
    expect(await PendingSnapshot.read(path)).toEqual(items);
    expect(whole).not.toHaveBeenCalled();
  });

  it('writes items as they come (read from elsewhere) and tells the offset of each line, where the item can be read again', async () => {
    const path = join(await tempDir('snap-'), 'pending.json');
    const items = Array.from({ length: 3000 }, (_, n) => item(n + 1, n % 7 === 0 ? 'é'.repeat(900) : 'x'.repeat(n % 50)));
    async function* slowly() {
      for (const i of items) {
        if (Math.random() < 0.01) await new Promise((resolve) => setImmediate(resolve));
        yield i;
      }
    }
    const offsets: number[] = [];
    await PendingSnapshot.write(path, slowly(), (offset) => offsets.push(offset));
    expect(offsets).toHaveLength(items.length);
    const bytes = await readFile(path);
    const seen: number[] = [];
    expect(await PendingSnapshot.each(path, (_, offset) => seen.push(offset), () => {})).toBe('lines');
    expect(seen).toEqual(offsets);
    for (const k of [0, 1, 7, 1499, 2999]) {
      const end = bytes.indexOf(0x0a, offsets[k]);
      expect(JSON.parse(bytes.subarray(offsets[k], end).toString('utf8').replace(/,$/, ''))).toEqual(items[k]);
    }
  });

  it('reads edits that are still one item a line (CRLF, spaces), and any other valid JSON whole; refuses what is not JSON', async () => {
    const path = join(await tempDir('snap-'), 'pending.json');
    const items = [item(1), item(2)];
    await PendingSnapshot.write(path, items);
    const lines = (await readFile(path, 'utf8')).split('\n').filter(Boolean);
    await writeFile(path, `${lines.map((l) => `${l}  `).join('\r\n')}\r\n`);
    expect(await PendingSnapshot.read(path)).toEqual(items);
    // Items indented under the first line: valid JSON in another layout.
    await writeFile(path, `${lines[0]}\n${JSON.stringify(items, null, 2).slice(1, -1)}\n]}\n`);
    expect(await PendingSnapshot.read(path)).toEqual(items);
    // A missing comma, or one after the last item, is not JSON.
    await writeFile(path, [lines[0], lines[1]!.slice(0, -1), lines[2], lines[3], ''].join('\n'));
    await expect(PendingSnapshot.read(path)).rejects.toMatchObject({ code: 'STORAGE_CORRUPT' });
    await writeFile(path, [lines[0], lines[1], `${lines[2]},`, lines[3], ''].join('\n'));
    await expect(PendingSnapshot.read(path)).rejects.toMatchObject({ code: 'STORAGE_CORRUPT' });
  });
});

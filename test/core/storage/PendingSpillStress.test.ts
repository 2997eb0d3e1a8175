import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PendingQueueStore } from '../../../src/core/storage/PendingQueueStore.js';
import { pendingKey, type MessageRecord, type PendingItem } from '../../../src/core/storage/records.js';
import { fileHandlePrototype, ioError } from '../../helpers/diskFaults.js';
import { tempDir } from '../../helpers/tmp.js';

afterEach(() => vi.restoreAllMocks());
const T = '2026-01-01T00:00:00.000Z';
const message = (n: number, text: string): MessageRecord => ({ type: 'message', id: `in_${String(n).padStart(8, '0')}`, conversationId: 'agent_001+agent_002', direction: 'in', from: 'agent_002', to: 'agent_001', text, sentAt: T, seq: n });
const key = (n: number) => pendingKey('agent_002', message(n, '').id);
/** Seeded, so a failure can be replayed (`SEEDS=... N=...` run more). */
const SEEDS = (process.env.SEEDS ?? '1,2,7,16,18').split(',').map(Number);
const N = Number(process.env.N ?? 2000);

describe('PendingQueueStore under random disk faults, with a long queue spilled', () => {
  for (const s of SEEDS) {
    it(`loses nothing and finds every message (seed ${s})`, async () => {
      const dir = await tempDir('spill-');
      const snap = join(dir, 'pending.json'), log = join(dir, 'pending.log.jsonl');
      const store = await PendingQueueStore.open(snap, log, { maxInMemory: 20 });
      let seed = s;
      const random = () => ((seed = (seed * 48271) % 2147483647) / 2147483647);
      const corrupt: unknown[] = [];
      const proto = await fileHandlePrototype();
      const real = proto.write as any;
      let faults = true;
      vi.spyOn(proto, 'write').mockImplementation(async function (this: any, ...args: any[]) {
        if (faults && random() < 0.08) throw ioError('EIO');
        return real.apply(this, args);
      } as any);
      const note = (p: Promise<unknown>) => p.catch((e: any) => { if (e?.code === 'STORAGE_CORRUPT' || !(e?.code)) corrupt.push(e); });
      // What the calls reported: a message whose add resolved and that no resolved ack took out must be queued at the end.
      const addedOk = new Set<string>();
      const ackedOk = new Set<string>();
      let next = 1;
      const ops: Promise<unknown>[] = [];
      for (let round = 0; round < N; round++) {
        const r = random();
        if (r < 0.35) {
          const n = 1 + Math.floor(random() * 5);
          const items: PendingItem[] = [];
          for (let k = 0; k < n; k++) items.push({ message: message(next + k, `m${next + k} ${'x'.repeat(Math.floor(random() * 3000))}`), enqueuedAt: T, attempts: 0 });
          // sometimes re-add a recent key
          if (random() < 0.1 && next > 5) { const m = next - 1 - Math.floor(random() * 5); items.push({ message: message(m, `m${m}`), enqueuedAt: T, attempts: 0 }); }
          next += n;
          ops.push(note(store.add(items).then(() => items.forEach((i) => addedOk.add(pendingKey(i.message.from, i.message.id))))));
        } else {
          const ent = [...store.entries()].map(([k]) => k); const st = random() < 0.5 ? 0 : Math.floor(random() * ent.length); const keys = ent.slice(st, st + 1 + Math.floor(random() * 40));
          const pick = keys.filter(() => random() < 0.5);
          const kind = random();
          if (kind < 0.3) ops.push(note(store.load(pick)));
          else if (kind < 0.45) ops.push(note(store.peek(pick.concat(random() < 0.5 ? [key(Math.floor(random() * next) + 1)] : []))));
          else if (kind < 0.6) ops.push(note(store.claim(pick, '2030-01-01T00:00:00.000Z')));
          else if (kind < 0.65) ops.push(note(store.release(pick)));
          else if (kind < 0.95) {
            const acked = pick.slice(0, 1).concat(random() < 0.3 ? [key(Math.floor(random() * next) + 1)] : []);
            ops.push(note(store.ack(acked).then(() => acked.forEach((k) => ackedOk.add(k)))));
          }
          else ops.push(note(store.compact()));
        }
        if (random() < 0.3) await new Promise((res) => setImmediate(res));
      }
      await Promise.allSettled(ops);
      faults = false;
      await new Promise((res) => setImmediate(res));
      await new Promise((res) => setTimeout(res, 20));
      // every item readable
      const all = [...store.entries()].map(([k]) => k);
      const got = await store.peek(all).catch((e) => (corrupt.push(e), new Map()));
      const missing = all.filter((k) => !got.get(k)?.message);
      const lost = [...addedOk].filter((k) => !ackedOk.has(k) && !store.has(k));
      expect(lost.slice(0, 5)).toEqual([]);
      await store.close().catch((e) => corrupt.push(e));
      expect(corrupt.slice(0, 3)).toEqual([]);
      expect(missing.slice(0, 5)).toEqual([]);
      const disk = (await PendingQueueStore.read(snap, log)).map((i) => pendingKey(i.message.from, i.message.id));
      expect(new Set(disk)).toEqual(new Set(all));
    }, 300_000);
  }
});

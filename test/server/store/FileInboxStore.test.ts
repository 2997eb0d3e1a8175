import { readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileInboxStore } from '../../../src/server/store/FileInboxStore.js';
import { eventually } from '../../helpers/clients.js';
import { tempDir } from '../../helpers/tmp.js';
import { inboxStoreContract, wire } from './contract.js';

const dirs = new Map<string, string>();
const dataDir = async (key: string) => {
  if (!dirs.has(key)) dirs.set(key, join(await tempDir('store-'), 'data'));
  return dirs.get(key)!;
};
inboxStoreContract('FileInboxStore', async (key) => new FileInboxStore({ dataDir: await dataDir(key), segmentBytes: 512 }), { durable: true });
// The same behaviour when every write has to open its inbox's segment again.
inboxStoreContract('FileInboxStore, one segment file open at a time', async (key) => new FileInboxStore({ dataDir: await dataDir(`one:${key}`), segmentBytes: 512, maxOpenSegments: 1 }), {
  durable: true,
});

/** Files this process holds open under `dir` (Linux: /proc/self/fd). */
async function openFilesUnder(dir: string): Promise<number> {
  let n = 0;
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target.startsWith(dir)) n++;
  }
  return n;
}

describe('FileInboxStore open segment files', () => {
  it.runIf(process.platform === 'linux')('holds at most maxOpenSegments inbox files open, however many agents it has seen, and loses nothing', async () => {
    const dir = join(await tempDir('store-'), 'data');
    const agents = Array.from({ length: 12 }, (_, i) => `agent_${String(100 + i)}`);
    const inboxes = join(dir, 'inboxes');
    let store = new FileInboxStore({ dataDir: dir, segmentBytes: 1024, maxOpenSegments: 3 });
    await store.open();
    // Rounds of concurrent sends to every agent (segments roll, some are acknowledged and trimmed).
    for (let round = 0; round < 6; round++) {
      await Promise.all(agents.map((to, i) => store.appendMessages(to, [1, 2, 3].map((k) => ({ message: wire(round * 100 + i * 10 + k, 'agent_001', to), digest: `d${round}.${i}.${k}` })))));
      if (round === 2) await Promise.all(agents.slice(0, 6).map((to) => store.ack(to, 6)));
      // Files being closed finish their last lines first: the count settles a moment after the writes.
      await eventually(async () => (await openFilesUnder(inboxes)) <= 3, 2000, 'at most 3 open segment files');
    }
    await store.close();
    expect(await openFilesUnder(inboxes)).toBe(0);
    // Reopened: every message still there, in order, and none twice; loading opens no segment.
    store = new FileInboxStore({ dataDir: dir, segmentBytes: 1024, maxOpenSegments: 3 });
    await store.open();
    expect(await openFilesUnder(inboxes)).toBe(0);
    for (const [i, to] of agents.entries()) {
      const acked = i < 6 ? 6 : 0;
      const texts = (await store.read(to, 0, 100)).map((e) => (e.kind === 'message' ? JSON.parse(e.payload).text : e.kind));
      const all = [0, 1, 2, 3, 4, 5].flatMap((round) => [1, 2, 3].map((k) => `m${round * 100 + i * 10 + k}`));
      expect(texts).toEqual(all.slice(acked));
      expect(await store.position(to)).toMatchObject({ latestSeq: 18, ackedUpTo: acked });
    }
    await store.close();
  });
});

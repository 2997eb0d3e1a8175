import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { JsonlWriter } from '../../../src/fs/JsonlWriter.js';
import { FileInboxStore } from '../../../src/server/store/FileInboxStore.js';
import { eventually } from '../../helpers/clients.js';
import { openFilesUnder } from '../../helpers/openFiles.js';
import { sleep } from '../../helpers/server.js';
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

afterEach(() => {
  vi.restoreAllMocks();
});

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

  it.runIf(process.platform === 'linux')('never lets a roll and a reopen of the same inbox overlap: a message accepted meanwhile survives a restart', async () => {
    const dir = join(await tempDir('store-'), 'data');
    const [a, b] = ['agent_aaa', 'agent_bbb'];
    const to = (agent: string, n: number) => [{ message: wire(n, 'agent_001', agent), digest: `d${n}` }];
    let store = new FileInboxStore({ dataDir: dir, segmentBytes: 2000, maxOpenSegments: 1 });
    await store.open();
    await store.appendMessages(a, [...to(a, 1), ...to(a, 2)]);
    await store.appendMessages(b, to(b, 50)); // parks a's segment
    await store.appendMessages(a, to(a, 3)); // opens it again, parks b's
    // Slow I/O: the ack line's completion is seen late, and opening a's first segment again is slow.
    const append = JsonlWriter.prototype.append;
    vi.spyOn(JsonlWriter.prototype, 'append').mockImplementation(function (this: JsonlWriter, lines) {
      const done = append.call(this, lines);
      return typeof lines === 'string' && lines.startsWith('{"k":"a"') ? done.then(() => sleep(100)) : done;
    });
    const open = JsonlWriter.open.bind(JsonlWriter);
    let opens = 0;
    vi.spyOn(JsonlWriter, 'open').mockImplementation(async (path, options) => {
      const writer = await open(path, options);
      if (path.includes(`${a}/000000000001`) && opens++ === 0) await sleep(300);
      return writer;
    });
    // a catches up (its trim would roll to a fresh segment) while its segment is parked and a message to it comes.
    const acked = store.ack(a, 3);
    await sleep(20);
    await store.appendMessages(b, to(b, 51)); // parks a's segment during the ack
    const fourth = store.appendMessages(a, to(a, 4)); // opens it again, slowly
    await acked;
    const [accepted] = await fourth;
    vi.restoreAllMocks();
    expect(accepted?.seq).toBe(4);
    await store.close();
    expect(await openFilesUnder(join(dir, 'inboxes'))).toBe(0);
    store = new FileInboxStore({ dataDir: dir, segmentBytes: 2000, maxOpenSegments: 1 });
    await store.open();
    expect(await store.position(a)).toMatchObject({ latestSeq: 4, ackedUpTo: 3 });
    expect((await store.read(a, 0, 100)).map((e) => JSON.parse(e.payload).text)).toEqual(['m4']);
    await store.close();
  });

  it.runIf(process.platform === 'linux')('closes the files beyond the bound once a roll that kept them open ends, even with one file allowed', async () => {
    const dir = join(await tempDir('store-'), 'data');
    const [a, b] = ['agent_aaa', 'agent_bbb'];
    const to = (agent: string, n: number, text = `m${n}`) => [{ message: { ...wire(n, 'agent_001', agent), text }, digest: `d${n}` }];
    const store = new FileInboxStore({ dataDir: dir, segmentBytes: 8000, maxOpenSegments: 1 });
    await store.open();
    await store.appendMessages(b, to(b, 100));
    for (let i = 1; i <= 3; i++) await store.appendMessages(a, to(a, i, 'x'.repeat(3000)));
    // a's roll ends slowly (closing its old segment); b is written meanwhile, while a cannot be closed.
    const close = JsonlWriter.prototype.close;
    vi.spyOn(JsonlWriter.prototype, 'close').mockImplementation(async function (this: JsonlWriter) {
      if (this.path.includes(`${a}/`)) await sleep(100);
      return close.call(this);
    });
    const rolling = store.appendMessages(a, to(a, 4));
    await sleep(20);
    await store.appendMessages(b, to(b, 101));
    await rolling;
    vi.restoreAllMocks();
    for (let i = 0; i < 10; i++) await store.appendMessages(i % 2 ? a : b, to(i % 2 ? a : b, 200 + i));
    await eventually(async () => (await openFilesUnder(join(dir, 'inboxes'))) === 1, 2000, 'one open segment file');
    await store.close();
  });

  it.runIf(process.platform === 'linux')('closes every inbox, the dedupe index and the lock even when an inbox failed to load, and opens none after', async () => {
    const dir = join(await tempDir('store-'), 'data');
    const store = new FileInboxStore({ dataDir: dir, maxOpenSegments: 4 });
    await store.open();
    await store.appendMessages('agent_aaa', [{ message: wire(1, 'agent_001', 'agent_aaa'), digest: 'd1' }]);
    // An inbox whose only segment is damaged: its load fails.
    await mkdir(join(dir, 'inboxes', 'agent_bad'));
    await writeFile(join(dir, 'inboxes', 'agent_bad', '000000000001.jsonl'), 'garbage\n');
    const bad = store.read('agent_bad', 0, 10).catch((err: unknown) => err);
    await store.close();
    await expect(bad).resolves.toMatchObject({ code: 'STORAGE_IO' });
    await expect(store.read('agent_new', 0, 10)).rejects.toMatchObject({ code: 'CLOSED' });
    expect(await openFilesUnder(dir)).toBe(0);
    // The lock is released: the directory opens again (the damaged inbox set aside).
    await rm(join(dir, 'inboxes', 'agent_bad'), { recursive: true });
    const again = new FileInboxStore({ dataDir: dir });
    await again.open();
    expect((await again.read('agent_aaa', 0, 10)).length).toBe(1);
    await again.close();
  });

  it.runIf(process.platform === 'linux')('leaves no file open and the lock free when opening fails half-way', async () => {
    const dir = join(await tempDir('store-'), 'data');
    // An empty inbox folder (loading it starts a segment), then a damaged one (its load fails).
    await mkdir(join(dir, 'inboxes', 'agent_aaa'), { recursive: true });
    await mkdir(join(dir, 'inboxes', 'agent_zzz'), { recursive: true });
    await writeFile(join(dir, 'inboxes', 'agent_zzz', '000000000001.jsonl'), 'garbage\n');
    const store = new FileInboxStore({ dataDir: dir });
    await expect(store.open()).rejects.toMatchObject({ code: 'STORAGE_IO' });
    expect(await openFilesUnder(dir)).toBe(0);
    await rm(join(dir, 'inboxes', 'agent_zzz'), { recursive: true });
    const again = new FileInboxStore({ dataDir: dir });
    await again.open();
    await again.close();
  });
});

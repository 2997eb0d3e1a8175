import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { WorkspaceLockedError } from '../../src/errors.js';
import { CloseCode } from '../../src/protocol/codes.js';
import type { AckFrame } from '../../src/protocol/send.js';
import { IMServer } from '../../src/server/IMServer.js';
import { ServerProcess } from '../../src/testing/ServerProcess.js';
import { RawClient } from '../helpers/RawClient.js';
import { msgId, sleep, startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

async function startChild(dataDir: string, port = 0): Promise<ServerProcess> {
  const child = await ServerProcess.start({ dataDir, port, args: ['--quiet'] });
  onTestFinished(() => child.kill('SIGKILL').then(() => {}));
  return child;
}

/** Logs in, retrying while a restarted server is still coming up. */
async function loginRetry(url: string, agentId: string, extra = {}): Promise<Awaited<ReturnType<typeof RawClient.login>>> {
  for (let i = 0; ; i++) {
    try {
      return await RawClient.login(url, agentId, extra);
    } catch (err) {
      if (i > 50) throw err;
      await sleep(100);
    }
  }
}

describe('durability of the reference server', () => {
  it('loses and duplicates nothing when SIGKILLed mid-stream and restarted', async () => {
    const dataDir = await tempDir('im-server-');
    const N = 1500;
    const text = (i: number) => `payload ${i} ${'x'.repeat(i % 40)}`;
    const srv = await startChild(dataDir);

    // The recipient acknowledges as it goes, remembering only what it acknowledged (its durable cursor).
    const received = new Map<number, string>(); // seq -> id
    let cursor = 0;
    const b = await RawClient.login(srv.url, 'agent_002');
    const epoch = b.welcome.inbox.epoch;
    const onDeliver = (client: RawClient) => {
      const handle = (f: { type: string; seq: number; message: { id: string } }) => {
        if (f.type !== 'deliver') return;
        const seen = received.get(f.seq);
        if (seen !== undefined) expect(seen).toBe(f.message.id); // a redelivery is the same message
        received.set(f.seq, f.message.id);
        cursor = Math.max(cursor, f.seq);
        if (f.seq % 25 === 0) client.send({ type: 'deliver_ack', upTo: f.seq });
      };
      // Deliveries may arrive in the same read as welcome, before this handler is attached.
      for (const f of client.frames) handle(f as never);
      client.onFrame((f) => handle(f as never));
    };
    onDeliver(b);

    const acks = new Map<string, AckFrame>();
    const a = await RawClient.login(srv.url, 'agent_001');
    a.onFrame((f) => {
      if (f.type === 'ack') acks.set(f.id, f);
    });
    // Stream the sends, a few per tick, so the kill lands while messages are in flight.
    void (async () => {
      for (let i = 0; i < N && a.ws.readyState === a.ws.OPEN; i++) {
        a.send({ type: 'send', id: msgId(i), to: 'agent_002', text: text(i) });
        if (i % 10 === 9) await sleep(1);
      }
    })();
    while (acks.size < 300) await sleep(1);
    await srv.kill('SIGKILL');
    await Promise.all([a.closed, b.closed]);
    const acksBefore = new Map(acks);
    expect(acksBefore.size).toBeLessThan(N); // the kill did land mid-stream

    const srv2 = await startChild(dataDir, srv.port);
    const b2 = await loginRetry(srv2.url, 'agent_002', { resume: { epoch, ackedUpTo: cursor } });
    onDeliver(b2);
    const a2 = await loginRetry(srv2.url, 'agent_001');
    a2.onFrame((f) => {
      if (f.type === 'ack') acks.set(f.id, f);
    });
    // The sender resends everything it is unsure of: here, simply everything.
    for (let i = 0; i < N; i++) a2.send({ type: 'send', id: msgId(i), to: 'agent_002', text: text(i) });
    const deadline = Date.now() + 20_000;
    while (received.size < N && Date.now() < deadline) await sleep(20);

    // Every message acked before the kill kept its ack: same sequence, same time.
    for (const [id, ack] of acksBefore) expect(acks.get(id)).toEqual(ack);
    // Each message is stored once, at one sequence, in send order.
    expect(received.size).toBe(N);
    const bySeq = [...received.entries()].sort((x, y) => x[0] - y[0]).map(([, id]) => id);
    expect(bySeq).toEqual(Array.from({ length: N }, (_, i) => msgId(i)));
    expect(new Set(bySeq).size).toBe(N);
    a2.close();
    b2.close();
  });

  it('drains on SIGTERM: in-progress sends are acked, sessions close with 1001, exit code 0', async () => {
    const dataDir = await tempDir('im-server-');
    const srv = await startChild(dataDir);
    const a = await RawClient.login(srv.url, 'agent_001');
    const acked: string[] = [];
    a.onFrame((f) => {
      if (f.type === 'ack') acked.push(f.id);
    });
    for (let i = 0; i < 200; i++) a.send({ type: 'send', id: msgId(i), to: 'agent_002', text: `m${i}` });
    while (acked.length < 20) await sleep(1);
    srv.child.kill('SIGTERM');
    expect((await a.closed).code).toBe(CloseCode.GOING_AWAY);
    expect(await srv.exited).toEqual({ code: 0, signal: null });

    const srv2 = await startChild(dataDir);
    const b = await RawClient.login(srv2.url, 'agent_002');
    expect(b.welcome.inbox.latestSeq).toBeGreaterThanOrEqual(acked.length);
    const delivered = await b.collect('deliver', b.welcome.inbox.latestSeq);
    const ids = delivered.map((d) => d.message.id);
    for (const id of acked) expect(ids).toContain(id);
    b.close();
  });

  it('trims inbox segments once delivery is acknowledged, and still deduplicates afterwards', async () => {
    const dataDir = await tempDir('im-server-');
    const server = await startServer({ dataDir, segmentBytes: 2048 });
    const inboxDir = join(dataDir, 'inboxes', 'agent_002');
    const a = await RawClient.login(server.url, 'agent_001');
    for (let i = 0; i < 100; i++) a.send({ type: 'send', id: msgId(i), to: 'agent_002', text: `message number ${i}` });
    const acks = await a.collect('ack', 100);
    const segmentsBefore = await readdir(inboxDir);
    expect(segmentsBefore.length).toBeGreaterThan(5);

    const b = await RawClient.login(server.url, 'agent_002');
    const delivered = await b.collect('deliver', 100);
    b.send({ type: 'deliver_ack', upTo: delivered.at(-1)!.seq });
    await a.next('receipt');
    await sleep(100);
    const segmentsAfter = await readdir(inboxDir);
    expect(segmentsAfter).toHaveLength(1);
    expect((await stat(join(inboxDir, segmentsAfter[0]!))).size).toBeLessThan(2048);

    // A late resend of a trimmed message still gets its original ack, even after a restart.
    a.send({ type: 'send', id: msgId(7), to: 'agent_002', text: 'message number 7' });
    expect(await a.next('ack')).toEqual(acks[7]);
    a.close();
    b.close();
    await server.close();
    const again = await startServer({ dataDir, segmentBytes: 2048 });
    const a2 = await RawClient.login(again.url, 'agent_001');
    a2.send({ type: 'send', id: msgId(7), to: 'agent_002', text: 'message number 7' });
    expect(await a2.next('ack')).toEqual(acks[7]);
    const b2 = await RawClient.login(again.url, 'agent_002');
    expect(b2.welcome.inbox).toMatchObject({ latestSeq: 100, ackedUpTo: 100 });
    expect(await b2.drain('deliver', 150)).toEqual([]);
    a2.close();
    b2.close();
  });

  it('keeps an inbox whose segment start a crash cut short: the headerless file is removed, the agent logs in', async () => {
    const dataDir = await tempDir('im-server-');
    // What a SIGKILL between creating a new inbox's first segment and writing its header leaves.
    await mkdir(join(dataDir, 'inboxes', 'agent_002'), { recursive: true });
    await writeFile(join(dataDir, 'inboxes', 'agent_002', '000000000001.jsonl'), '');
    const server = await startServer({ dataDir });
    const b = await RawClient.login(server.url, 'agent_002');
    expect(b.welcome.inbox.epoch).toMatch(/^[0-9a-f]{16}$/);
    const a = await RawClient.login(server.url, 'agent_001');
    a.send({ type: 'send', id: msgId(1), to: 'agent_002', text: 'after the crash' });
    expect((await a.next('ack')).seq).toBe(1);
    expect((await b.next('deliver')).message.text).toBe('after the crash');
    a.close();
    b.close();
  });

  it('refuses to open over a segment whose lines are unreadable, and leaves it in place', async () => {
    const dataDir = await tempDir('im-server-');
    const segment = join(dataDir, 'inboxes', 'agent_002', '000000000001.jsonl');
    await mkdir(join(dataDir, 'inboxes', 'agent_002'), { recursive: true });
    await writeFile(segment, 'not a record\nnor this\n');
    await expect(IMServer.start({ port: 0, dataDir, log: () => {} })).rejects.toMatchObject({ code: 'STORAGE_IO' });
    expect(await readdir(join(dataDir, 'inboxes', 'agent_002'))).toEqual(['000000000001.jsonl']);
  });

  it('does not start a second segment under the current one\'s name: a refused batch then a trim lose nothing', async () => {
    const dataDir = await tempDir('im-server-');
    const options = { dataDir, segmentBytes: 400, maxInboxEntries: 1 };
    let server = await startServer(options);
    const a = await RawClient.login(server.url, 'agent_001');
    const send = (i: number) => {
      a.send({ type: 'send', id: msgId(i), to: 'agent_002', text: 'x'.repeat(200) });
      return a.nextOf(['ack', 'nack']);
    };
    expect((await send(1)).type).toBe('ack');
    // The segment is full: a new one is started for the next message, which the full inbox refuses.
    expect((await send(2)).type).toBe('nack');
    const b = await RawClient.login(server.url, 'agent_002');
    await b.next('deliver');
    // Caught up: the trim would start a fresh segment, with the same name as the one just started.
    b.send({ type: 'deliver_ack', upTo: 1 });
    await sleep(200);
    b.close();
    expect(await readdir(join(dataDir, 'inboxes', 'agent_002'))).toEqual(['000000000002.jsonl']);
    expect((await send(3)).type).toBe('ack');
    a.close();
    await server.close();
    server = await startServer(options);
    const b2 = await RawClient.login(server.url, 'agent_002');
    expect(b2.welcome.inbox.latestSeq).toBe(2);
    expect((await b2.next('deliver')).message.id).toBe(msgId(3));
    b2.close();
  });

  it('remembers the most recent ids across a restart, whatever order the inbox folders are read in', async () => {
    const dataDir = await tempDir('im-server-');
    // Room for 4 ids: always the 2 most recent.
    const options = { dataDir, dedupeMaxEntries: 4 };
    let server = await startServer(options);
    await server.store.position('agent_aa');
    await server.store.position('agent_zz');
    // The folder read last on start gets the older messages, the one read first the newest.
    const [readFirst, readLast] = (await readdir(join(dataDir, 'inboxes'))).filter((n) => n.startsWith('agent_'));
    const s = await RawClient.login(server.url, 'agent_s');
    const send = async (client: typeof s, i: number, to: string) => {
      await sleep(5); // each accepted in its own millisecond
      client.send({ type: 'send', id: msgId(i), to, text: `m${i}` });
      return client.next('ack');
    };
    for (const i of [1, 2, 3]) await send(s, i, readLast!);
    const newest = await send(s, 4, readFirst!);
    s.close();
    await server.close();
    server = await startServer(options);
    const s2 = await RawClient.login(server.url, 'agent_s');
    // The client resends the newest message (its ack was lost): the same ack, not a second copy.
    expect(await send(s2, 4, readFirst!)).toEqual(newest);
    s2.close();
  });

  it('refuses a second server on the same data directory, naming the holder', async () => {
    const dataDir = await tempDir('im-server-');
    await startServer({ dataDir });
    const err = await IMServer.start({ port: 0, dataDir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkspaceLockedError);
    expect((err as WorkspaceLockedError).holder.pid).toBe(process.pid);
  });
});

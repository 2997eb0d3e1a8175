import { describe, expect, it } from 'vitest';
import { FileInboxStore } from '../../src/server/store/FileInboxStore.js';
import type { InboxStore } from '../../src/server/store/InboxStore.js';
import { tempDir } from '../helpers/tmp.js';
import { RawClient } from '../helpers/RawClient.js';
import { msgId, startServer } from '../helpers/server.js';

/**
 * The file store, without its synchronous dedupe lookup: the server then
 * decides sends one at a time, each waiting for the store, as it would with
 * a store kept elsewhere.
 */
async function asyncLookupStore(): Promise<InboxStore> {
  return storeOver(new FileInboxStore({ dataDir: await tempDir('im-store-') }));
}

/** A store that hands every call to the file store (without its synchronous lookup). */
function storeOver(files: FileInboxStore): InboxStore {
  return {
    open: () => files.open(),
    close: () => files.close(),
    position: (agentId) => files.position(agentId),
    backlog: (agentId) => files.backlog(agentId),
    findAccepted: (from, id) => files.findAccepted(from, id),
    appendMessage: (message, digest, limits) => files.appendMessage(message, digest, limits),
    appendMessages: (to, batch, limits) => files.appendMessages(to, batch, limits),
    appendReceipt: (to, receipt) => files.appendReceipt(to, receipt),
    read: (agentId, afterSeq, limit) => files.read(agentId, afterSeq, limit),
    coveredBy: (agentId, upTo) => files.coveredBy(agentId, upTo),
    ack: (agentId, upTo) => files.ack(agentId, upTo),
  };
}

/** The next `count` acks and nacks, in the order they came. */
async function answersTo(client: RawClient, count: number) {
  const out = [];
  for (let i = 0; i < count; i++) out.push(await client.nextOf(['ack', 'nack']));
  return out;
}

const stores: Array<[string, () => Promise<InboxStore | undefined>]> = [
  ['the file store (decided together, appended together)', async () => undefined],
  ['a store with asynchronous lookups (decided one at a time)', asyncLookupStore],
];

describe.each(stores)('sends batched in one WebSocket message, %s', (_, makeStore) => {
  it('answers each send as if sent alone, in order: a copy in the batch gets the same ack, `after` may name an earlier send of the batch', async () => {
    const store = await makeStore();
    const server = await startServer({ maxMessageBytes: 1_000, ...(store ? { store } : {}) });
    const a = await RawClient.login(server.url, 'agent_001');
    a.sendRaw(
      JSON.stringify([
        { type: 'send', id: msgId(1), to: 'agent_002', text: 'one' },
        { type: 'send', id: msgId(2), to: 'agent_002', text: 'two', after: msgId(1) },
        { type: 'send', id: msgId(3), to: 'agent_003', text: 'to someone else' },
        { type: 'send', id: msgId(1), to: 'agent_002', text: 'one' },
        { type: 'send', id: msgId(1), to: 'agent_002', text: 'one, changed' },
        { type: 'send', id: msgId(4), to: 'agent_002', text: 'four', after: msgId(9) },
        { type: 'send', id: msgId(5), to: 'agent_002', text: 'x'.repeat(2_000) },
      ]),
    );
    const answers = await answersTo(a, 7);
    const acks = answers.filter((f) => f.type === 'ack');
    const nacks = answers.filter((f) => f.type === 'nack');
    const first = acks.filter((f) => f.id === msgId(1));
    expect(first).toHaveLength(2);
    expect(first[1]).toEqual(first[0]);
    expect(acks.find((f) => f.id === msgId(2))).toMatchObject({ seq: 2 });
    expect(acks.find((f) => f.id === msgId(3))).toMatchObject({ seq: 1 });
    expect(first[0]).toMatchObject({ seq: 1 });
    expect(nacks.map((f) => [f.id, f.code]).sort()).toEqual([
      [msgId(1), 'id_conflict'],
      [msgId(4), 'out_of_order'],
      [msgId(5), 'too_large'],
    ]);

    const b = await RawClient.login(server.url, 'agent_002');
    expect((await b.drain('deliver', 200)).map((d) => [d.seq, d.message.text])).toEqual([
      [1, 'one'],
      [2, 'two'],
    ]);
    const c = await RawClient.login(server.url, 'agent_003');
    expect((await c.drain('deliver', 200)).map((d) => d.message.text)).toEqual(['to someone else']);
    for (const client of [a, b, c]) client.close();
  });

  it('stores a batch up to maxInboxEntries and refuses the rest with inbox_full, keeping the order of what it stored', async () => {
    const store = await makeStore();
    const server = await startServer({ maxInboxEntries: 3, ...(store ? { store } : {}) });
    const a = await RawClient.login(server.url, 'agent_001');
    a.sendRaw(JSON.stringify([1, 2, 3, 4, 5].map((n) => ({ type: 'send', id: msgId(n), to: 'agent_002', text: `m${n}` }))));
    const answers = await answersTo(a, 5);
    expect(answers.filter((f) => f.type === 'ack').map((f) => f.id).sort()).toEqual([msgId(1), msgId(2), msgId(3)]);
    expect(answers.filter((f) => f.type === 'nack').map((f) => [f.id, f.type === 'nack' && f.code, f.type === 'nack' && f.retryable])).toEqual([
      [msgId(4), 'inbox_full', true],
      [msgId(5), 'inbox_full', true],
    ]);
    const b = await RawClient.login(server.url, 'agent_002');
    expect((await b.drain('deliver', 200)).map((d) => d.message.text)).toEqual(['m1', 'm2', 'm3']);
    a.close();
    b.close();
  });
});

describe('frames around the sends of a batch', () => {
  it('handles the sends before a frame that closes the connection, as if they had come one by one', async () => {
    const server = await startServer({ maxBadFrames: 1 });
    const a = await RawClient.login(server.url, 'agent_001');
    a.sendRaw(JSON.stringify([{ type: 'send', id: msgId(1), to: 'agent_002', text: 'before' }, { type: 'bogus' }, { type: 'bogus' }, { type: 'send', id: msgId(2), to: 'agent_002', text: 'after' }]));
    expect((await a.collect('error', 2)).at(-1)).toMatchObject({ fatal: true });
    const b = await RawClient.login(server.url, 'agent_002');
    expect((await b.drain('deliver', 300)).map((d) => d.message.text)).toEqual(['before']);
    b.close();
  });
});

describe('a batch whose decision throws', () => {
  it('closes that connection with an internal error and leaves the server serving, and closing', async () => {
    const files = new FileInboxStore({ dataDir: await tempDir('im-store-') });
    // The file store, whose synchronous lookup fails on one id: a bug or a broken backend.
    const store: InboxStore = {
      ...storeOver(files),
      findAcceptedNow: (from, id) => {
        if (id === msgId(666)) throw new Error('lookup failed');
        return files.findAcceptedNow(from, id);
      },
    };
    const server = await startServer({ store });
    const a = await RawClient.login(server.url, 'agent_001');
    a.sendRaw(JSON.stringify([1, 666, 2].map((n) => ({ type: 'send', id: msgId(n), to: 'agent_002', text: `m${n}` }))));
    expect(await a.next('error')).toMatchObject({ code: 'internal', fatal: true });
    // Another sender is served as before; what the failed batch admitted was not stored.
    const c = await RawClient.login(server.url, 'agent_003');
    c.send({ type: 'send', id: msgId(1), to: 'agent_002', text: 'from c' });
    expect(await c.next('ack')).toMatchObject({ id: msgId(1), seq: 1 });
    const b = await RawClient.login(server.url, 'agent_002');
    expect((await b.drain('deliver', 200)).map((d) => d.message.text)).toEqual(['from c']);
    b.close();
    c.close();
    await server.close({ timeoutMs: 2000 });
  });
});

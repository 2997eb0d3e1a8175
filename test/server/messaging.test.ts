import { describe, expect, it } from 'vitest';
import { RawClient } from '../helpers/RawClient.js';
import { msgId, sleep, startServer } from '../helpers/server.js';

describe('send, ack, deliver, receipt', () => {
  it('acks a stored message with its sequence and time, and delivers it to the recipient', async () => {
    const server = await startServer();
    const a = await RawClient.login(server.url, 'agent_001');
    const b = await RawClient.login(server.url, 'agent_002');
    a.send({ type: 'send', id: msgId(1), to: 'agent_002', text: '你好，我需要你的帮助', meta: { task: 7 }, sentAt: '2026-01-01T00:00:00.000Z' });
    const ack = await a.next('ack');
    expect(ack).toMatchObject({ id: msgId(1), seq: 1 });
    const d = await b.next('deliver');
    expect(d).toEqual({
      type: 'deliver',
      seq: 1,
      message: {
        id: msgId(1),
        from: 'agent_001',
        to: 'agent_002',
        conversationId: 'agent_001+agent_002',
        text: '你好，我需要你的帮助',
        meta: { task: 7 },
        sentAt: '2026-01-01T00:00:00.000Z',
        serverAt: ack.at,
      },
    });
    expect(a.invalid).toEqual([]);
    expect(b.invalid).toEqual([]);
    a.close();
    b.close();
  });

  it('tells the sender with a receipt once the recipient acknowledges delivery', async () => {
    const server = await startServer();
    const a = await RawClient.login(server.url, 'agent_001');
    const b = await RawClient.login(server.url, 'agent_002');
    a.send({ type: 'send', id: msgId(1), to: 'agent_002', text: 'one', conversationId: 'task-42' });
    a.send({ type: 'send', id: msgId(2), to: 'agent_002', text: 'two' });
    await a.collect('ack', 2);
    const [, d2] = await b.collect('deliver', 2);
    expect(await a.drain('receipt', 100)).toEqual([]);
    b.send({ type: 'deliver_ack', upTo: d2!.seq });
    const r = await a.next('receipt');
    expect(r).toMatchObject({ by: 'agent_002', seq: 1 });
    expect(r.messages).toEqual([
      { id: msgId(1), conversationId: 'task-42' },
      { id: msgId(2), conversationId: 'agent_001+agent_002' },
    ]);
    a.close();
    b.close();
  });

  it('gives a resent id the same ack and delivers it once', async () => {
    const server = await startServer();
    const a = await RawClient.login(server.url, 'agent_001');
    // Resent at once (racing the first copy) and again after it was stored.
    a.send({ type: 'send', id: msgId(1), to: 'agent_002', text: 'once' });
    a.send({ type: 'send', id: msgId(1), to: 'agent_002', text: 'once' });
    const [first, racing] = await a.collect('ack', 2);
    a.send({ type: 'send', id: msgId(1), to: 'agent_002', text: 'once' });
    const later = await a.next('ack');
    expect(racing).toEqual(first);
    expect(later).toEqual(first);
    const b = await RawClient.login(server.url, 'agent_002');
    expect(b.welcome.inbox.latestSeq).toBe(1);
    const delivered = await b.drain('deliver', 200);
    expect(delivered.map((d) => d.message.id)).toEqual([msgId(1)]);
    a.close();
    b.close();
  });

  it('nacks an id reused for different content as id_conflict', async () => {
    const server = await startServer();
    const a = await RawClient.login(server.url, 'agent_001');
    a.send({ type: 'send', id: msgId(1), to: 'agent_002', text: 'original' });
    await a.next('ack');
    a.send({ type: 'send', id: msgId(1), to: 'agent_002', text: 'different' });
    expect(await a.next('nack')).toMatchObject({ id: msgId(1), code: 'id_conflict', retryable: false });
    a.close();
  });

  it('stores messages for an offline recipient and delivers all of them in order, exactly as sent', async () => {
    const server = await startServer();
    const a = await RawClient.login(server.url, 'agent_001');
    const texts = Array.from({ length: 300 }, (_, i) => `message ${i} ${'🙂'.repeat(i % 5)}`);
    texts.forEach((text, i) => a.send({ type: 'send', id: msgId(i), to: 'agent_002', text }));
    await a.collect('ack', texts.length);
    const b = await RawClient.login(server.url, 'agent_002');
    expect(b.welcome.inbox).toMatchObject({ latestSeq: 300, ackedUpTo: 0 });
    const delivered = await b.collect('deliver', texts.length);
    expect(delivered.map((d) => d.seq)).toEqual(texts.map((_, i) => i + 1));
    expect(delivered.map((d) => d.message.text)).toEqual(texts);
    a.close();
    b.close();
  });

  it('redelivers what was not acknowledged after a reconnect, and resumes after the cursor', async () => {
    const server = await startServer();
    const a = await RawClient.login(server.url, 'agent_001');
    for (let i = 1; i <= 10; i++) a.send({ type: 'send', id: msgId(i), to: 'agent_002', text: `m${i}` });
    await a.collect('ack', 10);

    const b1 = await RawClient.login(server.url, 'agent_002');
    await b1.collect('deliver', 10);
    b1.send({ type: 'deliver_ack', upTo: 4 });
    await a.next('receipt');
    b1.close();
    await b1.closed;

    // Plain reconnect: everything after the server's acked position comes again.
    const b2 = await RawClient.login(server.url, 'agent_002');
    expect(b2.welcome.inbox).toMatchObject({ latestSeq: 10, ackedUpTo: 4 });
    expect((await b2.collect('deliver', 6)).map((d) => d.seq)).toEqual([5, 6, 7, 8, 9, 10]);
    b2.close();
    await b2.closed;

    // Reconnect with a resume cursor: it counts as an ack, so only what follows it comes.
    const b3 = await RawClient.login(server.url, 'agent_002', { resume: { epoch: b2.welcome.inbox.epoch, ackedUpTo: 8 } });
    expect(b3.welcome.inbox.ackedUpTo).toBe(8);
    expect((await b3.collect('deliver', 2)).map((d) => d.seq)).toEqual([9, 10]);
    expect(await b3.drain('deliver', 150)).toEqual([]);
    // The resume generated the receipts for 5..8.
    const receipt = await a.next('receipt');
    expect(receipt.messages.map((m) => m.id)).toEqual([msgId(5), msgId(6), msgId(7), msgId(8)]);
    a.close();
    b3.close();
  });

  it('ignores a resume cursor from another epoch', async () => {
    const server = await startServer();
    const a = await RawClient.login(server.url, 'agent_001');
    a.send({ type: 'send', id: msgId(1), to: 'agent_002', text: 'x' });
    await a.next('ack');
    const b = await RawClient.login(server.url, 'agent_002', { resume: { epoch: 'another-epoch', ackedUpTo: 99 } });
    expect(b.welcome.inbox.ackedUpTo).toBe(0);
    expect((await b.next('deliver')).seq).toBe(1);
    a.close();
    b.close();
  });

  it('delivers receipts to an offline sender when it comes back', async () => {
    const server = await startServer();
    const a = await RawClient.login(server.url, 'agent_001');
    a.send({ type: 'send', id: msgId(1), to: 'agent_002', text: 'x' });
    await a.next('ack');
    a.close();
    await a.closed;
    const b = await RawClient.login(server.url, 'agent_002');
    b.send({ type: 'deliver_ack', upTo: (await b.next('deliver')).seq });
    await sleep(100);
    const a2 = await RawClient.login(server.url, 'agent_001');
    expect((await a2.next('receipt')).messages).toEqual([{ id: msgId(1), conversationId: 'agent_001+agent_002' }]);
    a2.close();
    b.close();
  });

  it('nacks a message over maxMessageBytes as too_large, not retryable', async () => {
    const server = await startServer({ maxMessageBytes: 1000, maxFrameBytes: 8000 });
    const a = await RawClient.login(server.url, 'agent_001');
    a.send({ type: 'send', id: msgId(1), to: 'agent_002', text: 'é'.repeat(501) });
    expect(await a.next('nack')).toMatchObject({ code: 'too_large', retryable: false });
    a.send({ type: 'send', id: msgId(2), to: 'agent_002', text: 'é'.repeat(500) });
    expect(await a.next('ack')).toMatchObject({ id: msgId(2) });
    a.close();
  });

  it('nacks a direct conversation id of other agents as invalid_message', async () => {
    const server = await startServer();
    const a = await RawClient.login(server.url, 'agent_001');
    a.send({ type: 'send', id: msgId(1), to: 'agent_002', text: 'x', conversationId: 'agent_002+agent_003' });
    expect(await a.next('nack')).toMatchObject({ code: 'invalid_message', retryable: false });
    a.close();
  });

  it('nacks as rate_limited with retryAfterMs past the per-connection limit', async () => {
    const server = await startServer({ rateLimit: { perSecond: 5, burst: 5 } });
    const a = await RawClient.login(server.url, 'agent_001');
    for (let i = 0; i < 8; i++) a.send({ type: 'send', id: msgId(i), to: 'agent_002', text: 'x' });
    const acks = await a.collect('ack', 5);
    const nacks = await a.collect('nack', 3);
    expect(acks).toHaveLength(5);
    for (const n of nacks) {
      expect(n).toMatchObject({ code: 'rate_limited', retryable: true });
      expect(n.retryAfterMs).toBeGreaterThan(0);
    }
    a.close();
  });

  it('refuses a message whose `after` is not stored as out_of_order, retryable', async () => {
    const server = await startServer({ rateLimit: { perSecond: 20, burst: 1 } });
    const a = await RawClient.login(server.url, 'agent_001');
    a.send({ type: 'send', id: msgId(0), to: 'agent_002', text: 'zero' });
    a.send({ type: 'send', id: msgId(1), to: 'agent_002', text: 'one' }); // rate limited
    expect(await a.next('ack')).toMatchObject({ id: msgId(0) });
    expect(await a.next('nack')).toMatchObject({ id: msgId(1), code: 'rate_limited' });
    await sleep(60);
    // Its successor, sent after a token came back, must not overtake it.
    a.send({ type: 'send', id: msgId(2), to: 'agent_002', text: 'two', after: msgId(1) });
    expect(await a.next('nack')).toMatchObject({ id: msgId(2), code: 'out_of_order', retryable: true });
    await sleep(60);
    a.send({ type: 'send', id: msgId(1), to: 'agent_002', text: 'one', after: msgId(0) });
    expect(await a.next('ack')).toMatchObject({ id: msgId(1) });
    await sleep(60);
    a.send({ type: 'send', id: msgId(2), to: 'agent_002', text: 'two', after: msgId(1) });
    expect(await a.next('ack')).toMatchObject({ id: msgId(2) });
    const b = await RawClient.login(server.url, 'agent_002');
    expect((await b.collect('deliver', 3)).map((d) => d.message.text)).toEqual(['zero', 'one', 'two']);
    a.close();
    b.close();
  });

  it('keeps a conversation in order under refusals when each send names the message it follows', async () => {
    // Tokens come back while a burst is being processed, so without `after` later messages overtake.
    const server = await startServer({ rateLimit: { perSecond: 5000, burst: 3 } });
    const a = await RawClient.login(server.url, 'agent_001');
    const acked = new Set<string>();
    a.onFrame((f) => {
      if (f.type === 'ack') acked.add(f.id);
    });
    const ids = Array.from({ length: 200 }, (_, i) => msgId(i));
    // Like the client's outbox: resend what is not acked, in order, each naming its unacked predecessor.
    while (acked.size < ids.length) {
      let previous: string | undefined;
      for (const id of ids) {
        if (acked.has(id)) continue;
        a.send({ type: 'send', id, to: 'agent_002', text: id, ...(previous ? { after: previous } : {}) });
        previous = id;
      }
      await sleep(30);
    }
    const b = await RawClient.login(server.url, 'agent_002');
    const delivered = await b.collect('deliver', ids.length);
    expect(delivered.map((d) => d.message.id)).toEqual(ids);
    a.close();
    b.close();
  });

  it('nacks as inbox_full, retryable, once the recipient holds maxInboxEntries undelivered', async () => {
    const server = await startServer({ maxInboxEntries: 3 });
    // Four senders at once: the limit holds even for sends racing each other.
    const senders = await Promise.all(['agent_a', 'agent_b', 'agent_c', 'agent_d'].map((id) => RawClient.login(server.url, id)));
    senders.forEach((c, i) => c.send({ type: 'send', id: msgId(i), to: 'agent_002', text: 'x' }));
    const answers = await Promise.all(senders.map((c) => c.nextOf(['ack', 'nack'])));
    expect(answers.filter((f) => f.type === 'ack')).toHaveLength(3);
    expect(answers.find((f) => f.type === 'nack')).toMatchObject({ code: 'inbox_full', retryable: true });
    for (const c of senders) c.close();
  });
});

import { describe, expect, it } from 'vitest';
import { CloseCode } from '../../src/protocol/codes.js';
import { MAX_BATCH_FRAMES } from '../../src/protocol/frames.js';
import { RawClient } from '../helpers/RawClient.js';
import { msgId, sleep, startServer } from '../helpers/server.js';

describe('sessions', () => {
  it('lets a new login take over: the old socket is closed with 4003 session_replaced', async () => {
    const server = await startServer();
    const old = await RawClient.login(server.url, 'agent_001');
    const fresh = await RawClient.login(server.url, 'agent_001');
    expect(await old.next('error')).toMatchObject({ code: 'session_replaced', fatal: true });
    expect((await old.closed).code).toBe(CloseCode.SESSION_REPLACED);
    expect(server.onlineAgents).toEqual(['agent_001']);
    // Deliveries now go to the new session.
    const a = await RawClient.login(server.url, 'agent_002');
    a.send({ type: 'send', id: msgId(1), to: 'agent_001', text: 'to the new one' });
    expect((await fresh.next('deliver')).message.text).toBe('to the new one');
    a.close();
    fresh.close();
  });

  it('closes a session that stays silent for 3 heartbeat intervals with 4005', async () => {
    const server = await startServer({ heartbeatMs: 100 });
    const quiet = await RawClient.login(server.url, 'agent_001');
    const chatty = await RawClient.login(server.url, 'agent_002');
    const pinger = setInterval(() => chatty.send({ type: 'ping' }), 50);
    expect((await quiet.closed).code).toBe(CloseCode.IDLE_TIMEOUT);
    expect(quiet.frames.find((f) => f.type === 'error')).toMatchObject({ code: 'idle_timeout', fatal: true });
    expect(chatty.ws.readyState).toBe(chatty.ws.OPEN);
    clearInterval(pinger);
    chatty.close();
  });

  it('leaves at most maxInflightDeliveries unacknowledged, and sends more as acks arrive', async () => {
    const server = await startServer({ maxInflightDeliveries: 10 });
    const a = await RawClient.login(server.url, 'agent_001');
    for (let i = 1; i <= 35; i++) a.send({ type: 'send', id: msgId(i), to: 'agent_002', text: `m${i}` });
    await a.collect('ack', 35);
    const b = await RawClient.login(server.url, 'agent_002');
    const first = await b.drain('deliver', 200);
    expect(first.map((d) => d.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    b.send({ type: 'deliver_ack', upTo: 4 });
    const next = await b.collect('deliver', 4);
    expect(next.map((d) => d.seq)).toEqual([11, 12, 13, 14]);
    expect(await b.drain('deliver', 150)).toEqual([]);
    a.close();
    b.close();
  });

  it('refuses an ack beyond what was delivered with invalid_ack, and keeps the session', async () => {
    const server = await startServer();
    const a = await RawClient.login(server.url, 'agent_001');
    a.send({ type: 'send', id: msgId(1), to: 'agent_002', text: 'x' });
    await a.next('ack');
    const b = await RawClient.login(server.url, 'agent_002');
    await b.next('deliver');
    b.send({ type: 'deliver_ack', upTo: 50 });
    expect(await b.next('error')).toMatchObject({ code: 'invalid_ack', fatal: false });
    // Clamped to what was delivered: the receipt covers message 1 only.
    expect((await a.next('receipt')).messages.map((m) => m.id)).toEqual([msgId(1)]);
    a.close();
    b.close();
  });
});

describe('bad input', () => {
  it('answers malformed, unknown and binary frames with typed errors and keeps serving', async () => {
    const server = await startServer();
    const c = await RawClient.login(server.url, 'agent_001');
    c.sendRaw('{"type": "send", "id": ');
    expect(await c.next('error')).toMatchObject({ code: 'bad_frame', fatal: false });
    c.sendRaw('"just a string"');
    expect(await c.next('error')).toMatchObject({ code: 'bad_frame', fatal: false });
    c.send({ type: 'teleport', to: 'mars' });
    expect(await c.next('error')).toMatchObject({ code: 'unknown_type', fatal: false, ref: 'teleport' });
    c.send({ type: 'send', id: msgId(1), to: 'agent_002' });
    const invalid = await c.next('error');
    expect(invalid).toMatchObject({ code: 'invalid_frame', ref: 'send' });
    expect(invalid.message).toContain('text');
    c.sendRaw(Buffer.from([1, 2, 3]));
    expect(await c.next('error')).toMatchObject({ code: 'bad_frame' });
    c.send({ type: 'hello', protocol: 1, agentId: 'agent_001' });
    expect(await c.next('error')).toMatchObject({ code: 'already_authenticated' });
    // Still a working session.
    c.send({ type: 'send', id: msgId(2), to: 'agent_002', text: 'fine' });
    expect(await c.next('ack')).toMatchObject({ id: msgId(2) });
    c.close();
  });

  it('handles a batch of frames in order, judging each frame on its own', async () => {
    const server = await startServer();
    const c = await RawClient.login(server.url, 'agent_001');
    const batch = [
      { type: 'send', id: msgId(1), to: 'agent_002', text: 'first' },
      { type: 'teleport' },
      42,
      { type: 'send', id: msgId(2), to: 'agent_002', text: 'second', after: msgId(1) },
      { type: 'ping', t: 7 },
    ];
    c.sendRaw(JSON.stringify(batch));
    expect(await c.next('ack')).toMatchObject({ id: msgId(1), seq: 1 });
    expect(await c.next('ack')).toMatchObject({ id: msgId(2), seq: 2 });
    expect(await c.next('error')).toMatchObject({ code: 'unknown_type', ref: 'teleport', fatal: false });
    expect(await c.next('error')).toMatchObject({ code: 'bad_frame', fatal: false });
    expect(await c.next('pong')).toMatchObject({ t: 7 });
    const b = await RawClient.login(server.url, 'agent_002');
    expect((await b.collect('deliver', 2)).map((d) => d.message.text)).toEqual(['first', 'second']);
    c.close();
    b.close();
  });

  it('refuses an empty batch and one of more than MAX_BATCH_FRAMES frames, as one bad frame each', async () => {
    const server = await startServer();
    const c = await RawClient.login(server.url, 'agent_001');
    c.sendRaw('[]');
    expect(await c.next('error')).toMatchObject({ code: 'bad_frame', message: expect.stringContaining('at least one') });
    c.sendRaw(JSON.stringify(Array.from({ length: MAX_BATCH_FRAMES + 1 }, (_, i) => ({ type: 'ping', t: i }))));
    expect(await c.next('error')).toMatchObject({ code: 'bad_frame', message: expect.stringContaining(`at most ${MAX_BATCH_FRAMES}`) });
    await sleep(50);
    expect(c.frames.filter((f) => f.type === 'pong')).toHaveLength(0);
    c.close();
  });

  it('batches what it sends in one go: acks of a burst share WebSocket messages', async () => {
    const server = await startServer();
    const c = await RawClient.login(server.url, 'agent_001');
    let messages = 0;
    c.ws.on('message', () => messages++);
    c.sendRaw(JSON.stringify(Array.from({ length: 200 }, (_, i) => ({ type: 'send', id: msgId(i), to: 'agent_002', text: `m${i}` }))));
    const acks = await c.collect('ack', 200);
    expect(acks.map((a) => a.id)).toEqual(Array.from({ length: 200 }, (_, i) => msgId(i)));
    expect(messages).toBeLessThan(50);
    c.close();
  });

  it('closes with 1008 after repeated abuse', async () => {
    const server = await startServer({ maxBadFrames: 5 });
    const c = await RawClient.login(server.url, 'agent_001');
    for (let i = 0; i < 10; i++) c.sendRaw('garbage');
    expect((await c.closed).code).toBe(CloseCode.POLICY_VIOLATION);
    const errors = c.frames.filter((f) => f.type === 'error');
    expect(errors.at(-1)).toMatchObject({ fatal: true });
  });

  it('closes with 1009 on a frame over maxFrameBytes, and the server keeps serving others', async () => {
    const server = await startServer({ maxFrameBytes: 10_000, maxMessageBytes: 5000 });
    const c = await RawClient.login(server.url, 'agent_001');
    c.send({ type: 'send', id: msgId(1), to: 'agent_002', text: 'x'.repeat(20_000) });
    expect((await c.closed).code).toBe(CloseCode.FRAME_TOO_LARGE);
    const other = await RawClient.login(server.url, 'agent_003');
    other.send({ type: 'send', id: msgId(2), to: 'agent_002', text: 'ok' });
    expect(await other.next('ack')).toMatchObject({ id: msgId(2) });
    other.close();
  });

  it('survives a client that disconnects mid-handshake or mid-send', async () => {
    const server = await startServer();
    for (let i = 0; i < 5; i++) {
      const c = await RawClient.open(server.url);
      c.send({ type: 'hello', protocol: 1, agentId: 'agent_001' });
      c.send({ type: 'send', id: msgId(i), to: 'agent_002', text: 'x' });
      c.ws.terminate();
    }
    await sleep(100);
    const ok = await RawClient.login(server.url, 'agent_002');
    expect(ok.welcome.inbox.latestSeq).toBeLessThanOrEqual(5);
    ok.close();
  });
});

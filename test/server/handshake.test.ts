import { describe, expect, it } from 'vitest';
import { CloseCode } from '../../src/protocol/codes.js';
import { RawClient } from '../helpers/RawClient.js';
import { startServer } from '../helpers/server.js';

describe('handshake', () => {
  it('answers hello with welcome: session, heartbeat, limits and inbox position', async () => {
    const server = await startServer({ heartbeatMs: 7000, maxMessageBytes: 1000, maxFrameBytes: 8000, maxInflightDeliveries: 33 });
    const c = await RawClient.login(server.url, 'agent_001');
    expect(c.welcome).toMatchObject({
      type: 'welcome',
      protocol: 1,
      agentId: 'agent_001',
      heartbeatMs: 7000,
      limits: { maxFrameBytes: 8000, maxMessageBytes: 1000, maxInflightDeliveries: 33 },
      inbox: { latestSeq: 0, ackedUpTo: 0 },
    });
    expect(c.welcome.sessionId).toMatch(/\S+/);
    expect(c.welcome.inbox.epoch).toMatch(/^[0-9a-f]{16}$/);
    expect(Date.parse(c.welcome.serverTime)).toBeGreaterThan(Date.now() - 60_000);
    c.close();
  });

  it('keeps the inbox epoch across logins and server restarts', async () => {
    const server = await startServer();
    const first = await RawClient.login(server.url, 'agent_001');
    first.close();
    await first.closed;
    const second = await RawClient.login(server.url, 'agent_001');
    expect(second.welcome.inbox.epoch).toBe(first.welcome.inbox.epoch);
    second.close();
    await server.close();
    const again = await startServer({ dataDir: server.options.dataDir });
    const third = await RawClient.login(again.url, 'agent_001');
    expect(third.welcome.inbox.epoch).toBe(first.welcome.inbox.epoch);
    third.close();
  });

  it('refuses another protocol version with unsupported_protocol and close 4002', async () => {
    const server = await startServer();
    const c = await RawClient.open(server.url);
    c.send({ type: 'hello', protocol: 2, agentId: 'agent_001' });
    expect(await c.next('error')).toMatchObject({ code: 'unsupported_protocol', fatal: true });
    expect((await c.closed).code).toBe(CloseCode.UNSUPPORTED_PROTOCOL);
  });

  it('closes with 4000 when the first frame is not hello', async () => {
    const server = await startServer();
    const c = await RawClient.open(server.url);
    c.send({ type: 'ping' });
    expect(await c.next('error')).toMatchObject({ code: 'not_authenticated', fatal: true });
    expect((await c.closed).code).toBe(CloseCode.BAD_HANDSHAKE);
  });

  it('closes with 4000 when hello is invalid', async () => {
    const server = await startServer();
    const c = await RawClient.open(server.url);
    c.send({ type: 'hello', protocol: 1, agentId: '../etc/passwd' });
    const err = await c.next('error');
    expect(err.code).toBe('invalid_frame');
    expect(err.message).toContain('agentId');
    expect((await c.closed).code).toBe(CloseCode.BAD_HANDSHAKE);
  });

  it('closes with 4000 when the first frame is binary', async () => {
    const server = await startServer();
    const c = await RawClient.open(server.url);
    c.sendRaw(Buffer.from([0x68, 0x69]));
    expect(await c.next('error')).toMatchObject({ code: 'bad_frame', fatal: true });
    expect((await c.closed).code).toBe(CloseCode.BAD_HANDSHAKE);
  });

  it('closes with 4004 when no hello arrives in time', async () => {
    const server = await startServer({ handshakeTimeoutMs: 200 });
    const c = await RawClient.open(server.url);
    expect((await c.next('error')).code).toBe('handshake_timeout');
    expect((await c.closed).code).toBe(CloseCode.HANDSHAKE_TIMEOUT);
  });

  it('answers ping with pong echoing t', async () => {
    const server = await startServer();
    const c = await RawClient.login(server.url, 'agent_001');
    c.send({ type: 'ping', t: 42 });
    expect(await c.next('pong')).toEqual({ type: 'pong', t: 42 });
    c.close();
  });

  it('serves GET /healthz and 404 elsewhere', async () => {
    const server = await startServer();
    const ok = await fetch(`${server.url}/healthz`);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ status: 'ok' });
    expect((await fetch(`${server.url}/nope`)).status).toBe(404);
  });
});

import { describe, expect, it, onTestFinished } from 'vitest';
import type { ConnectionStateChange } from '../../src/core/connection/ConnectionManager.js';
import { IMServer } from '../../src/server/IMServer.js';
import { FaultProxy } from '../../src/testing/FaultProxy.js';
import { collect, eventually, makeClient } from '../helpers/clients.js';
import { sleep, startServer } from '../helpers/server.js';

async function proxyTo(url: string): Promise<FaultProxy> {
  const proxy = await FaultProxy.start({ target: url });
  onTestFinished(() => proxy.close());
  return proxy;
}

describe('IMClient connection', () => {
  it('detects a server gone silent by its heartbeat, and reconnects once the link passes again', async () => {
    const server = await startServer();
    const proxy = await proxyTo(server.url);
    const a = await makeClient(proxy.url, 'agent_001', {
      heartbeat: { intervalMs: 100, timeoutMs: 200 },
      connectTimeoutMs: 300,
      reconnect: { baseMs: 50, maxMs: 200 },
    });
    const changes: ConnectionStateChange[] = [];
    a.onConnectionStateChange((c) => changes.push(c));
    await a.connect();
    const b = await makeClient(server.url, 'agent_002');
    const got = collect(b);
    await b.connect();

    proxy.setMode('stall');
    const lost = await eventually(() => changes.find((c) => c.oldState === 'online'), 5000, 'leaving online');
    expect(lost.newState).toBe('backoff');
    expect(lost.problem?.code).toBe('heartbeat_timeout');
    // Sent while the link is dead: queued durably, delivered after the reconnect.
    await a.sendMessage({ to: 'agent_002', text: 'sent during the outage' });
    proxy.setMode('pass');
    await eventually(() => a.connectionState === 'online', 5000, 'back online');
    await eventually(() => got.length === 1, 5000, 'delivery after reconnect');
    expect(got[0]!.text).toBe('sent during the outage');
  });

  it('reconnects after the server restarts, and delivers what was sent meanwhile', async () => {
    const server = await startServer();
    const { dataDir } = server.options;
    const port = server.port;
    const a = await makeClient(server.url, 'agent_001');
    const b = await makeClient(server.url, 'agent_002');
    const got = collect(b);
    await Promise.all([a.connect(), b.connect()]);
    await server.close();
    await eventually(() => a.connectionState !== 'online' && b.connectionState !== 'online');
    await a.sendMessage({ to: 'agent_002', text: 'while the server was down' });
    const again = await IMServer.start({ port, dataDir });
    onTestFinished(() => again.close());
    await eventually(() => got.length === 1, 10_000, 'delivery after restart');
    expect(got[0]!.text).toBe('while the server was down');
  });

  it('skips a long backoff with reconnectNow', async () => {
    const server = await startServer();
    const proxy = await proxyTo(server.url);
    const a = await makeClient(proxy.url, 'agent_001', { reconnect: { baseMs: 60_000, maxMs: 60_000 } });
    await a.connect();
    proxy.setMode('refuse');
    proxy.dropAll();
    await eventually(() => a.connectionState === 'backoff');
    // The first retry has a random delay up to 60 s; it may fire early and fail against 'refuse'.
    proxy.setMode('pass');
    a.reconnectNow();
    await eventually(() => a.connectionState === 'online', 3000, 'online right after reconnectNow');
  });

  it('spreads reconnect delays with jitter and keeps retrying a refusing endpoint', async () => {
    const server = await startServer();
    const proxy = await proxyTo(server.url);
    proxy.setMode('refuse');
    const a = await makeClient(proxy.url, 'agent_001', { reconnect: { baseMs: 20, factor: 2, maxMs: 80 } });
    const delays: number[] = [];
    a.onConnectionStateChange((c) => {
      if (c.newState === 'backoff' && c.retryAt !== null) delays.push(c.retryAt - Date.now());
    });
    const connecting = a.connect();
    await eventually(() => delays.length >= 8, 5000, 'eight retries');
    // Capped at maxMs, and not all equal (full jitter).
    expect(Math.max(...delays)).toBeLessThanOrEqual(80);
    expect(new Set(delays.map((d) => Math.round(d / 5))).size).toBeGreaterThan(1);
    proxy.setMode('pass');
    await connecting;
    expect(a.connectionState).toBe('online');
  });

  it('goes to failed, without reconnecting, when another session takes over its agent id', async () => {
    const server = await startServer();
    const proxy = await proxyTo(server.url);
    const first = await makeClient(proxy.url, 'agent_001');
    await first.connect();
    const changes: ConnectionStateChange[] = [];
    first.onConnectionStateChange((c) => changes.push(c));
    const second = await makeClient(server.url, 'agent_001');
    await second.connect();
    await eventually(() => first.connectionState === 'failed');
    expect(changes.at(-1)?.problem).toMatchObject({ closeCode: 4003 });
    const connectionsBefore = proxy.connections;
    await sleep(300);
    expect(proxy.connections).toBe(connectionsBefore);
    expect(second.connectionState).toBe('online');
  });
});

import { afterEach, describe, expect, it, vi } from 'vitest';
import { createActor, fromCallback, SimulatedClock } from 'xstate';
import { backoffDelay, DEFAULT_BACKOFF } from '../../machines/backoff.js';
import { connectionMachine, type ConnectionEvent } from '../../machines/connection.js';
import { coverStates } from './stateCoverage.js';

const track = coverStates(connectionMachine);

/** The machine with a socket actor the test drives, on a simulated clock. */
function start() {
  const clock = new SimulatedClock();
  const log: string[] = [];
  let socket: ((e: ConnectionEvent) => void) | undefined;
  const actor = createActor(
    connectionMachine.provide({
      actors: {
        socket: fromCallback<ConnectionEvent>(({ sendBack }) => {
          socket = sendBack;
          log.push('open socket');
          return () => log.push('close socket');
        }),
      },
      actions: { sendHello: () => void log.push('hello'), sendPing: () => void log.push('ping') },
    }),
    { clock, input: { heartbeatMs: 1000, pongTimeoutMs: 500, connectTimeoutMs: 2000, handshakeTimeoutMs: 2000, stableAfterMs: 5000, backoff: { baseMs: 100, factor: 2, maxMs: 1000 } } },
  );
  track(actor);
  actor.start();
  const fromServer = (e: ConnectionEvent) => socket!(e);
  const online = () => {
    fromServer({ type: 'SOCKET_OPEN' });
    fromServer({ type: 'WELCOME', sessionId: 's1', heartbeatMs: 1000 });
  };
  return { actor, clock, log, fromServer, online };
}

describe('backoffDelay', () => {
  it('grows exponentially to the cap, scaled by the random draw (full jitter)', () => {
    expect(backoffDelay(0, DEFAULT_BACKOFF, 0.5)).toBe(250);
    expect(backoffDelay(3, DEFAULT_BACKOFF, 0.5)).toBe(2000);
    expect(backoffDelay(20, DEFAULT_BACKOFF, 0.999)).toBe(29970);
    // Never 0: a retry always comes after the client was seen in backoff.
    expect(backoffDelay(5, DEFAULT_BACKOFF, 0)).toBe(1);
  });
});

describe('connection machine', () => {
  afterEach(() => vi.restoreAllMocks());

  it('connects, handshakes and heartbeats while online', () => {
    const { actor, clock, log, online, fromServer } = start();
    expect(actor.getSnapshot().value).toBe('disconnected');
    actor.send({ type: 'CONNECT' });
    expect(actor.getSnapshot().value).toEqual({ session: 'connecting' });
    online();
    expect(actor.getSnapshot().value).toEqual({ session: { online: 'waiting' } });
    expect(actor.getSnapshot().context.sessionId).toBe('s1');
    clock.increment(1000);
    expect(actor.getSnapshot().value).toEqual({ session: { online: 'pinging' } });
    fromServer({ type: 'PONG' });
    expect(actor.getSnapshot().value).toEqual({ session: { online: 'waiting' } });
    expect(log).toEqual(['open socket', 'hello', 'ping']);
  });

  it('declares the link dead when a pong does not come, closes the socket and backs off', () => {
    // The shortest draw: the retry must still wait, or the simulated clock would fire it in the same step.
    vi.spyOn(Math, 'random').mockReturnValue(0);
    const { actor, clock, log, online } = start();
    actor.send({ type: 'CONNECT' });
    online();
    clock.increment(1000);
    clock.increment(500);
    expect(actor.getSnapshot().value).toBe('backoff');
    expect(actor.getSnapshot().context.lastProblem?.code).toBe('heartbeat_timeout');
    expect(log.at(-1)).toBe('close socket');
  });

  it('retries after the jittered delay, and reconnectNow skips it', () => {
    const { actor, clock, fromServer } = start();
    actor.send({ type: 'CONNECT' });
    fromServer({ type: 'SOCKET_CLOSED', code: 1006, reason: '' });
    const { retryDelayMs, retryAt, attempt } = actor.getSnapshot().context;
    expect(attempt).toBe(1);
    expect(retryDelayMs).toBeLessThanOrEqual(100);
    expect(retryAt).not.toBeNull();
    clock.increment(retryDelayMs);
    expect(actor.getSnapshot().value).toEqual({ session: 'connecting' });
    fromServer({ type: 'SOCKET_CLOSED', code: 1006, reason: '' });
    expect(actor.getSnapshot().context.attempt).toBe(2);
    actor.send({ type: 'RECONNECT_NOW' });
    expect(actor.getSnapshot().value).toEqual({ session: 'connecting' });
    expect(actor.getSnapshot().context.retryAt).toBeNull();
  });

  it('resets the attempt count after a stable online period', () => {
    const { actor, clock, fromServer, online } = start();
    actor.send({ type: 'CONNECT' });
    fromServer({ type: 'SOCKET_CLOSED', code: 1006, reason: '' });
    actor.send({ type: 'RECONNECT_NOW' });
    online();
    expect(actor.getSnapshot().context.attempt).toBe(1);
    for (let t = 0; t < 5; t++) {
      clock.increment(1000);
      fromServer({ type: 'PONG' });
    }
    expect(actor.getSnapshot().context.attempt).toBe(0);
  });

  it('times out a socket that never opens and a handshake that never completes', () => {
    const { actor, clock, fromServer } = start();
    actor.send({ type: 'CONNECT' });
    clock.increment(2000);
    expect(actor.getSnapshot().context.lastProblem?.code).toBe('connect_timeout');
    actor.send({ type: 'RECONNECT_NOW' });
    fromServer({ type: 'SOCKET_OPEN' });
    clock.increment(2000);
    expect(actor.getSnapshot().value).toBe('backoff');
    expect(actor.getSnapshot().context.lastProblem?.code).toBe('handshake_timeout');
  });

  it('fails without retrying on a refused login, and connects again only when told to', () => {
    const { actor, clock, fromServer } = start();
    actor.send({ type: 'CONNECT' });
    fromServer({ type: 'SOCKET_OPEN' });
    fromServer({ type: 'SERVER_ERROR', code: 'unauthorized', message: 'wrong token' });
    fromServer({ type: 'SOCKET_CLOSED', code: 4001, reason: 'unauthorized' });
    expect(actor.getSnapshot().value).toBe('failed');
    expect(actor.getSnapshot().context.lastProblem).toEqual({ code: 'unauthorized', message: 'wrong token', closeCode: 4001 });
    clock.increment(60_000);
    expect(actor.getSnapshot().value).toBe('failed');
    actor.send({ type: 'CONNECT' });
    expect(actor.getSnapshot().value).toEqual({ session: 'connecting' });
  });

  it('closes for good from any state', () => {
    for (const setup of [(a: ReturnType<typeof start>) => a, (a: ReturnType<typeof start>) => (a.actor.send({ type: 'CONNECT' }), a.online(), a)]) {
      const s = setup(start());
      s.actor.send({ type: 'CLOSE' });
      expect(s.actor.getSnapshot().value).toBe('closed');
      expect(s.actor.getSnapshot().status).toBe('done');
    }
  });
});

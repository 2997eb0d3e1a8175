import { assign, fromCallback, setup } from 'xstate';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from './backoff.js';

/** Close codes after which reconnecting cannot help (see docs/protocol.md, "Close codes"). */
const TERMINAL_CLOSE_CODES: ReadonlySet<number> = new Set([4001, 4002, 4003]);

/** Why the connection last left `online` or failed to get there. */
export interface ConnectionProblem {
  /** A wire error code, `heartbeat_timeout`, `connect_timeout`, `handshake_timeout` or `socket_closed`. */
  code: string;
  message: string;
  /** The WebSocket close code, when the socket closed. */
  closeCode?: number;
}

export interface ConnectionContext {
  /** Failed attempts since the connection was last stably online. */
  attempt: number;
  backoff: BackoffPolicy;
  connectTimeoutMs: number;
  handshakeTimeoutMs: number;
  /** Ping interval: the server's (from `welcome`), capped by `heartbeatCapMs`. */
  heartbeatMs: number;
  /** The client's own upper bound on the ping interval, if any. */
  heartbeatCapMs: number | null;
  /** A ping without pong for this long means the link is dead. */
  pongTimeoutMs: number;
  /** Online this long resets `attempt`. */
  stableAfterMs: number;
  /** Delay of the pending retry (in `backoff`). */
  retryDelayMs: number;
  /** When the pending retry fires, epoch ms (in `backoff`); kept so a restored actor can re-arm it. */
  retryAt: number | null;
  sessionId: string | null;
  lastProblem: ConnectionProblem | null;
}

export interface ConnectionInput {
  backoff?: Partial<BackoffPolicy> | undefined;
  connectTimeoutMs?: number | undefined;
  handshakeTimeoutMs?: number | undefined;
  /** Ping at least this often, even if the server allows longer. */
  heartbeatMs?: number | undefined;
  pongTimeoutMs?: number | undefined;
  stableAfterMs?: number | undefined;
}

export type ConnectionEvent =
  /** Start connecting (from `disconnected`, or retry by hand from `failed`). */
  | { type: 'CONNECT' }
  /** Stop for good. */
  | { type: 'CLOSE' }
  /** Skip the running backoff delay. */
  | { type: 'RECONNECT_NOW' }
  /** The socket actor opened the WebSocket. */
  | { type: 'SOCKET_OPEN' }
  /** The socket closed (or could not open). */
  | { type: 'SOCKET_CLOSED'; code: number; reason: string }
  /** The server accepted `hello`. */
  | { type: 'WELCOME'; sessionId: string; heartbeatMs: number }
  /** The server answered a `ping`. */
  | { type: 'PONG' }
  /** The server sent an `error` frame (a fatal one is followed by SOCKET_CLOSED). */
  | { type: 'SERVER_ERROR'; code: string; message: string };

/**
 * The connection to the IM server: `disconnected` -> `session`
 * (`connecting` -> `handshaking` -> `online`, heartbeating) -> `backoff` on
 * any loss -> `session` again, until `closed`. A refused login (close codes
 * 4001/4002/4003) ends in `failed`, which retries only when told to.
 *
 * Side effects are named: the `socket` actor owns the WebSocket for the whole
 * `session` state (leaving it closes the socket); `sendHello` and `sendPing`
 * write frames; `scheduleRetry` draws the jittered delay. `src/core/connection`
 * provides them.
 */
export const connectionMachine = setup({
  types: {
    context: {} as ConnectionContext,
    events: {} as ConnectionEvent,
    input: {} as ConnectionInput,
  },
  actors: {
    /**
     * Opens the WebSocket and reports SOCKET_OPEN, SOCKET_CLOSED, WELCOME,
     * PONG and SERVER_ERROR; closes the socket when stopped. A placeholder
     * here: src/core/connection provides the real one.
     */
    socket: fromCallback<ConnectionEvent>(() => () => {}),
  },
  actions: {
    sendHello: () => {},
    sendPing: () => {},
    scheduleRetry: assign(({ context }) => {
      const retryDelayMs = backoffDelay(context.attempt, context.backoff, Math.random());
      return { retryDelayMs, retryAt: Date.now() + retryDelayMs, attempt: context.attempt + 1 };
    }),
    clearRetry: assign({ retryAt: null }),
    resetAttempts: assign({ attempt: 0 }),
    startSession: assign(({ context, event }) => {
      if (event.type !== 'WELCOME') return {};
      const heartbeatMs = context.heartbeatCapMs === null ? event.heartbeatMs : Math.min(event.heartbeatMs, context.heartbeatCapMs);
      return { sessionId: event.sessionId, heartbeatMs, lastProblem: null };
    }),
    endSession: assign({ sessionId: null }),
    recordClose: assign(({ context, event }) => {
      if (event.type !== 'SOCKET_CLOSED') return {};
      // A fatal error frame usually precedes the close: keep its code, add the close code.
      const prior = context.lastProblem && context.lastProblem.closeCode === undefined ? context.lastProblem : null;
      return {
        lastProblem: {
          code: prior?.code ?? 'socket_closed',
          message: prior?.message ?? (event.reason || `socket closed with code ${event.code}`),
          closeCode: event.code,
        },
      };
    }),
    recordServerError: assign(({ event }) => (event.type === 'SERVER_ERROR' ? { lastProblem: { code: event.code, message: event.message } } : {})),
    recordConnectTimeout: assign({ lastProblem: { code: 'connect_timeout', message: 'the socket did not open in time' } }),
    recordHandshakeTimeout: assign({ lastProblem: { code: 'handshake_timeout', message: 'no welcome in time' } }),
    recordHeartbeatTimeout: assign({ lastProblem: { code: 'heartbeat_timeout', message: 'no pong in time: the link is dead' } }),
  },
  guards: {
    isTerminalClose: ({ event }) => event.type === 'SOCKET_CLOSED' && TERMINAL_CLOSE_CODES.has(event.code),
  },
  delays: {
    connectTimeout: ({ context }) => context.connectTimeoutMs,
    handshakeTimeout: ({ context }) => context.handshakeTimeoutMs,
    heartbeatInterval: ({ context }) => context.heartbeatMs,
    pongTimeout: ({ context }) => context.pongTimeoutMs,
    stableAfter: ({ context }) => context.stableAfterMs,
    retryDelay: ({ context }) => context.retryDelayMs,
  },
}).createMachine({
  id: 'connection',
  description:
    'The connection to the IM server: one socket for the whole `session` (connecting, handshaking, online with a ping/pong heartbeat); any loss goes to `backoff` (exponential delay with full jitter, reset after a stable online period) and back; a refused login (4001, 4002, 4003) ends in `failed`, which retries only when told to; `closed` is final.',
  initial: 'disconnected',
  context: ({ input }) => ({
    attempt: 0,
    backoff: { ...DEFAULT_BACKOFF, ...input.backoff },
    connectTimeoutMs: input.connectTimeoutMs ?? 10_000,
    handshakeTimeoutMs: input.handshakeTimeoutMs ?? 10_000,
    heartbeatMs: input.heartbeatMs ?? 15_000,
    heartbeatCapMs: input.heartbeatMs ?? null,
    pongTimeoutMs: input.pongTimeoutMs ?? 10_000,
    stableAfterMs: input.stableAfterMs ?? 10_000,
    retryDelayMs: 0,
    retryAt: null,
    sessionId: null,
    lastProblem: null,
  }),
  states: {
    disconnected: {
      on: { CONNECT: 'session', CLOSE: 'closed' },
    },
    session: {
      invoke: { id: 'socket', src: 'socket' },
      initial: 'connecting',
      exit: 'endSession',
      on: {
        SOCKET_CLOSED: [
          { guard: 'isTerminalClose', target: 'failed', actions: 'recordClose' },
          { target: 'backoff', actions: 'recordClose' },
        ],
        SERVER_ERROR: { actions: 'recordServerError' },
        CLOSE: 'closed',
      },
      states: {
        connecting: {
          on: { SOCKET_OPEN: 'handshaking' },
          after: { connectTimeout: { target: '#connection.backoff', actions: 'recordConnectTimeout' } },
        },
        handshaking: {
          entry: 'sendHello',
          on: { WELCOME: { target: 'online', actions: 'startSession' } },
          after: { handshakeTimeout: { target: '#connection.backoff', actions: 'recordHandshakeTimeout' } },
        },
        online: {
          initial: 'waiting',
          after: { stableAfter: { actions: 'resetAttempts' } },
          states: {
            waiting: {
              after: { heartbeatInterval: 'pinging' },
            },
            pinging: {
              entry: 'sendPing',
              on: { PONG: 'waiting' },
              after: { pongTimeout: { target: '#connection.backoff', actions: 'recordHeartbeatTimeout' } },
            },
          },
        },
      },
    },
    backoff: {
      entry: 'scheduleRetry',
      exit: 'clearRetry',
      on: { RECONNECT_NOW: 'session', CONNECT: 'session', CLOSE: 'closed' },
      after: { retryDelay: 'session' },
    },
    failed: {
      entry: 'resetAttempts',
      on: { CONNECT: 'session', RECONNECT_NOW: 'session', CLOSE: 'closed' },
    },
    closed: {
      type: 'final',
    },
  },
});

import type { InspectionEvent, Observer } from 'xstate';
import type { Clock } from '../core/Clock.js';
import type { BackoffPolicy } from '../../machines/backoff.js';
import { InvalidOptionError } from '../errors.js';
import { resolveUserPath } from '../fs/resolveUserPath.js';
import { assertId } from '../protocol/ids.js';
import { webSocketUrl } from '../protocol/url.js';

/** Options of `new IMClient(...)`. Only the first three are required, as in the seed. */
export interface IMClientOptions {
  /**
   * The agent's workspace; the client keeps its files in `{workspacePath}/im_client/`.
   * `~` is the home directory.
   * @example '~/.gateway/workspaces/user_001'
   */
  workspacePath: string;
  /**
   * Base URL of the IM server; the WebSocket endpoint is `{imServerUrl}/ws`
   * (`http` becomes `ws`, `https` becomes `wss`).
   * @example 'http://127.0.0.1:8080'
   */
  imServerUrl: string;
  /** This agent's id: 1-96 of `[A-Za-z0-9_.@-]`. @example 'agent_001' */
  agentId: string;
  /** Token from the server's tokens file; omit for an open-mode server. */
  token?: string | undefined;
  /**
   * `'queue'` for a digital-employee agent: incoming messages are also kept
   * in the durable pending queue until acknowledged. Callbacks fire in both modes.
   * @default 'callback'
   */
  mode?: 'callback' | 'queue' | undefined;
  /** Most messages awaiting the server's ack at once. @default 1000 */
  window?: number | undefined;
  /**
   * Most queued messages whose text stays in memory, in each queue. A longer
   * outbox keeps the rest of its unsent messages in `outbox.jsonl` only, 45–75
   * bytes of memory each (outside V8's heap), and reads them back in order,
   * a quarter of a send window at a time, as the queue drains; while offline it
   * keeps only one send window's worth (at most half of this) in memory; keep it above `window`, or the send window
   * cannot be filled. A longer pending queue (queue mode) keeps the rest in
   * `queue/pending.json` and its log, about 250 bytes each, read back as they
   * are claimed. @default 10000
   */
  maxQueuedInMemory?: number | undefined;
  /** Resend a message (same id) when its ack takes longer than this. @default 10000 */
  ackTimeoutMs?: number | undefined;
  /** A message fails after this many ack timeouts or temporary refusals. @default 10 */
  maxAttempts?: number | undefined;
  /** Default time to live of a message: unsent after this long, it fails with `MESSAGE_EXPIRED`. 0 disables. @default 86400000 */
  messageTtlMs?: number | undefined;
  /** Default lease of a claimed pending message. @default 60000 */
  leaseMs?: number | undefined;
  /** Reconnect backoff (exponential with full jitter). */
  reconnect?:
    | {
        /** @default 500 */
        baseMs?: number | undefined;
        /** @default 2 */
        factor?: number | undefined;
        /** @default 30000 */
        maxMs?: number | undefined;
        /** Online this long resets the backoff. @default 10000 */
        stableAfterMs?: number | undefined;
      }
    | undefined;
  heartbeat?:
    | {
        /** Ping at least this often (the server's interval applies when shorter). @default the server's */
        intervalMs?: number | undefined;
        /** No pong within this long means the link is dead. @default 10000 */
        timeoutMs?: number | undefined;
      }
    | undefined;
  /** Opening the socket may take this long. @default 10000 */
  connectTimeoutMs?: number | undefined;
  /** The server must answer hello within this long. @default 10000 */
  handshakeTimeoutMs?: number | undefined;
  /**
   * Receives the inspection events of every actor the client creates
   * (connection, outbox, inbox, each message, each claimed pending message),
   * e.g. `createInspector().inspect` from `@statelyai/inspect`. No actor's
   * context or events carry message text, so an inspector never sees content.
   */
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void) | undefined;
  /**
   * Append every state change of every actor (time, actor, from, event, to) to
   * `{workspace}/im_client/flight.jsonl`, to replay what the client did before
   * a failure: `npm run timeline -- <workspacePath>`.
   * @default false
   */
  flightRecorder?: boolean | undefined;
  /**
   * The clock every actor's delayed transitions (heartbeat, timeouts, backoff,
   * leases) run on: XState's `Clock` interface. Tests and simulations pass a
   * `SimulatedClock` to decide when timers fire.
   * @default real time
   */
  clock?: Clock | undefined;
}

/** Options with defaults applied and every value checked. */
export interface ResolvedClientOptions {
  workspacePath: string;
  imServerUrl: string;
  wsUrl: string;
  agentId: string;
  token: string | undefined;
  mode: 'callback' | 'queue';
  window: number;
  maxQueuedInMemory: number;
  ackTimeoutMs: number;
  maxAttempts: number;
  messageTtlMs: number;
  leaseMs: number;
  backoff: BackoffPolicy;
  stableAfterMs: number;
  heartbeatMs: number | undefined;
  pongTimeoutMs: number;
  connectTimeoutMs: number;
  handshakeTimeoutMs: number;
  inspect: ((event: InspectionEvent) => void) | undefined;
  flightRecorder: boolean;
  clock: Clock | undefined;
}

/** Validates options up front; throws InvalidOptionError naming the option. */
export function resolveClientOptions(options: IMClientOptions): ResolvedClientOptions {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options', 'expected an object');
  assertId('agentId', options.agentId);
  if (typeof options.imServerUrl !== 'string') throw new InvalidOptionError('imServerUrl', 'expected a URL string');
  const wsUrl = webSocketUrl(options.imServerUrl);
  if (options.token !== undefined && (typeof options.token !== 'string' || options.token === '')) {
    throw new InvalidOptionError('token', 'expected a non-empty string');
  }
  const mode = options.mode ?? 'callback';
  if (mode !== 'callback' && mode !== 'queue') throw new InvalidOptionError('mode', `expected 'callback' or 'queue', got ${String(mode)}`);
  const inspect = options.inspect;
  return {
    workspacePath: resolveUserPath(options.workspacePath, 'workspacePath'),
    imServerUrl: options.imServerUrl,
    wsUrl,
    agentId: options.agentId,
    token: options.token,
    mode,
    window: int('window', options.window, 1000, 1),
    maxQueuedInMemory: int('maxQueuedInMemory', options.maxQueuedInMemory, 10_000, 1),
    ackTimeoutMs: int('ackTimeoutMs', options.ackTimeoutMs, 10_000, 1),
    maxAttempts: int('maxAttempts', options.maxAttempts, 10, 1),
    messageTtlMs: int('messageTtlMs', options.messageTtlMs, 24 * 60 * 60 * 1000, 0),
    leaseMs: int('leaseMs', options.leaseMs, 60_000, 1),
    backoff: {
      baseMs: int('reconnect.baseMs', options.reconnect?.baseMs, 500, 1),
      factor: num('reconnect.factor', options.reconnect?.factor, 2, 1),
      maxMs: int('reconnect.maxMs', options.reconnect?.maxMs, 30_000, 1),
    },
    stableAfterMs: int('reconnect.stableAfterMs', options.reconnect?.stableAfterMs, 10_000, 1),
    heartbeatMs: options.heartbeat?.intervalMs === undefined ? undefined : int('heartbeat.intervalMs', options.heartbeat.intervalMs, 0, 1),
    pongTimeoutMs: int('heartbeat.timeoutMs', options.heartbeat?.timeoutMs, 10_000, 1),
    connectTimeoutMs: int('connectTimeoutMs', options.connectTimeoutMs, 10_000, 1),
    handshakeTimeoutMs: int('handshakeTimeoutMs', options.handshakeTimeoutMs, 10_000, 1),
    inspect: inspect === undefined ? undefined : typeof inspect === 'function' ? inspect : (e) => inspect.next?.(e),
    flightRecorder: options.flightRecorder === true,
    clock: options.clock,
  };
}

function int(name: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) throw new InvalidOptionError(name, `expected an integer >= ${min}, got ${String(value)}`);
  return value;
}

function num(name: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) throw new InvalidOptionError(name, `expected a number >= ${min}, got ${String(value)}`);
  return value;
}

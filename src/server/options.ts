import { isIP } from 'node:net';
import {
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_MAX_BAD_FRAMES,
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_MAX_INBOX_ENTRIES,
  DEFAULT_MAX_INFLIGHT_DELIVERIES,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_MAX_PENDING_SENDS,
  DEFAULT_SEND_HIGH_WATER_BYTES,
  DEFAULT_SERVER_DATA_DIR,
  DEFAULT_SERVER_HOST,
  DEFAULT_SERVER_PORT,
} from '../constants.js';
import { InvalidOptionError } from '../errors.js';
import { resolveUserPath } from '../fs/resolveUserPath.js';
import type { InboxStore } from './store/InboxStore.js';

/** A structured log line of the server. */
export interface ServerLogRecord {
  level: 'info' | 'warn' | 'error';
  /** What happened, e.g. `listening`, `session_opened`, `bad_frame`. */
  event: string;
  [field: string]: unknown;
}

/** Receives the server's log records. */
export type ServerLogger = (record: ServerLogRecord) => void;

/** Options of {@link IMServer.start}. Every limit is announced to clients in `welcome`. */
export interface IMServerOptions {
  /** Interface to bind. Anything but loopback requires tokens. @default '127.0.0.1' */
  host?: string;
  /** Port to bind; 0 picks a free one (see `server.port`). @default 8080 */
  port?: number;
  /** Where inboxes are stored; `~` is the home directory. @default '~/.gateway/im_server' */
  dataDir?: string;
  /** Agent id -> token. Without tokens (nor `tokensFile`) the server runs in open mode, on loopback only. */
  tokens?: Record<string, string> | Map<string, string>;
  /** A JSON file `{"agent_id": "token"}` to read `tokens` from. */
  tokensFile?: string;
  /** Client ping interval announced in `welcome`; sessions silent for 3 intervals are closed. @default 15000 */
  heartbeatMs?: number;
  /** Time a connection has to send `hello`. @default 10000 */
  handshakeTimeoutMs?: number;
  /** Largest WebSocket message; bigger ones close the socket with 1009. @default 1048576 */
  maxFrameBytes?: number;
  /** Largest message body (`text` + `meta`); bigger ones are nacked `too_large`. @default 262144 */
  maxMessageBytes?: number;
  /** Deliveries left unacknowledged per connection. @default 1000 */
  maxInflightDeliveries?: number;
  /** Unacknowledged entries per inbox before senders are nacked `inbox_full`. @default 1000000 */
  maxInboxEntries?: number;
  /** Bad frames tolerated per connection before it is closed with 1008. @default 20 */
  maxBadFrames?: number;
  /** Sends in progress per connection before the server stops reading from it. @default 4096 */
  maxPendingSends?: number;
  /** Socket bytes queued above which deliveries pause until the socket drains. @default 1048576 */
  sendHighWaterBytes?: number;
  /** Per-connection send rate limit; off by default. */
  rateLimit?: { perSecond: number; burst?: number } | undefined;
  /** Inbox segment file size (file store). @default 8388608 */
  segmentBytes?: number;
  /** How long message ids are remembered for deduplication (file store). @default 86400000 */
  dedupeWindowMs?: number;
  /** Most message ids remembered for deduplication; the oldest are forgotten first (file store). @default 1000000 */
  dedupeMaxEntries?: number;
  /** Most inbox segment files held open at once; the least recently written are closed beyond it (file store). @default 1024 */
  maxOpenSegments?: number;
  /** A store to use instead of the file store in `dataDir`. */
  store?: InboxStore;
  /** Receives log records; silent by default. */
  log?: ServerLogger;
}

/** Options with every default applied and every value checked. */
export interface ResolvedServerOptions {
  host: string;
  port: number;
  dataDir: string;
  tokens: Map<string, string> | undefined;
  tokensFile: string | undefined;
  heartbeatMs: number;
  handshakeTimeoutMs: number;
  maxFrameBytes: number;
  maxMessageBytes: number;
  maxInflightDeliveries: number;
  maxInboxEntries: number;
  maxBadFrames: number;
  maxPendingSends: number;
  sendHighWaterBytes: number;
  rateLimit: { perSecond: number; burst: number } | undefined;
  segmentBytes: number;
  dedupeWindowMs: number;
  dedupeMaxEntries: number;
  maxOpenSegments: number;
  store: InboxStore | undefined;
  log: ServerLogger;
}

/** Applies defaults and validates; throws InvalidOptionError naming the option. */
export function resolveServerOptions(options: IMServerOptions = {}): ResolvedServerOptions {
  const host = options.host ?? DEFAULT_SERVER_HOST;
  if (typeof host !== 'string' || host === '') throw new InvalidOptionError('host', 'expected a host name or IP address');
  const port = options.port ?? DEFAULT_SERVER_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidOptionError('port', `expected 0-65535, got ${port}`);
  const resolved: ResolvedServerOptions = {
    host,
    port,
    dataDir: resolveUserPath(options.dataDir ?? DEFAULT_SERVER_DATA_DIR, 'dataDir'),
    tokens: options.tokens instanceof Map ? options.tokens : options.tokens ? new Map(Object.entries(options.tokens)) : undefined,
    tokensFile: options.tokensFile,
    heartbeatMs: positiveInt('heartbeatMs', options.heartbeatMs, DEFAULT_HEARTBEAT_MS),
    handshakeTimeoutMs: positiveInt('handshakeTimeoutMs', options.handshakeTimeoutMs, DEFAULT_HANDSHAKE_TIMEOUT_MS),
    maxFrameBytes: positiveInt('maxFrameBytes', options.maxFrameBytes, DEFAULT_MAX_FRAME_BYTES),
    maxMessageBytes: positiveInt('maxMessageBytes', options.maxMessageBytes, DEFAULT_MAX_MESSAGE_BYTES),
    maxInflightDeliveries: positiveInt('maxInflightDeliveries', options.maxInflightDeliveries, DEFAULT_MAX_INFLIGHT_DELIVERIES),
    maxInboxEntries: positiveInt('maxInboxEntries', options.maxInboxEntries, DEFAULT_MAX_INBOX_ENTRIES),
    maxBadFrames: positiveInt('maxBadFrames', options.maxBadFrames, DEFAULT_MAX_BAD_FRAMES),
    maxPendingSends: positiveInt('maxPendingSends', options.maxPendingSends, DEFAULT_MAX_PENDING_SENDS),
    sendHighWaterBytes: positiveInt('sendHighWaterBytes', options.sendHighWaterBytes, DEFAULT_SEND_HIGH_WATER_BYTES),
    rateLimit: undefined,
    segmentBytes: positiveInt('segmentBytes', options.segmentBytes, 8 * 1024 * 1024),
    dedupeWindowMs: positiveInt('dedupeWindowMs', options.dedupeWindowMs, 24 * 60 * 60 * 1000),
    dedupeMaxEntries: positiveInt('dedupeMaxEntries', options.dedupeMaxEntries, 1_000_000),
    maxOpenSegments: positiveInt('maxOpenSegments', options.maxOpenSegments, 1024),
    store: options.store,
    log: options.log ?? (() => {}),
  };
  if (options.rateLimit) {
    const perSecond = positiveInt('rateLimit.perSecond', options.rateLimit.perSecond, 0);
    resolved.rateLimit = { perSecond, burst: positiveInt('rateLimit.burst', options.rateLimit.burst, perSecond) };
  }
  // A message must fit in a frame with its envelope around it.
  if (resolved.maxMessageBytes + 4096 > resolved.maxFrameBytes) {
    throw new InvalidOptionError('maxMessageBytes', `must be at least 4096 below maxFrameBytes (${resolved.maxFrameBytes})`);
  }
  if (resolved.tokens && resolved.tokensFile) throw new InvalidOptionError('tokens', 'give tokens or tokensFile, not both');
  return resolved;
}

/**
 * Whether `host` only accepts connections from this machine: `localhost`,
 * `127.0.0.0/8`, `::1` (and their IPv4-mapped forms).
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value <= 0) throw new InvalidOptionError(name, `expected a positive integer, got ${value}`);
  return value;
}

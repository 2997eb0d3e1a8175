import { z } from 'zod';

/** The protocol version this package speaks; sent in `hello` and `welcome`. */
export const PROTOCOL_VERSION = 1;

/**
 * Machine-readable reasons carried by `error` frames (and by `nack` frames,
 * which use the subset {@link NackCode}). Every code is explained in
 * docs/protocol.md, "Error codes".
 */
export const ERROR_CODES = [
  'bad_frame',
  'invalid_frame',
  'unknown_type',
  'not_authenticated',
  'already_authenticated',
  'unauthorized',
  'unsupported_protocol',
  'handshake_timeout',
  'idle_timeout',
  'session_replaced',
  'invalid_ack',
  'unknown_recipient',
  'too_large',
  'invalid_message',
  'id_conflict',
  'out_of_order',
  'rate_limited',
  'inbox_full',
  'shutting_down',
  'internal',
] as const;
export const ErrorCode = z.enum(ERROR_CODES);
export type ErrorCode = z.infer<typeof ErrorCode>;

/** The reasons a `send` can be refused with a `nack`. */
export const NACK_CODES = [
  'unknown_recipient',
  'too_large',
  'invalid_message',
  'id_conflict',
  'out_of_order',
  'rate_limited',
  'inbox_full',
  'shutting_down',
  'internal',
] as const satisfies readonly ErrorCode[];
export const NackCode = z.enum(NACK_CODES);
export type NackCode = z.infer<typeof NackCode>;

/** Nack codes for which sending the same message again later can succeed. */
export const RETRYABLE_NACK_CODES: ReadonlySet<NackCode> = new Set<NackCode>([
  'out_of_order',
  'rate_limited',
  'inbox_full',
  'shutting_down',
  'internal',
]);

/**
 * WebSocket close codes used by the protocol. 1000-1011 are the standard
 * codes with their usual meaning; 4000-4099 are ours.
 */
export const CloseCode = {
  /** Normal closure, e.g. the client called `close()`. */
  NORMAL: 1000,
  /** The server is shutting down (SIGTERM); reconnect later. */
  GOING_AWAY: 1001,
  /** Repeated bad frames: the peer is not speaking the protocol. */
  POLICY_VIOLATION: 1008,
  /** A frame exceeded `limits.maxFrameBytes`. */
  FRAME_TOO_LARGE: 1009,
  /** The server hit an unexpected condition. */
  INTERNAL_ERROR: 1011,
  /** The first frame was not a valid `hello`. */
  BAD_HANDSHAKE: 4000,
  /** Unknown agent id or wrong token. Retrying with the same credentials cannot help. */
  UNAUTHORIZED: 4001,
  /** The client's protocol version is not supported. Retrying cannot help. */
  UNSUPPORTED_PROTOCOL: 4002,
  /** Another connection logged in with the same agent id and took over this session. */
  SESSION_REPLACED: 4003,
  /** No `hello` arrived within the handshake timeout. */
  HANDSHAKE_TIMEOUT: 4004,
  /** Nothing arrived from the client for too long (see `heartbeatMs`). */
  IDLE_TIMEOUT: 4005,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** Close codes after which a client must not reconnect on its own. */
export const TERMINAL_CLOSE_CODES: ReadonlySet<number> = new Set([
  CloseCode.UNAUTHORIZED,
  CloseCode.UNSUPPORTED_PROTOCOL,
  CloseCode.SESSION_REPLACED,
]);

import { z } from 'zod';
import { ackFrameText, sendFrameText } from '../util/jsonText.js';
import { summarizeIssues } from '../validation.js';
import type { ErrorCode } from './codes.js';
import { DeliverAckFrame, DeliverFrame, ReceiptFrame } from './delivery.js';
import { ErrorFrame } from './error.js';
import { fastClientFrames, fastServerFrames, type FastCheck } from './fastPath.js';
import { HelloFrame, WelcomeFrame } from './handshake.js';
import { PingFrame, PongFrame } from './heartbeat.js';
import { AckFrame, NackFrame, SendFrame } from './send.js';

/** Every frame a client may send. */
export const ClientFrame = z.discriminatedUnion('type', [HelloFrame, SendFrame, DeliverAckFrame, PingFrame]);
export type ClientFrame = z.infer<typeof ClientFrame>;

/** Every frame a server may send. */
export const ServerFrame = z.discriminatedUnion('type', [
  WelcomeFrame,
  AckFrame,
  NackFrame,
  DeliverFrame,
  ReceiptFrame,
  PongFrame,
  ErrorFrame,
]);
export type ServerFrame = z.infer<typeof ServerFrame>;

/** Why a frame could not be decoded. */
export interface FrameProblem {
  ok: false;
  code: Extract<ErrorCode, 'bad_frame' | 'invalid_frame' | 'unknown_type'>;
  message: string;
  /** The frame's `type` when it had a string one. */
  type?: string;
}

export type Decoded<T> = { ok: true; frame: T } | FrameProblem;

/** How one frame type is validated: its own schema (skipping the union's dispatch), after a hand check for the hot ones. */
interface FrameType {
  schema: z.ZodType;
  fast: FastCheck | undefined;
}

function typesOf(options: ReadonlyArray<z.ZodObject<{ type: z.ZodLiteral<string> }>>, fast: ReadonlyMap<string, FastCheck>): ReadonlyMap<string, FrameType> {
  return new Map(options.map((schema) => [schema.shape.type.value, { schema, fast: fast.get(schema.shape.type.value) }]));
}

const clientTypes = typesOf(ClientFrame.options, fastClientFrames);
const serverTypes = typesOf(ServerFrame.options, fastServerFrames);

/** Most frames one batch (a WebSocket message holding a JSON array of frames) may hold. */
export const MAX_BATCH_FRAMES = 4096;

function decode<T>(data: string, known: ReadonlyMap<string, FrameType>): Decoded<T> {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return { ok: false, code: 'bad_frame', message: 'frame is not valid JSON' };
  }
  return validate<T>(value, known);
}

/** A WebSocket message: one frame, or a batch of frames to handle in order. */
function decodeMany<T>(data: string, known: ReadonlyMap<string, FrameType>): Array<Decoded<T>> {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return [{ ok: false, code: 'bad_frame', message: 'message is not valid JSON' }];
  }
  if (!Array.isArray(value)) return [validate<T>(value, known)];
  if (value.length === 0) return [{ ok: false, code: 'bad_frame', message: 'a batch must hold at least one frame' }];
  if (value.length > MAX_BATCH_FRAMES) return [{ ok: false, code: 'bad_frame', message: `a batch holds at most ${MAX_BATCH_FRAMES} frames, this one ${value.length}` }];
  return value.map((v) => validate<T>(v, known));
}

function validate<T>(value: unknown, known: ReadonlyMap<string, FrameType>): Decoded<T> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, code: 'bad_frame', message: 'frame is not a JSON object' };
  }
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string') {
    return { ok: false, code: 'invalid_frame', message: 'frame has no string "type"' };
  }
  const frameType = known.get(type);
  if (!frameType) {
    return { ok: false, code: 'unknown_type', message: `unknown frame type "${type.slice(0, 64)}"`, type: type.slice(0, 64) };
  }
  // A frame the hand check passes is one the schema would return unchanged.
  if (frameType.fast?.(value as Record<string, unknown>)) return { ok: true, frame: value as T };
  const parsed = frameType.schema.safeParse(value) as z.ZodSafeParseResult<T>;
  if (!parsed.success) {
    return { ok: false, code: 'invalid_frame', message: `invalid ${type}: ${summarizeIssues(parsed.error)}`, type };
  }
  return { ok: true, frame: parsed.data };
}

/**
 * Parses and validates a text frame received by a server.
 *
 * @example
 * ```ts
 * const d = decodeClientFrame('{"type":"ping"}');
 * if (d.ok) console.log(d.frame.type); // 'ping'
 * ```
 */
export function decodeClientFrame(data: string): Decoded<ClientFrame> {
  return decode<ClientFrame>(data, clientTypes);
}

/** Parses and validates a text frame received by a client. */
export function decodeServerFrame(data: string): Decoded<ServerFrame> {
  return decode<ServerFrame>(data, serverTypes);
}

/**
 * Parses and validates a WebSocket message received by a server: one frame
 * or a batch (JSON array) of frames, each decoded on its own, in order.
 * A message that is not JSON, an empty batch or one of more than
 * {@link MAX_BATCH_FRAMES} frames decodes to a single problem.
 */
export function decodeClientMessage(data: string): Array<Decoded<ClientFrame>> {
  return decodeMany<ClientFrame>(data, clientTypes);
}

/** Parses and validates a WebSocket message received by a client (one frame or a batch). */
export function decodeServerMessage(data: string): Array<Decoded<ServerFrame>> {
  return decodeMany<ServerFrame>(data, serverTypes);
}

/** Serialises a frame for the wire (a `send`, one per message, field by field: see jsonText.ts). */
export function encodeFrame(frame: ClientFrame | ServerFrame): string {
  if (frame.type === 'send') return sendFrameText(frame);
  if (frame.type === 'ack') return ackFrameText(frame);
  return JSON.stringify(frame);
}

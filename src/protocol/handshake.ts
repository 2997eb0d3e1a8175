import { z } from 'zod';
import { AgentId } from './ids.js';

/** Where a client's durable inbox cursor stands; sent in `hello` to resume delivery. */
export const ResumeCursor = z.object({
  /** The inbox epoch the cursor belongs to (from a previous `welcome`). */
  epoch: z.string().min(1).max(64),
  /** Highest inbox sequence the client has durably stored (cumulative). */
  ackedUpTo: z.int().nonnegative(),
});
export type ResumeCursor = z.infer<typeof ResumeCursor>;

/** Client -> server, first frame of every connection. */
export const HelloFrame = z.object({
  type: z.literal('hello'),
  /** Protocol version the client speaks. The server answers `unsupported_protocol` unless it is 1. */
  protocol: z.int().positive(),
  agentId: AgentId,
  /** Secret from the server's tokens file; omitted when the server runs in open mode. */
  token: z.string().min(1).max(4096).optional(),
  /** Resume delivery after this cursor; treated as a cumulative `deliver_ack`. */
  resume: ResumeCursor.optional(),
  /** Free-form client identification, for logs. */
  client: z.object({ name: z.string().max(100).optional(), version: z.string().max(50).optional() }).optional(),
});
export type HelloFrame = z.infer<typeof HelloFrame>;

/** Limits the server enforces; clients check them before sending. */
export const ServerLimits = z.object({
  /** Largest WebSocket message accepted; bigger ones close the socket with 1009. */
  maxFrameBytes: z.int().positive(),
  /** Largest message body: UTF-8 bytes of `text` plus JSON bytes of `meta`. */
  maxMessageBytes: z.int().positive(),
  /** Most deliveries the server leaves unacknowledged on one connection. */
  maxInflightDeliveries: z.int().positive(),
});
export type ServerLimits = z.infer<typeof ServerLimits>;

/** The position of the agent's inbox at login. */
export const InboxPosition = z.object({
  /** Identity of this inbox; changes only if the server's data was lost or reset. */
  epoch: z.string().min(1).max(64),
  /** Highest sequence ever assigned in this inbox (0 when empty). */
  latestSeq: z.int().nonnegative(),
  /** Highest sequence the agent has acknowledged. */
  ackedUpTo: z.int().nonnegative(),
});
export type InboxPosition = z.infer<typeof InboxPosition>;

/** Server -> client, the answer to a valid `hello`. */
export const WelcomeFrame = z.object({
  type: z.literal('welcome'),
  protocol: z.int().positive(),
  sessionId: z.string().min(1),
  agentId: AgentId,
  /** The client sends `ping` at this interval; the server closes idle sessions after 3 intervals. */
  heartbeatMs: z.int().positive(),
  limits: ServerLimits,
  inbox: InboxPosition,
  /** Server clock, ISO 8601. */
  serverTime: z.iso.datetime(),
});
export type WelcomeFrame = z.infer<typeof WelcomeFrame>;

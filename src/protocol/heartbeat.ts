import { z } from 'zod';

/** Client -> server: keep-alive; `t` is echoed in the `pong`. */
export const PingFrame = z.object({
  type: z.literal('ping'),
  t: z.number().optional(),
});
export type PingFrame = z.infer<typeof PingFrame>;

/** Server -> client: answer to `ping`. */
export const PongFrame = z.object({
  type: z.literal('pong'),
  t: z.number().optional(),
});
export type PongFrame = z.infer<typeof PongFrame>;

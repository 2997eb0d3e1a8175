import { z } from 'zod';
import { ErrorCode } from './codes.js';

/** Server -> client: something the client sent was wrong. `fatal` errors are followed by a close. */
export const ErrorFrame = z.object({
  type: z.literal('error'),
  code: ErrorCode,
  message: z.string(),
  /** The `type` of the frame that caused it, when known. */
  ref: z.string().max(64).optional(),
  fatal: z.boolean(),
});
export type ErrorFrame = z.infer<typeof ErrorFrame>;

import { randomBytes } from 'node:crypto';

/**
 * A new message id (the idempotency key of a send): `m` + milliseconds since
 * the epoch in base 36 (so ids sort roughly by creation time) + 12 random
 * base64url characters (72 bits, so ids never collide in practice).
 *
 * @example
 * ```ts
 * createMessageId(); // 'mmhfk2x3a_Zx81kPq0cLwE'
 * ```
 */
export function createMessageId(now: number = Date.now(), random: Uint8Array = randomBytes(9)): string {
  return `m${now.toString(36)}_${Buffer.from(random).toString('base64url')}`;
}

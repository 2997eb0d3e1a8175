import { randomFillSync } from 'node:crypto';

/** Random bytes drawn in bulk: one system call per 455 ids instead of one per id. */
const pool = Buffer.alloc(4096);
let used = pool.length;

/** The time part of the last id, computed once per millisecond (a burst of sends shares it). */
let lastMs = Number.NaN;
let lastTime = '';

/**
 * A new message id (the idempotency key of a send): `m` + milliseconds since
 * the epoch in base 36 (so ids sort roughly by creation time) + 12 random
 * base64url characters (72 bits from the system's CSPRNG, so ids never
 * collide in practice).
 *
 * @example
 * ```ts
 * createMessageId(); // 'mmhfk2x3a_Zx81kPq0cLwE'
 * ```
 */
export function createMessageId(now: number = Date.now(), random?: Uint8Array): string {
  if (now !== lastMs) {
    lastMs = now;
    lastTime = now.toString(36);
  }
  let tail: string;
  if (random) {
    tail = Buffer.from(random.buffer, random.byteOffset, random.byteLength).toString('base64url');
  } else {
    if (used + 9 > pool.length) {
      randomFillSync(pool);
      used = 0;
    }
    // Encoded straight from the pool: no view of it is made per id.
    tail = pool.toString('base64url', used, used + 9);
    used += 9;
  }
  return `m${lastTime}_${tail}`;
}

import { randomFillSync } from 'node:crypto';

/** Random bytes drawn in bulk: one system call per 455 ids instead of one per id. */
const pool = Buffer.alloc(4096);
let used = pool.length;

function randomSlice(size: number): Buffer {
  if (used + size > pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  const slice = pool.subarray(used, used + size);
  used += size;
  return slice;
}

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
export function createMessageId(now: number = Date.now(), random: Uint8Array = randomSlice(9)): string {
  return `m${now.toString(36)}_${Buffer.from(random.buffer, random.byteOffset, random.byteLength).toString('base64url')}`;
}

import { randomFillSync } from 'node:crypto';

/** Random bytes drawn in bulk: one system call per 455 ids instead of one per id. */
const pool = Buffer.alloc(4096);
let used = pool.length;

const BASE64URL = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', 'latin1');
/** The id being built: `m`, the time part, `_`, then the random part (at most 1 + 11 + 1 + 12 bytes). */
const scratch = Buffer.alloc(32);
/** The time part of the last id, computed once per millisecond (a burst of sends shares it), and where the random part starts. */
let lastMs = Number.NaN;
let tailAt = 0;

/**
 * A new message id (the idempotency key of a send): `m` + milliseconds since
 * the epoch in base 36 (so ids sort roughly by creation time) + `_` + 12
 * random base64url characters (72 bits from the system's CSPRNG, so ids never
 * collide in practice).
 *
 * The id is written into a buffer and decoded once: a flat string of 22
 * bytes. Joined from its parts it would be a rope of three strings (about
 * 100 bytes instead of 40), and every map and cache holding the id, for as
 * long as its message is queued, would hold the rope.
 *
 * @example
 * ```ts
 * createMessageId(); // 'mmhfk2x3a_Zx81kPq0cLwE'
 * ```
 */
export function createMessageId(now: number = Date.now(), random?: Uint8Array): string {
  if (now !== lastMs) {
    lastMs = now;
    scratch[0] = 0x6d; // m
    const end = 1 + scratch.write(now.toString(36), 1, 'latin1');
    scratch[end] = 0x5f; // _
    tailAt = end + 1;
  }
  let bytes: Uint8Array = pool;
  let at = 0;
  if (random) {
    if (random.byteLength !== 9) throw new RangeError('expected 9 random bytes');
    bytes = random;
  } else {
    if (used + 9 > pool.length) {
      randomFillSync(pool);
      used = 0;
    }
    at = used;
    used += 9;
  }
  // Base64url of 9 bytes: three groups of three bytes, four characters each (no padding).
  let out = tailAt;
  for (let i = at; i < at + 9; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    scratch[out++] = BASE64URL[n >>> 18]!;
    scratch[out++] = BASE64URL[(n >>> 12) & 63]!;
    scratch[out++] = BASE64URL[(n >>> 6) & 63]!;
    scratch[out++] = BASE64URL[n & 63]!;
  }
  return scratch.toString('latin1', 0, out);
}

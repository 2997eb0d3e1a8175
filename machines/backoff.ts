/** How reconnect delays grow. */
export interface BackoffPolicy {
  /** Delay ceiling of the first retry, in ms. @default 500 */
  baseMs: number;
  /** Each retry multiplies the ceiling by this. @default 2 */
  factor: number;
  /** The ceiling never exceeds this, in ms. @default 30000 */
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 500, factor: 2, maxMs: 30_000 };

/**
 * Exponential backoff with full jitter: a uniformly random delay up to
 * `min(maxMs, baseMs * factor^attempt)`, and at least 1 ms. Full jitter
 * spreads the reconnects of many clients that lost the same server at the
 * same instant; the 1 ms floor keeps `backoff` a state the client is in, not
 * one it leaves in the instant it enters (on a simulated clock a 0 ms retry
 * fires in the same step). Pure: the caller passes the random number (in [0, 1)).
 *
 * @example
 * ```ts
 * backoffDelay(0, DEFAULT_BACKOFF, 0.5); // 250
 * backoffDelay(10, DEFAULT_BACKOFF, 0.5); // 15000 (capped at 30000, halved)
 * ```
 */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: number): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * policy.factor ** Math.max(0, attempt));
  return Math.max(1, Math.floor(ceiling * Math.min(Math.max(random, 0), 1)));
}

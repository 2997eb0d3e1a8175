/**
 * A token bucket: `perSecond` tokens refill continuously up to `burst`.
 * `take()` answers 0 when a token was available, otherwise how many
 * milliseconds until one will be.
 *
 * @example
 * ```ts
 * const limiter = new RateLimiter({ perSecond: 100, burst: 200 });
 * const waitMs = limiter.take();
 * if (waitMs > 0) nack('rate_limited', waitMs);
 * ```
 */
export class RateLimiter {
  readonly #perMs: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #last: number;

  constructor(options: { perSecond: number; burst?: number | undefined; now?: () => number }) {
    this.#perMs = options.perSecond / 1000;
    this.#burst = options.burst ?? options.perSecond;
    this.#now = options.now ?? Date.now;
    this.#tokens = this.#burst;
    this.#last = this.#now();
  }

  take(): number {
    const now = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#last) * this.#perMs);
    this.#last = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - this.#tokens) / this.#perMs);
  }
}

/**
 * What delayed transitions run on: the same shape as XState's clock, so a
 * `SimulatedClock` from xstate can drive every actor of a client in tests.
 */
export interface Clock {
  setTimeout(fn: (...args: unknown[]) => void, timeout: number): unknown;
  clearTimeout(id: unknown): void;
}

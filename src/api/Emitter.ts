/* eslint-disable @typescript-eslint/no-explicit-any */

/**
 * A small typed event emitter. `on` returns the unsubscribe function. A
 * listener that throws does not break the emitter or the client: the error
 * goes to `onListenerError`.
 */
export class Emitter<Events extends { [K in keyof Events]: (...args: any[]) => void }> {
  readonly #listeners = new Map<keyof Events, Set<(...args: any[]) => void>>();
  readonly #onListenerError: (err: unknown, event: keyof Events) => void;

  constructor(onListenerError: (err: unknown, event: keyof Events) => void) {
    this.#onListenerError = onListenerError;
  }

  on<K extends keyof Events>(event: K, listener: Events[K]): () => void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
    };
  }

  listenerCount(event: keyof Events): number {
    return this.#listeners.get(event)?.size ?? 0;
  }

  emit<K extends keyof Events>(event: K, ...args: Parameters<Events[K]>): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(...args);
      } catch (err) {
        this.#onListenerError(err, event);
      }
    }
  }

  clear(): void {
    this.#listeners.clear();
  }
}

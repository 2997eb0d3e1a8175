import type { IMMessage } from '../core/IMMessage.js';

/**
 * The async iterator behind `client.messages()`: buffers messages published
 * after it was created and hands them out in order. Ends when `end()` is
 * called (the client closed), when its signal aborts, or when the consumer
 * breaks out of its loop.
 */
export class MessageStream implements AsyncIterableIterator<IMMessage> {
  readonly #buffer: IMMessage[] = [];
  #pull: ((result: IteratorResult<IMMessage>) => void) | undefined;
  #done = false;
  readonly #onEnd: () => void;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort = () => this.end();

  constructor(onEnd: () => void, signal?: AbortSignal) {
    this.#onEnd = onEnd;
    this.#signal = signal;
    if (signal?.aborted) this.end();
    else signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  push(message: IMMessage): void {
    if (this.#done) return;
    if (this.#pull) {
      const pull = this.#pull;
      this.#pull = undefined;
      pull({ value: message, done: false });
    } else {
      this.#buffer.push(message);
    }
  }

  end(): void {
    if (this.#done) return;
    this.#done = true;
    this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#onEnd();
    const pull = this.#pull;
    this.#pull = undefined;
    pull?.({ value: undefined, done: true });
  }

  next(): Promise<IteratorResult<IMMessage>> {
    const value = this.#buffer.shift();
    if (value) return Promise.resolve({ value, done: false });
    if (this.#done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => (this.#pull = resolve));
  }

  return(): Promise<IteratorResult<IMMessage>> {
    this.end();
    this.#buffer.length = 0;
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<IMMessage> {
    return this;
  }
}

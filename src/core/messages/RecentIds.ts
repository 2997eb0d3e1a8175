import { FifoMap } from '../../util/FifoMap.js';

/**
 * The most recent `capacity` ids seen, forgetting the oldest first: enough to
 * recognise a message the server delivers twice, in bounded memory.
 */
export class RecentIds {
  readonly #capacity: number;
  readonly #ids = new FifoMap<string, true>();

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  has(id: string): boolean {
    return this.#ids.has(id);
  }

  add(id: string): void {
    this.#ids.set(id, true);
    if (this.#ids.size > this.#capacity) this.#ids.shift();
  }
}

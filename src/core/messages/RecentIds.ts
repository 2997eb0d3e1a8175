/**
 * The most recent `capacity` ids seen, forgetting the oldest first: enough to
 * recognise a message the server delivers twice, in bounded memory.
 */
export class RecentIds {
  readonly #capacity: number;
  readonly #ids = new Set<string>();

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  has(id: string): boolean {
    return this.#ids.has(id);
  }

  add(id: string): void {
    this.#ids.add(id);
    if (this.#ids.size > this.#capacity) {
      // Sets iterate in insertion order: the first is the oldest.
      this.#ids.delete(this.#ids.values().next().value as string);
    }
  }
}

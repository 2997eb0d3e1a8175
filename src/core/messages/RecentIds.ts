import { RecentMap } from '../../util/RecentMap.js';

/**
 * Recently seen ids, in bounded memory (at most `capacity`, and always the
 * last `capacity / 2`): enough to recognise a message the server delivers
 * twice.
 */
export class RecentIds {
  readonly #ids: RecentMap<string, true>;

  constructor(capacity: number) {
    this.#ids = new RecentMap(capacity);
  }

  has(id: string): boolean {
    return this.#ids.has(id);
  }

  add(id: string): void {
    this.#ids.set(id, true);
  }
}

/** An inbox whose segment file can be closed while idle and opened again when next used. */
export interface Parkable {
  /** Closes the open segment file if the inbox is idle enough to; false if it is busy (rolling to a new segment). */
  park(): boolean;
}

/**
 * Keeps at most `max` inbox segment files open across every inbox of a
 * store: each inbox marks its segment used when it writes, and the least
 * recently used ones beyond `max` are closed, to be opened again on their
 * next write. A server that has seen tens of thousands of agents then holds
 * a bounded number of file descriptors, not one per agent.
 */
export class OpenSegments {
  readonly #max: number;
  /** Inboxes with an open segment, least recently used first. */
  readonly #open = new Map<Parkable, true>();
  /** The most recently used: marking it again changes nothing (the common case, a busy inbox). */
  #last: Parkable | undefined;

  constructor(max: number) {
    this.#max = max;
  }

  /** How many segment files are open. */
  get size(): number {
    return this.#open.size;
  }

  /** Marks the inbox's open segment used just now, closing the least recently used others beyond `max`. */
  used(inbox: Parkable): void {
    if (inbox === this.#last) return;
    this.#last = inbox;
    if (this.#open.delete(inbox)) {
      this.#open.set(inbox, true);
      return;
    }
    this.#open.set(inbox, true);
    this.#shrink(inbox);
  }

  /**
   * The inbox is idle again (a roll to a new segment ended). Inboxes that
   * were busy when their file was due to close stay open meanwhile, so the
   * bound is exceeded only while rolls are under way; this closes the excess.
   */
  idle(inbox: Parkable): void {
    this.#shrink(inbox);
  }

  /** Closes the least recently used files beyond `max`, sparing `keep` and those busy. */
  #shrink(keep: Parkable): void {
    if (this.#open.size <= this.#max) return;
    for (const other of this.#open.keys()) {
      if (this.#open.size <= this.#max) break;
      if (other === keep || !other.park()) continue;
      this.#open.delete(other);
      // Marked used again, it must be put back in the map: no longer the most recent.
      if (other === this.#last) this.#last = undefined;
    }
  }

  /** Forgets an inbox whose segment was closed (the inbox closed). */
  closed(inbox: Parkable): void {
    this.#open.delete(inbox);
    if (this.#last === inbox) this.#last = undefined;
  }
}

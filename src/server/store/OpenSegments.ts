/** An inbox whose segment file can be closed while idle and opened again when next used. */
export interface Parkable {
  /** Closes the open segment file if the inbox is idle enough to; false if it is busy (rolling to a new segment). */
  park(): boolean;
  /** When it was last used, on {@link OpenSegments}' clock (kept by it). */
  segmentUsedAt: number;
  /** Whether {@link OpenSegments} counts its file as open (kept by it). */
  segmentCounted: boolean;
}

/**
 * Keeps at most `max` inbox segment files open across every inbox of a
 * store: each inbox marks its segment used when it writes, and the least
 * recently used ones beyond `max` are closed, to be opened again on their
 * next write. A server that has seen tens of thousands of agents then holds
 * a bounded number of file descriptors, not one per agent.
 *
 * Marking a use is two field writes (every append and ack does it); the
 * search for the least recently used happens only when a file beyond `max`
 * is opened, where it costs far less than the opening.
 */
/** Busy inboxes met in one search before it gives up until the next use or `idle()`. */
const MAX_REFUSED = 4;

export class OpenSegments {
  readonly #max: number;
  /** Inboxes with an open segment. */
  readonly #open = new Set<Parkable>();
  #clock = 0;

  constructor(max: number) {
    this.#max = max;
  }

  /** How many segment files are open. */
  get size(): number {
    return this.#open.size;
  }

  /** Marks the inbox's open segment used just now, closing the least recently used others beyond `max`. */
  used(inbox: Parkable): void {
    inbox.segmentUsedAt = ++this.#clock;
    if (inbox.segmentCounted) return;
    inbox.segmentCounted = true;
    this.#open.add(inbox);
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

  /** Forgets an inbox whose segment was closed (the inbox closed). */
  closed(inbox: Parkable): void {
    this.#open.delete(inbox);
    inbox.segmentCounted = false;
  }

  /**
   * Closes the least recently used files beyond `max`, sparing `keep` and
   * those busy. A busy one is stamped as used now, so the next search does
   * not meet it first again; a few busy ones in a row end the search (the
   * excess is closed when they are idle again), so a use never costs more
   * than a few passes over the set.
   */
  #shrink(keep: Parkable): void {
    for (let refused = 0; this.#open.size > this.#max && refused < MAX_REFUSED; ) {
      let oldest: Parkable | undefined;
      for (const other of this.#open) {
        if (other !== keep && (oldest === undefined || other.segmentUsedAt < oldest.segmentUsedAt)) oldest = other;
      }
      if (oldest === undefined) return;
      if (oldest.park()) {
        this.#open.delete(oldest);
        oldest.segmentCounted = false;
      } else {
        oldest.segmentUsedAt = ++this.#clock;
        refused++;
      }
    }
  }
}

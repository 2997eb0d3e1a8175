import type { AnyEventObject } from 'xstate';

/** What a {@link Timer} calls when it fires. */
export interface TimerOwner {
  timerFired(timer: Timer): void;
}

/** Node's longest timeout: longer (or not a number, or under 1 ms) runs after 1 ms, as `setTimeout` does. */
const TIMEOUT_MAX = 2 ** 31 - 1;

/**
 * A delayed event of a lean actor: which owner gets it, under which id, and
 * when (`performance.now()` milliseconds). Linked into its delay's list while
 * it runs; {@link stopTimer} unlinks it.
 */
export class Timer {
  prev: Timer | undefined = undefined;
  next: Timer | undefined = undefined;
  list: TimerList | undefined;

  constructor(
    readonly at: number,
    readonly owner: TimerOwner,
    readonly id: string,
    readonly event: AnyEventObject,
    list: TimerList,
  ) {
    this.list = list;
  }
}

/**
 * The running timers of one delay, in the order they fire: each is added at
 * the tail (the clock only moves on, and the delay is the same), so the head
 * is always the next due. One Node timer per list, set to fire no later than
 * the head is due (a cancelled head leaves it set for its own time).
 */
class TimerList {
  head: Timer | undefined = undefined;
  tail: Timer | undefined = undefined;
  #handle: NodeJS.Timeout | undefined = undefined;
  /** Set while {@link #fire} runs the timers due: it arms the Node timer for what is left as it ends. */
  #firing = false;

  constructor(readonly delay: number) {}

  add(owner: TimerOwner, id: string, event: AnyEventObject): Timer {
    const timer = new Timer(performance.now() + this.delay, owner, id, event, this);
    const tail = this.tail;
    timer.prev = tail;
    if (tail) tail.next = timer;
    else this.head = timer;
    this.tail = timer;
    // The first of an empty list is the head; otherwise the head's Node timer is armed already.
    if (tail === undefined && !this.#firing) this.#arm(this.delay);
    return timer;
  }

  remove(timer: Timer): void {
    const { prev, next } = timer;
    if (prev) prev.next = next;
    else this.head = next;
    if (next) next.prev = prev;
    else this.tail = prev;
    timer.prev = timer.next = timer.list = undefined;
    if (this.head !== undefined) return;
    // A cancelled head leaves its Node timer armed: it fires early for the next one, which re-arms
    // it. Only an empty list clears it, so that nothing keeps the process alive, and is forgotten.
    if (this.#handle !== undefined) clearTimeout(this.#handle);
    this.#handle = undefined;
    if (lists.get(this.delay) === this) lists.delete(this.delay);
  }

  #arm(ms: number): void {
    this.#handle = setTimeout(this.#fire, Math.min(TIMEOUT_MAX, Math.max(1, ms)));
  }

  /**
   * Fires the timers due when it starts, in order, back to back (as xstate's `SimulatedClock`
   * fires them, not with Node's drain of promise callbacks between them); those started
   * meanwhile wait for a later turn of the event loop, as Node's do, however long the firing takes.
   * Then arms the Node timer for the next.
   */
  readonly #fire = (): void => {
    this.#handle = undefined;
    this.#firing = true;
    const due = performance.now();
    try {
      // A timer started from here is due a millisecond or more after `due`: never in this run.
      for (let timer = this.head; timer !== undefined && timer.at <= due; timer = this.head) {
        this.remove(timer);
        timer.owner.timerFired(timer);
      }
    } finally {
      this.#firing = false;
      // Node's timers count whole milliseconds of the event loop's clock, and can run up to one
      // early by this one: a head not yet due is waited for, never fired early.
      if (this.head !== undefined && this.#handle === undefined) this.#arm(Math.ceil(this.head.at - performance.now()));
    }
  };
}

/** The lists with timers running, by delay. */
const lists = new Map<number, TimerList>();

/**
 * Starts a timer that calls `owner.timerFired` once `delay` milliseconds have
 * passed: what `setTimeout` would do for a lean actor's delayed event, without
 * a Node timer per event. A message in flight has an ack timeout running, and
 * a send window of them (1,000 by default) is in flight under load: a Node
 * `Timeout` per message (with its async ids, its closure and its place in
 * Node's lists) cost 3% of the sender's time and lived as long as the message. Timers of one delay share
 * a list and one Node timer. Unlike `setTimeout`'s, a firing runs in the
 * async context (`AsyncLocalStorage`) of the call that armed its list.
 */
export function startTimer(delay: number, owner: TimerOwner, id: string, event: AnyEventObject): Timer {
  // As `setTimeout` takes its delay.
  const after = Number(delay);
  const ms = after >= 1 && after <= TIMEOUT_MAX ? after : 1;
  let list = lists.get(ms);
  if (list === undefined) {
    list = new TimerList(ms);
    lists.set(ms, list);
  }
  return list.add(owner, id, event);
}

/** Stops a timer that has not fired (stopping it again, or once fired, does nothing). */
export function stopTimer(timer: Timer): void {
  timer.list?.remove(timer);
}

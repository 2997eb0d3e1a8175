import type { AnyEventObject, AnyStateMachine, StateValue } from 'xstate';
import type { Clock } from '../Clock.js';
import { compileMachine, type CompiledMachine, type CompiledState, type PromiseCreator, type Step, type StepArgs } from './compileMachine.js';
import { contextCopier } from './copyContext.js';
import { startTimer, stopTimer, type Timer, type TimerOwner } from './TimerLists.js';

/** The part of an XState actor's snapshot the client reads. */
export interface LeanSnapshot<TContext> {
  readonly value: StateValue;
  readonly context: TContext;
  readonly status: 'active' | 'done' | 'stopped';
  matches(value: string): boolean;
}

class Snapshot<TContext> implements LeanSnapshot<TContext> {
  constructor(
    readonly state: CompiledState,
    readonly context: TContext,
    readonly status: 'active' | 'done' | 'stopped',
  ) {}

  get value(): StateValue {
    return this.state.value;
  }

  /** Like XState's `matches` for a state given by its dotted path (`'inFlight'`, `'inFlight.sending'`). */
  matches(value: string): boolean {
    const path = this.state.path;
    if (!value.includes('.')) return path[0] === value;
    return value.split('.').every((key, i) => path[i] === key);
  }
}

/** What `subscribe` returns: one small object, where a closure per subscription lives as long as its actor. */
class Subscription {
  readonly #observers: unknown[];
  readonly #observer: unknown;

  constructor(observers: unknown[], observer: unknown) {
    this.#observers = observers;
    this.#observer = observer;
  }

  unsubscribe(): void {
    const i = this.#observers.indexOf(this.#observer);
    if (i >= 0) this.#observers.splice(i, 1);
  }
}

/** Options of a {@link LeanActor}: those of `createActor` that the client uses. */
export interface LeanActorOptions<TInput> {
  id?: string | undefined;
  input?: TInput | undefined;
  /** Start from this state and context instead of the initial one (no entry actions run, as for a restored XState snapshot). */
  snapshot?: { value: StateValue; context: unknown } | undefined;
  /** Where delayed transitions' timers run. @default real time (see `TimerLists.ts`) */
  clock?: Clock | undefined;
}

/**
 * Runs one instance of a machine from its compiled tables
 * ({@link compileMachine}): the same states, guards, actions, context and
 * delayed transitions as an XState actor of that machine, in the same order,
 * with the actor interface the client uses (`start`, `send`, `stop`,
 * `getSnapshot`, `subscribe`), at a fraction of the cost per event. Events
 * sent while one is processed wait their turn, as in XState's mailbox;
 * subscribers see the snapshot after every event (and on start); a final
 * state completes the actor and later events are ignored.
 *
 * It emits no inspection events: the client runs real XState actors when
 * an inspector or the flight recorder is attached.
 */
export class LeanActor<TContext = any, TEvent extends AnyEventObject = AnyEventObject, TInput = unknown> implements TimerOwner {
  readonly id: string;
  readonly #machine: CompiledMachine;
  /** The clock given, or none: real time, on the shared timer lists. */
  readonly #clock: Clock | undefined;
  #snapshot: Snapshot<TContext>;
  #started = false;
  #processing = false;
  // Created when first needed: most lifecycles never queue an event or run a timer at once,
  // and tens of thousands of them may rest at a time.
  #mailbox: AnyEventObject[] | undefined;
  /** Created with the first subscriber, at its size (a lifecycle has one). */
  #observers: Array<(snapshot: LeanSnapshot<TContext>) => void> | undefined;
  /** Running timers as `[id, handle, id, handle...]`: a machine has a few delayed transitions at most, and a Map per actor costs 200 bytes. */
  #timers: unknown[] | undefined;
  /** Side effects of the initial state, run by start(). */
  #deferred: Array<() => void> | undefined;
  /** Invoked promise actors still running, by id: stopping one aborts its signal, and its settlement is ignored. */
  #children: Map<string, AbortController> | undefined;
  /** Invocations of the transition being taken: started once it is complete, as XState defers them. */
  #toStart: Array<Extract<Step, { kind: 'invoke' }>> | undefined;

  constructor(machine: AnyStateMachine, options: LeanActorOptions<TInput> = {}) {
    this.#machine = compileMachine(machine);
    this.id = options.id ?? '';
    this.#clock = options.clock;
    if (options.snapshot) {
      const state = this.#machine.byPath.get(pathOf(options.snapshot.value));
      if (!state) throw new Error(`machine "${machine.id}" has no atomic state ${JSON.stringify(options.snapshot.value)}`);
      // As an XState actor restored from `resolveState`: no entry actions, no invoked actor running.
      this.#snapshot = new Snapshot(state, options.snapshot.context as TContext, state.final ? 'done' : 'active');
    } else {
      // As XState does: the initial snapshot (context, assigns) now, its side effects at start().
      const { machine: definition, initial } = this.#machine;
      const contextConfig = definition.config.context as unknown;
      const context = typeof contextConfig === 'function' ? (contextConfig as (a: unknown) => TContext)({ input: options.input, self: this }) : (contextConfig as TContext);
      if (initial.steps.length === 0 && !initial.target.final) {
        // Nothing to run on the way in (a message's lifecycle): no init event or list of effects to make.
        this.#snapshot = new Snapshot(initial.target, context, 'active');
      } else {
        const init = { type: 'xstate.init', input: options.input } as AnyEventObject;
        const deferred: Array<() => void> = [];
        this.#snapshot = this.#run(initial.steps, initial.target, context, init, deferred);
        if (deferred.length > 0) this.#deferred = deferred;
      }
    }
  }

  /**
   * Takes `event` in a lifecycle at rest in `snapshot` without an actor, when
   * it ends the lifecycle at once: the transition goes to a final state and
   * arms no timer. Its actions run as an actor's would (an event an action
   * sends to `self` is ignored, as by a completed actor). Returns the context
   * it ended with, or `undefined` (and runs nothing) when the event does not
   * end it that way: restore an actor for it then.
   */
  static finish<TContext>(machine: AnyStateMachine, snapshot: { value: StateValue; context: TContext }, event: AnyEventObject): TContext | undefined {
    const compiled = compileMachine(machine);
    const state = compiled.byPath.get(pathOf(snapshot.value));
    // A lifecycle already in a final state takes no event.
    const candidates = state && !state.final ? state.on.get(event.type) : undefined;
    if (!candidates) return undefined;
    const { context } = snapshot;
    for (const t of candidates) {
      if (t.guard && !t.guard({ context, event })) continue;
      if (!t.target.final || t.steps.some((step) => step.kind === 'schedule' || step.kind === 'invoke')) return undefined;
      return LeanActor.#applySteps(compiled, t.steps, context, event, undefined, undefined) as TContext;
    }
    return undefined;
  }

  getSnapshot(): LeanSnapshot<TContext> {
    return this.#snapshot;
  }

  subscribe(observer: (snapshot: LeanSnapshot<TContext>) => void): { unsubscribe(): void } {
    if (this.#observers === undefined) this.#observers = [observer];
    else this.#observers.push(observer);
    return new Subscription(this.#observers, observer);
  }

  /** Runs the initial state's entry actions (none for a restored snapshot), then tells subscribers. */
  start(): this {
    if (this.#started) return this;
    this.#started = true;
    this.#processing = true;
    const deferred = this.#deferred;
    this.#deferred = undefined;
    if (deferred) for (const effect of deferred) effect();
    this.#startChildren();
    this.#notify();
    this.#processing = false;
    this.#process(undefined);
    return this;
  }

  send(event: TEvent): void {
    if (this.#snapshot.status !== 'active') return;
    if (this.#started && !this.#processing && !this.#mailbox?.length) return this.#process(event);
    (this.#mailbox ??= []).push(event);
    if (this.#started && !this.#processing) this.#process(undefined);
  }

  /** Stops the actor: timers are cancelled and later events ignored (no exit actions run, as in XState). */
  stop(): this {
    this.#cancelAll();
    this.#toStart = undefined;
    this.#stopChildren();
    this.#mailbox = undefined;
    if (this.#snapshot.status === 'active') this.#snapshot = new Snapshot(this.#snapshot.state, this.#snapshot.context, 'stopped');
    return this;
  }

  /**
   * Handles `first` (given when nothing waits: it skips the mailbox, which
   * most actors then never need), then every event waiting or sent meanwhile
   * by actions and subscribers, in order.
   */
  #process(first: AnyEventObject | undefined): void {
    this.#processing = true;
    try {
      let event = first ?? this.#mailbox?.shift();
      while (event && this.#snapshot.status === 'active') {
        this.#snapshot = this.#transition(event);
        this.#startChildren();
        this.#notify();
        event = this.#mailbox?.shift();
      }
    } finally {
      this.#processing = false;
    }
  }

  #transition(event: AnyEventObject): Snapshot<TContext> {
    const { state, context } = this.#snapshot;
    const candidates = state.on.get(event.type);
    if (candidates) {
      const args = { context, event };
      for (const t of candidates) {
        if (t.guard && !t.guard(args)) continue;
        return this.#run(t.steps, t.target, context, event);
      }
    }
    // No enabled transition: the same snapshot, which subscribers still see (as in XState).
    return this.#snapshot;
  }

  /** Runs a microstep's actions in order; assigns change the context the following actions see. */
  #run(steps: readonly Step[], target: CompiledState, context: TContext, event: AnyEventObject, deferred?: Array<() => void>): Snapshot<TContext> {
    const ctx = LeanActor.#applySteps(this.#machine, steps, context, event, deferred, this) as TContext;
    if (target.final) {
      const complete = () => {
        this.#cancelAll();
        this.#stopChildren();
      };
      if (deferred) deferred.push(complete);
      else complete();
    }
    return new Snapshot(target, ctx, target.final ? 'done' : 'active');
  }

  /**
   * Runs a microstep's steps in order and returns the context they leave:
   * assigns make a new context that the following steps see; custom actions
   * and `actor`'s timers run now, or (with `deferred`, for an initial state)
   * once it starts; invocations start once the transition is complete.
   * Without an actor (see {@link LeanActor.finish}), schedule, cancel and
   * invoke steps do nothing.
   */
  static #applySteps(
    machine: CompiledMachine,
    steps: readonly Step[],
    context: unknown,
    event: AnyEventObject,
    deferred: Array<() => void> | undefined,
    actor: LeanActor | undefined,
  ): unknown {
    // Actions' `self`: the actor, or (finish) a lifecycle that has ended, which ignores events.
    const self: StepArgs['self'] = actor ?? FINISHED;
    let ctx = context;
    for (const step of steps) {
      switch (step.kind) {
        case 'assign': {
          const args: StepArgs = { context: ctx, event, self };
          const params = resolveParams(step.params, ctx, event);
          const a = step.assignment;
          // One copy per assign; every property sees the context from before it, as in XState.
          const next = copyOf(machine, ctx as object) as Record<string, unknown>;
          if (typeof a === 'function') {
            Object.assign(next, a(args, params));
          } else {
            for (const key in a as object) {
              const v = (a as Record<string, unknown>)[key];
              next[key] = typeof v === 'function' ? v(args, params) : v;
            }
          }
          ctx = next;
          break;
        }
        case 'custom': {
          const exec = step.exec;
          if (!exec) break;
          const args: StepArgs = { context: ctx, event, self };
          const params = resolveParams(step.params, ctx, event);
          if (deferred) deferred.push(() => exec(args, params));
          else exec(args, params);
          break;
        }
        case 'schedule': {
          if (!actor) break;
          const delay = actor.#delay(step.delay, ctx, event);
          if (deferred) deferred.push(() => actor.#schedule(step.id, step.event, delay));
          else actor.#schedule(step.id, step.event, delay);
          break;
        }
        case 'cancel':
          if (!actor) break;
          if (deferred) deferred.push(() => actor.#cancel(step.id));
          else actor.#cancel(step.id);
          break;
        case 'invoke':
          // Started once the transition is complete and the snapshot taken (start() for the initial state).
          if (actor) (actor.#toStart ??= []).push(step);
          break;
        case 'stopChild':
          if (!actor) break;
          if (deferred) deferred.push(() => actor.#stopChild(step.id));
          else actor.#stopChild(step.id);
          break;
      }
    }
    return ctx;
  }

  /**
   * Starts an invoked promise actor, as XState's `fromPromise` does: its
   * result comes back as `xstate.done.actor.{id}` (with `output`) or
   * `xstate.error.actor.{id}` (with `error`), unless it was stopped first.
   * The creator gets this actor as `self` (XState gives the child's own
   * actor) and no input or system.
   */
  #invoke(id: string, create: PromiseCreator): void {
    this.#stopChild(id);
    const controller = new AbortController();
    (this.#children ??= new Map()).set(id, controller);
    const settle = (event: AnyEventObject) => {
      if (this.#children?.get(id) !== controller) return;
      this.#children.delete(id);
      this.send(event as TEvent);
    };
    let promise: Promise<unknown>;
    try {
      promise = Promise.resolve(create({ input: undefined, self: this, signal: controller.signal, system: undefined, emit: () => {} }));
    } catch (err) {
      promise = Promise.reject(err);
    }
    promise.then(
      (output: unknown) => settle({ type: `xstate.done.actor.${id}`, output, actorId: id }),
      (error: unknown) => settle({ type: `xstate.error.actor.${id}`, error, actorId: id }),
    );
  }

  /** Starts the invocations of the transition just taken (unless a later step of it stopped them). */
  #startChildren(): void {
    const steps = this.#toStart;
    if (!steps) return;
    this.#toStart = undefined;
    if (this.#snapshot.status !== 'active') return;
    for (const step of steps) this.#invoke(step.id, step.create);
  }

  #stopChild(id: string): void {
    if (this.#toStart) this.#toStart = this.#toStart.filter((step) => step.id !== id);
    const controller = this.#children?.get(id);
    if (!controller) return;
    this.#children!.delete(id);
    controller.abort();
  }

  #stopChildren(): void {
    const children = this.#children;
    if (!children) return;
    this.#children = undefined;
    for (const controller of children.values()) controller.abort();
  }

  #schedule(id: string, event: AnyEventObject, delay: number): void {
    this.#cancel(id);
    const clock = this.#clock;
    const handle =
      clock === undefined
        ? startTimer(delay, this, id, event)
        : clock.setTimeout(() => {
            this.#remove(id);
            this.send(event as TEvent);
          }, delay);
    // An exact-size literal: a pushed-to empty array gets room for 17 (a lifecycle has one timer at a time).
    if (this.#timers === undefined) this.#timers = [id, handle];
    else this.#timers.push(id, handle);
  }

  /** A delayed event on real time is due (see {@link startTimer}). Not for callers: the timer lists call it. */
  timerFired(timer: Timer): void {
    this.#remove(timer.id);
    this.send(timer.event as TEvent);
  }

  #cancel(id: string): void {
    const handle = this.#remove(id);
    if (handle !== undefined) this.#stopTimer(handle);
  }

  #stopTimer(handle: unknown): void {
    if (this.#clock === undefined) stopTimer(handle as Timer);
    else this.#clock.clearTimeout(handle);
  }

  /** Forgets the timer `id`, returning its handle. */
  #remove(id: string): unknown {
    const timers = this.#timers;
    if (!timers) return undefined;
    for (let i = 0; i < timers.length; i += 2) {
      if (timers[i] !== id) continue;
      const handle = timers[i + 1];
      // The one timer (the common case) drops the list; splice would allocate an array of what it removed.
      if (timers.length === 2) this.#timers = undefined;
      else timers.splice(i, 2);
      return handle;
    }
    return undefined;
  }

  #cancelAll(): void {
    const timers = this.#timers;
    if (!timers) return;
    this.#timers = undefined;
    for (let i = 1; i < timers.length; i += 2) this.#stopTimer(timers[i]);
  }

  #delay(delay: number | string, context: unknown, event: AnyEventObject): number {
    if (typeof delay === 'number') return delay;
    const impl = this.#machine.delays[delay];
    return typeof impl === 'function' ? (impl as (a: unknown) => number)({ context, event }) : (impl as number);
  }

  #notify(): void {
    const snapshot = this.#snapshot;
    const observers = this.#observers;
    if (observers === undefined) return;
    for (const observer of observers) observer(snapshot);
  }
}

/** The `self` of actions run by {@link LeanActor.finish}: the lifecycle has ended, so events sent to it are ignored. */
const FINISHED: StepArgs['self'] = { send: () => {} };

/** A copy of the context, as `{ ...context }` makes it (by a faster route when the context is a plain one). */
function copyOf(machine: CompiledMachine, context: object): object {
  if (machine.copyContext === undefined) machine.copyContext = contextCopier(Object.keys(context)) ?? null;
  return machine.copyContext?.(context) ?? { ...context };
}

function resolveParams(params: unknown, context: unknown, event: AnyEventObject): unknown {
  return typeof params === 'function' ? (params as (a: unknown) => unknown)({ context, event }) : params;
}

function pathOf(value: StateValue): string {
  if (typeof value === 'string') return value;
  const keys: string[] = [];
  let v: StateValue = value;
  while (typeof v === 'object') {
    const [key, child] = Object.entries(v)[0] ?? [];
    if (key === undefined) break;
    keys.push(key);
    v = child as StateValue;
  }
  if (typeof v === 'string') keys.push(v);
  return keys.join('.');
}

import { createActor, type AnyStateMachine, type ContextFrom, type EventFromLogic, type InputFrom, type InspectionEvent, type SnapshotFrom } from 'xstate';
import type { Clock } from '../Clock.js';
import { UnsupportedMachineError } from './compileMachine.js';
import { LeanActor } from './LeanActor.js';

/** What the client reads of a lifecycle's snapshot (XState's and the lean actor's alike). */
export interface LifecycleSnapshot<TMachine extends AnyStateMachine> {
  readonly value: SnapshotFrom<TMachine>['value'];
  readonly context: ContextFrom<TMachine>;
  readonly status: 'active' | 'done' | 'stopped' | 'error';
  matches(value: string): boolean;
}

/** One item's statechart, as the outbox and the pending queue drive it. */
export interface Lifecycle<TMachine extends AnyStateMachine> {
  readonly id: string;
  start(): unknown;
  send(event: EventFromLogic<TMachine>): void;
  stop(): unknown;
  getSnapshot(): LifecycleSnapshot<TMachine>;
  subscribe(observer: (snapshot: LifecycleSnapshot<TMachine>) => void): unknown;
}

export interface LifecycleOptions<TMachine extends AnyStateMachine> {
  id: string;
  input?: InputFrom<TMachine>;
  /** Resume in this state with this context (no entry actions run). */
  restore?: { value: SnapshotFrom<TMachine>['value']; context: ContextFrom<TMachine> };
  clock?: Clock | undefined;
  /** With an inspector (or the flight recorder) the lifecycle is a real XState actor it can see. */
  inspect?: ((event: InspectionEvent) => void) | undefined;
}

/**
 * Creates the actor that runs one item's lifecycle (one outgoing message,
 * one claimed pending message). There can be 100k of them, so by default it
 * is a {@link LeanActor}: the same machine, compiled to tables, about 20x
 * cheaper per message than an XState actor. When something inspects the
 * client it is a real XState actor instead, so inspectors and the flight
 * recorder see every lifecycle; both behave identically (a test walks both).
 * A machine {@link compileMachine} refuses runs as an XState actor too.
 */
export function createLifecycle<TMachine extends AnyStateMachine>(logic: TMachine, options: LifecycleOptions<TMachine>): Lifecycle<TMachine> {
  const { id, input, restore, clock, inspect } = options;
  if (inspect) return xstateActor(logic, options);
  if (!needsXState.has(logic)) {
    try {
      // Options passed as they are (undefined ones included): this runs once per message.
      return new LeanActor(logic, { id, input, snapshot: restore, clock }) as unknown as Lifecycle<TMachine>;
    } catch (err) {
      // A machine beyond what compileMachine runs still works, as an XState actor (tests keep ours within it).
      if (!(err instanceof UnsupportedMachineError)) throw err;
      needsXState.add(logic);
    }
  }
  return xstateActor(logic, options);
}

function xstateActor<TMachine extends AnyStateMachine>(logic: TMachine, options: LifecycleOptions<TMachine>): Lifecycle<TMachine> {
  const { id, input, restore, clock, inspect } = options;
  return createActor(logic, {
    id,
    ...(input === undefined ? {} : { input }),
    ...(restore ? { snapshot: logic.resolveState(restore as never) } : {}),
    ...(clock ? { clock } : {}),
    ...(inspect ? { inspect } : {}),
  } as never) as unknown as Lifecycle<TMachine>;
}

/** Machines {@link compileMachine} refused: their lifecycles are XState actors. */
const needsXState = new WeakSet<AnyStateMachine>();

/**
 * Takes `event` in a lifecycle at rest in `restore` when that event ends it
 * (a final state, no timer), without creating an actor: the actions run as
 * an actor's would. Returns the context it ended with, or `undefined`, having
 * run nothing, when an actor is needed: when something inspects the client
 * (inspectors see every lifecycle as an actor), or when the event does not
 * end the lifecycle at once.
 */
export function finishLifecycle<TMachine extends AnyStateMachine>(
  logic: TMachine,
  restore: { value: SnapshotFrom<TMachine>['value']; context: ContextFrom<TMachine> },
  event: EventFromLogic<TMachine>,
  inspect: ((event: InspectionEvent) => void) | undefined,
): ContextFrom<TMachine> | undefined {
  if (inspect || needsXState.has(logic)) return undefined;
  try {
    return LeanActor.finish(logic, restore, event);
  } catch (err) {
    if (!(err instanceof UnsupportedMachineError)) throw err;
    needsXState.add(logic);
    return undefined;
  }
}

import { fromPromise, type AnyEventObject, type AnyStateMachine, type StateValue } from 'xstate';
import type { ContextCopier } from './copyContext.js';

type StateNode = AnyStateMachine['root'];
type TransitionDefinition = ReturnType<StateNode['transitions']['get']> extends (infer T)[] | undefined ? T : never;

/** Arguments XState hands to guards, assigners and custom actions (what these machines use of them). */
export interface StepArgs {
  context: any;
  event: AnyEventObject;
  self: { send(event: AnyEventObject): void };
}

/** One action of a compiled transition, in the order XState runs them. */
export type Step =
  | { kind: 'custom'; name: string; exec: ((args: StepArgs, params: unknown) => void) | undefined; params: unknown }
  | { kind: 'assign'; name: string; assignment: unknown; params: unknown }
  /** A delayed transition's timer (`after`): an event sent to the actor itself after `delay`. */
  | { kind: 'schedule'; id: string; event: AnyEventObject; delay: number | string }
  | { kind: 'cancel'; id: string }
  /** An invoked promise actor (`fromPromise`), started on entry: its settlement comes back as `xstate.done.actor.{id}` or `xstate.error.actor.{id}`. */
  | { kind: 'invoke'; id: string; create: PromiseCreator }
  /** The invoked actor `id` stops (its state is left): a later settlement is ignored. */
  | { kind: 'stopChild'; id: string };

/** What `fromPromise` wraps: called with the invocation's arguments, returns the promise. */
export type PromiseCreator = (args: { input: unknown; self: StepArgs['self']; signal: AbortSignal; system: undefined; emit: () => void }) => unknown;

/** A transition out of one atomic state, with every action of the microstep flattened in order. */
export interface CompiledTransition {
  guard: ((args: { context: any; event: AnyEventObject }) => boolean) | undefined;
  /** Exit actions (innermost first), transition actions, entry actions (outermost first). */
  steps: Step[];
  /** The atomic state it ends in. */
  target: CompiledState;
}

/** An atomic state: the only kind of state an actor of a compiled machine rests in. */
export interface CompiledState {
  id: string;
  /** Keys from the root down, e.g. `['inFlight', 'sending']`. */
  path: string[];
  /** The snapshot value XState reports for it, e.g. `{ inFlight: 'sending' }`. */
  value: StateValue;
  /** A final child of the root: entering it completes the actor. */
  final: boolean;
  /** Candidate transitions by event type, from this state up to the root, in XState's priority order. */
  on: Map<string, CompiledTransition[]>;
}

/** A machine compiled for {@link LeanActor}. */
export interface CompiledMachine {
  machine: AnyStateMachine;
  /** Entry actions of the initial configuration (and the state it rests in). */
  initial: { steps: Step[]; target: CompiledState };
  states: Map<string, CompiledState>;
  /** Atomic states by their dotted path (`inFlight.sending`). */
  byPath: Map<string, CompiledState>;
  delays: Record<string, unknown>;
  /**
   * Copies the context for an assign, made from the keys of the first
   * context copied (see {@link contextCopier}); null when it cannot be made,
   * undefined until then.
   */
  copyContext: ContextCopier | null | undefined;
}

/** The machine uses a statechart feature {@link compileMachine} does not run. */
export class UnsupportedMachineError extends Error {
  constructor(machineId: string, what: string) {
    super(`machine "${machineId}" cannot be compiled: ${what} is not supported (run it as an XState actor)`);
    this.name = 'UnsupportedMachineError';
  }
}

const compiled = new WeakMap<AnyStateMachine, CompiledMachine>();

/**
 * Compiles a machine definition into flat transition tables: for every
 * atomic state and event, the candidate transitions in priority order, each
 * with its guard and the full, ordered list of actions its microstep runs
 * (exit, transition, entry, and the exit actions XState runs on completion).
 * It follows XState v5's algorithm (transition domain, exit and entry sets,
 * document order) for the subset these machines use: compound and atomic
 * states, final children of the root, named guards, assign and custom
 * actions, and delayed transitions. Anything else (parallel or history
 * states, invoke of anything but a promise actor, always, spawned or messaged actors, raise without delay,
 * guard combinators) throws {@link UnsupportedMachineError}, so a machine
 * that outgrows the subset fails loudly instead of behaving differently.
 * The result is cached per machine (each `.provide()` is a new machine).
 */
export function compileMachine(machine: AnyStateMachine): CompiledMachine {
  // The lookup on its own: every actor created asks, and a function with closures allocates
  // their context as it is entered, before any early return (126 bytes a call here).
  return compiled.get(machine) ?? compileNew(machine);
}

function compileNew(machine: AnyStateMachine): CompiledMachine {
  const unsupported = (what: string) => new UnsupportedMachineError(machine.id, what);
  const root = machine.root;
  const atomic: StateNode[] = [];
  const visit = (node: StateNode) => {
    if (node.type === 'parallel' || node.type === 'history') throw unsupported(`${node.type} state "${node.id}"`);
    for (const def of node.invoke) promiseCreatorOf(machine, def, unsupported);
    if (node.always && node.always.length > 0) throw unsupported(`always in "${node.id}"`);
    if (node.type === 'final' && node.parent !== root) throw unsupported(`nested final state "${node.id}"`);
    if (node.type === 'compound' && node.initial.actions.length > 0) throw unsupported(`initial actions in "${node.id}"`);
    if (node.transitions.has('*')) throw unsupported(`wildcard transition in "${node.id}"`);
    if (node.type === 'atomic' || node.type === 'final') atomic.push(node);
    for (const child of Object.values(node.states)) visit(child);
  };
  visit(root);

  const stepsOf = (actions: readonly unknown[]) => actions.map((a) => compileAction(machine, a, unsupported));
  // As XState orders them: a state's entry actions, then its invocations start; on exit, its exit actions, then they stop.
  const entering = (node: StateNode): Step[] => [
    ...stepsOf(node.entry),
    ...node.invoke.map((def): Step => ({ kind: 'invoke', id: def.id, create: promiseCreatorOf(machine, def, unsupported) })),
  ];
  const exiting = (node: StateNode): Step[] => [...stepsOf(node.exit), ...node.invoke.map((def): Step => ({ kind: 'stopChild', id: def.id }))];
  const states = new Map<string, CompiledState>();
  const stateOf = (node: StateNode) => states.get(node.id)!;
  for (const node of atomic) {
    const path = node.path;
    states.set(node.id, { id: node.id, path, value: valueOf(path), final: node.type === 'final', on: new Map() });
  }

  /** Entering `node` by default: itself, then its initial descendants down to an atomic state. */
  const enterDown = (node: StateNode): StateNode[] => {
    const entered = [node];
    let current = node;
    while (current.type === 'compound') {
      current = current.initial.target[0]!;
      entered.push(current);
    }
    return entered;
  };

  /** Exit actions run when the machine completes: every state still active, innermost first. */
  const completion = (leaf: StateNode): Step[] => (leaf.type === 'final' ? ancestorsOrSelf(leaf).flatMap(exiting) : []);

  const microstep = (leaf: StateNode, t: TransitionDefinition): CompiledTransition => {
    const guard = compileGuard(machine, t.guard, unsupported);
    const actions = stepsOf(t.actions);
    const targets = t.target;
    if (!targets || targets.length === 0) return { guard, steps: actions, target: stateOf(leaf) };
    if (targets.length > 1) throw unsupported(`multiple targets from "${t.source.id}"`);
    const target = targets[0]!;
    const domain = transitionDomain(t.source, target, t.reenter);
    if (!domain) throw unsupported(`a transition from "${t.source.id}" with no domain`);
    const exits = ancestorsOrSelf(leaf).filter((s) => isDescendant(s, domain));
    const above = ancestorsOrSelf(target).filter((s) => s !== target && isDescendant(s, domain)).reverse();
    const entries = [...above, ...enterDown(target)];
    const end = entries.at(-1)!;
    return {
      guard,
      steps: [...exits.flatMap(exiting), ...actions, ...entries.flatMap(entering), ...completion(end)],
      target: stateOf(end),
    };
  };

  for (const node of atomic) {
    const state = stateOf(node);
    for (const source of ancestorsOrSelf(node)) {
      for (const [eventType, list] of source.transitions) {
        // The innermost state with an enabled transition wins: inner candidates come first.
        const candidates = state.on.get(eventType) ?? [];
        for (const t of list) candidates.push(microstep(node, t));
        state.on.set(eventType, candidates);
      }
    }
  }

  const start = enterDown(root);
  const result: CompiledMachine = {
    machine,
    initial: { steps: [...start.flatMap(entering), ...completion(start.at(-1)!)], target: stateOf(start.at(-1)!) },
    states,
    byPath: new Map([...states.values()].map((s) => [s.path.join('.'), s])),
    delays: machine.implementations.delays as Record<string, unknown>,
    copyContext: undefined,
  };
  compiled.set(machine, result);
  return result;
}

type InvokeDefinition = StateNode['invoke'][number];

/** The source of the transition function of every `fromPromise` logic (the same closure each time). */
const PROMISE_TRANSITION = fromPromise(async () => undefined).transition.toString();

/**
 * The promise creator of an invocation: only promise actors (`fromPromise`)
 * named in the machine's implementations, without input or snapshot
 * listeners, are run.
 */
function promiseCreatorOf(machine: AnyStateMachine, def: InvokeDefinition, unsupported: (what: string) => Error): PromiseCreator {
  const logic = typeof def.src === 'string' ? (machine.implementations.actors as Record<string, { config?: unknown; transition?: unknown } | undefined>)[def.src] : undefined;
  // XState does not tag its logic kinds; a `fromPromise` logic is told by its transition function's source.
  if (typeof logic?.config !== 'function' || typeof logic.transition !== 'function' || logic.transition.toString() !== PROMISE_TRANSITION) {
    throw unsupported(`invoke of "${String(def.src)}" (only promise actors are run)`);
  }
  const config = logic.config;
  if (def.input !== undefined || def.onSnapshot !== undefined || def.systemId !== undefined) throw unsupported(`input, onSnapshot or systemId on invoke "${def.id}"`);
  return config as PromiseCreator;
}

function ancestorsOrSelf(node: StateNode): StateNode[] {
  const list: StateNode[] = [];
  for (let n: StateNode | undefined = node; n; n = n.parent) list.push(n);
  return list;
}

/** Whether `node` is a proper descendant of `ancestor`. */
function isDescendant(node: StateNode, ancestor: StateNode): boolean {
  for (let n = node.parent; n; n = n.parent) if (n === ancestor) return true;
  return false;
}

/** XState's transition domain: the source itself for a transition into it that does not reenter, else the least common compound ancestor. */
function transitionDomain(source: StateNode, target: StateNode, reenter: boolean): StateNode | undefined {
  if (!reenter && (target === source || isDescendant(target, source))) return source;
  for (let a = source.parent; a; a = a.parent) if (target === a || isDescendant(target, a)) return a;
  return reenter ? undefined : source.machine.root;
}

function valueOf(path: readonly string[]): StateValue {
  let value: StateValue = path.at(-1)!;
  for (let i = path.length - 2; i >= 0; i--) value = { [path[i]!]: value };
  return value;
}

type BuiltinAction = ((...args: unknown[]) => unknown) & {
  type?: string;
  assignment?: unknown;
  event?: unknown;
  id?: unknown;
  delay?: unknown;
  sendId?: unknown;
  resolve?: unknown;
};

function compileAction(machine: AnyStateMachine, action: unknown, unsupported: (what: string) => Error): Step {
  if (typeof action === 'function') {
    const builtin = action as BuiltinAction;
    switch (builtin.type) {
      case 'xstate.assign':
        return { kind: 'assign', name: 'assign', assignment: builtin.assignment, params: undefined };
      case 'xstate.raise': {
        const event = builtin.event as AnyEventObject | undefined;
        if (builtin.delay === undefined) throw unsupported('raise without a delay');
        if (typeof event !== 'object' || typeof builtin.id !== 'string') throw unsupported('a raise with a computed event or id');
        if (typeof builtin.delay !== 'number' && typeof builtin.delay !== 'string') throw unsupported('a computed delay');
        return { kind: 'schedule', id: builtin.id, event, delay: builtin.delay };
      }
      case 'xstate.cancel':
        if (typeof builtin.sendId !== 'string') throw unsupported('a computed cancel id');
        return { kind: 'cancel', id: builtin.sendId };
    }
    if ('resolve' in builtin) throw unsupported(`the built-in action ${String(builtin.type)}`);
    return { kind: 'custom', name: builtin.name || '(inline)', exec: builtin as (args: StepArgs, params: unknown) => void, params: undefined };
  }
  const { type, params } = typeof action === 'string' ? { type: action, params: undefined } : (action as { type: string; params?: unknown });
  const impl = (machine.implementations.actions as Record<string, BuiltinAction | undefined>)[type];
  if (impl?.type === 'xstate.assign') return { kind: 'assign', name: type, assignment: impl.assignment, params };
  if (impl && 'resolve' in impl) throw unsupported(`the built-in action ${String(impl.type)} ("${type}")`);
  // A named action without an implementation does nothing, as in XState.
  return { kind: 'custom', name: type, exec: impl as ((args: StepArgs, params: unknown) => void) | undefined, params };
}

function compileGuard(machine: AnyStateMachine, guard: unknown, unsupported: (what: string) => Error): CompiledTransition['guard'] {
  if (guard === undefined) return undefined;
  type GuardFn = ((args: unknown, params: unknown) => boolean) & { check?: unknown };
  if (typeof guard === 'function') {
    if ('check' in guard) throw unsupported('guard combinators');
    return (args) => (guard as GuardFn)(args, undefined);
  }
  const { type, params } = typeof guard === 'string' ? { type: guard, params: undefined } : (guard as { type: string; params?: unknown });
  const impl = (machine.implementations.guards as Record<string, GuardFn | undefined>)[type];
  if (!impl) throw unsupported(`guard "${type}" without an implementation`);
  if ('check' in impl) throw unsupported('guard combinators');
  return (args) => impl(args, typeof params === 'function' ? (params as (a: unknown) => unknown)(args) : params);
}

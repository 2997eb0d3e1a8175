/**
 * Model-based testing of the statecharts against the real implementation.
 *
 * For a machine, @xstate/graph's getShortestPaths finds the shortest event path
 * to every reachable state; extending each by every event enabled there gives,
 * for every transition definition of the machine, the shortest path whose last
 * step takes it. Each such path is then executed against the real client, the
 * real reference server on loopback and real workspace files: every event is
 * caused for real (an API call, a fault injected by a proxy, a simulated clock
 * advanced, a peer acting), and after each step the harness checks that the
 * real actor took exactly the transition the model predicts (read from its
 * inspection events) and reached the same state, then lets the spec check the
 * files. What the real actors took is the coverage: every state and every
 * transition must be reached, or the suite fails.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { getShortestPaths } from '@xstate/graph';
import { afterAll, describe, expect, it } from 'vitest';
import { transition, type AnyActorRef, type AnyEventObject, type AnyStateMachine, type InspectionEvent, type StateValue } from 'xstate';
import { statePaths, transitionKey, transitionLabels } from '../../scripts/mermaid.js';

type Snapshot = ReturnType<AnyStateMachine['resolveState']>;

/** One transition a real actor took. */
export interface TraceEntry {
  actor: string;
  label: string;
  to: StateValue;
  event: AnyEventObject;
}

/**
 * Records, from inspection events, the transitions taken by the actors whose
 * id `matches`, labelled like `transitionLabels` labels the definitions.
 */
export class Trace {
  readonly entries: TraceEntry[] = [];
  readonly #machine: AnyStateMachine;
  readonly #matches: (actorId: string) => boolean;
  readonly #previous = new Map<string, Snapshot>();
  #listeners: Array<() => void> = [];

  constructor(machine: AnyStateMachine, matches: (actorId: string) => boolean) {
    this.#machine = machine;
    this.#matches = matches;
  }

  /** An inspection hook: pass it to the client's `inspect` option. */
  readonly inspect = (e: InspectionEvent): void => {
    if (e.type !== '@xstate.snapshot') return;
    const ref = e.actorRef as AnyActorRef;
    if (!this.#matches(ref.id)) return;
    const snapshot = e.snapshot as Snapshot;
    const previous = this.#previous.get(ref.sessionId);
    this.#previous.set(ref.sessionId, snapshot);
    if (!previous || e.event.type === 'xstate.init' || e.event.type === 'xstate.stop') return;
    for (const t of this.#machine.getTransitionData(previous, e.event)) {
      this.entries.push({ actor: ref.id, label: transitionKey(t), to: snapshot.value, event: e.event });
    }
    for (const l of this.#listeners) l();
  };

  /** Resolves when `test` holds, checking after every new entry; rejects after `timeoutMs`. */
  async until(test: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
    if (test()) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#listeners = this.#listeners.filter((l) => l !== check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`));
      }, timeoutMs);
      const check = () => {
        if (!test()) return;
        clearTimeout(timer);
        this.#listeners = this.#listeners.filter((l) => l !== check);
        resolve();
      };
      this.#listeners.push(check);
      // Events may be driven by real time (sockets, timers): poll too.
      const poll = setInterval(() => {
        if (!this.#listeners.includes(check)) return clearInterval(poll);
        check();
      }, 10);
    });
  }
}

/** A planned path: events from the initial state, the last of which takes `label`. */
export interface PlannedPath {
  label: string;
  variant: string;
  steps: Array<{ event: AnyEventObject; from: Snapshot; to: Snapshot; labels: string[] }>;
}

/** A way to start the machine: its input, and the events offered in each state. */
export interface Variant<TWorld> {
  name: string;
  input?: unknown;
  events: (snapshot: Snapshot) => AnyEventObject[];
  /** Sets up a fresh world (servers, clients, files) for one path of this variant. */
  setup: (path: PlannedPath) => Promise<TWorld>;
}

export interface ModelSpec<TWorld extends { trace: Trace; close(): Promise<void> }> {
  machine: AnyStateMachine;
  variants: Array<Variant<TWorld>>;
  /** States are the same when these strings are: the value plus whatever context the guards read. */
  serializeState: (snapshot: Snapshot) => string;
  /** Causes an event for real; `index` is the step's position in `path` (to look ahead). */
  exec: (world: TWorld, event: AnyEventObject, path: PlannedPath, index: number) => Promise<void>;
  /** Checks what the files say after a step (the state itself is checked by the harness). */
  verify?: (world: TWorld, expected: Snapshot) => Promise<void>;
  /** Real transitions that may happen between model steps without being part of the path (environment noise). */
  ignore?: (entry: TraceEntry) => boolean;
  stepTimeoutMs?: number;
}

/** Every transition definition of `machine`, each with the shortest path (over all variants) that ends by taking it. */
export function planPaths<TWorld>(machine: AnyStateMachine, variants: Array<Variant<TWorld>>, serializeState: (s: Snapshot) => string): PlannedPath[] {
  const best = new Map<string, PlannedPath>();
  for (const variant of variants) {
    // Only events some transition takes: an unhandled error event would put the model in an error state.
    const offered = (s: Snapshot) => variant.events(s).filter((e) => s.can(e));
    const statePaths = getShortestPaths(machine, {
      ...(variant.input === undefined ? {} : { input: variant.input }),
      events: offered,
      serializeState: (s: Snapshot) => `${s.status} ${serializeState(s)}`,
    } as never) as Array<{ state: Snapshot; steps: Array<{ event: AnyEventObject; state: Snapshot }> }>;
    for (const sp of statePaths) {
      const prefix: PlannedPath['steps'] = [];
      let from = initialOf(machine, variant.input);
      for (const step of sp.steps) {
        if (step.event.type === 'xstate.init') continue;
        prefix.push({ event: step.event, from, to: step.state, labels: machine.getTransitionData(from, step.event).map((t) => transitionKey(t)) });
        from = step.state;
      }
      if (sp.state.status !== 'active') continue;
      for (const event of offered(sp.state)) {
        const taken = machine.getTransitionData(sp.state, event);
        if (taken.length === 0) continue;
        const [to] = transition(machine, sp.state, event);
        const labels = taken.map((t) => transitionKey(t));
        const steps = [...prefix, { event, from: sp.state, to, labels }];
        for (const label of labels) {
          const known = best.get(label);
          if (!known || known.steps.length > steps.length) best.set(label, { label, variant: variant.name, steps });
        }
      }
    }
  }
  return [...best.values()].sort((a, b) => a.label.localeCompare(b.label));
}

function initialOf(machine: AnyStateMachine, input: unknown): Snapshot {
  const paths = getShortestPaths(machine, { ...(input === undefined ? {} : { input }), events: [] } as never) as Array<{ state: Snapshot }>;
  return paths[0]!.state;
}

/**
 * Registers one test per planned path and, after them, the coverage check:
 * every state and transition of the machine must have been reached by the
 * real implementation.
 */
export function modelTest<TWorld extends { trace: Trace; close(): Promise<void> }>(spec: ModelSpec<TWorld>): void {
  const { machine } = spec;
  const paths = planPaths(machine, spec.variants, spec.serializeState);
  const reached = new Map<string, Set<string>>();
  const note = (key: string, path: string) => {
    const set = reached.get(key) ?? new Set<string>();
    set.add(path);
    reached.set(key, set);
  };
  describe(`model: ${machine.id}`, () => {
    for (const path of paths) {
      const name = `${path.label}  [${path.variant}: ${path.steps.map((s) => s.event.type.replace(/^xstate\.after\.([^.]+)\..*$/, 'after $1')).join(' > ')}]`;
      it(name, async () => {
        const variant = spec.variants.find((v) => v.name === path.variant)!;
        const world = await variant.setup(path);
        try {
          let cursor = 0;
          for (const [i, step] of path.steps.entries()) {
            await spec.exec(world, step.event, path, i);
            const entries = world.trace.entries;
            await world.trace.until(
              () => {
                while (cursor < entries.length && spec.ignore?.(entries[cursor]!) && !step.labels.includes(entries[cursor]!.label)) cursor++;
                return cursor < entries.length;
              },
              spec.stepTimeoutMs ?? 5000,
              () => `step ${i + 1} (${step.event.type}) to take ${step.labels.join(' & ')}; real trace so far: ${entries.map((e) => e.label).join(' | ')}`,
            );
            const entry = entries[cursor]!;
            expect(entry.label, `step ${i + 1}: ${step.event.type}`).toBe(step.labels[0]);
            expect(entry.to, `state after step ${i + 1}`).toEqual(step.to.value);
            cursor += step.labels.length;
            // The real actor started in the path's first state, and is now in the step's target.
            if (i === 0) note(`state ${statePathOf(step.from.value)}`, name);
            note(`state ${statePathOf(step.to.value)}`, name);
            for (const label of step.labels) note(`transition ${label}`, name);
            await spec.verify?.(world, step.to);
          }
        } finally {
          await world.close();
        }
      });
    }
    afterAll(async () => {
      const states = statePaths(machine).map((s) => `state ${s}`);
      const transitions = transitionLabels(machine).map((t) => `transition ${t}`);
      // A compound state counts as reached when one of its children is.
      for (const key of [...reached.keys()]) {
        const parts = key.replace(/^state /, '').split('.');
        if (key.startsWith('state ')) for (let i = 1; i < parts.length; i++) note(`state ${parts.slice(0, i).join('.')}`, [...reached.get(key)!][0]!);
      }
      const lines = [`# ${machine.id}: ${paths.length} generated paths`, ''];
      for (const key of [...states, ...transitions]) {
        const by = reached.get(key);
        lines.push(`${by ? 'ok  ' : 'MISS'} ${key}${by ? `  (${by.size} path${by.size > 1 ? 's' : ''}, e.g. ${[...by][0]})` : ''}`);
      }
      const dir = fileURLToPath(new URL('../../.model-coverage/', import.meta.url));
      await mkdir(dir, { recursive: true });
      await writeFile(`${dir}${machine.id}.txt`, `${lines.join('\n')}\n`);
      const missing = [...states, ...transitions].filter((k) => !reached.has(k));
      expect(missing, `${machine.id}: unreached by the real implementation`).toEqual([]);
    });
  });
}

function statePathOf(value: StateValue): string {
  if (typeof value === 'string') return value;
  const [k, v] = Object.entries(value)[0]!;
  return `${k}.${statePathOf(v as StateValue)}`;
}

import { afterAll, expect } from 'vitest';
import type { AnyActorRef, AnyStateMachine, StateValue } from 'xstate';

/** Every state of a machine as a dotted path below the root, e.g. `session.online.pinging`. */
export function allStatePaths(machine: AnyStateMachine): string[] {
  const out: string[] = [];
  const walk = (node: AnyStateMachine['root'], prefix: string[]) => {
    for (const [key, child] of Object.entries(node.states)) {
      const path = [...prefix, key];
      out.push(path.join('.'));
      walk(child as AnyStateMachine['root'], path);
    }
  };
  walk(machine.root, []);
  return out;
}

/** The dotted paths of every state active in a state value. */
function activePaths(value: StateValue, prefix: string[] = []): string[] {
  if (typeof value === 'string') return [[...prefix, value].join('.')];
  return Object.entries(value).flatMap(([key, child]) => [[...prefix, key].join('.'), ...activePaths(child as StateValue, [...prefix, key])]);
}

/**
 * Records the states actors of `machine` enter during this test file and,
 * after it, asserts that every state was entered by some test.
 */
export function coverStates(machine: AnyStateMachine): (actor: AnyActorRef) => void {
  const seen = new Set<string>();
  afterAll(() => {
    const missing = allStatePaths(machine).filter((p) => !seen.has(p));
    expect(missing, `states of ${machine.id} never entered`).toEqual([]);
  });
  return (actor) => {
    const record = (value: StateValue) => activePaths(value).forEach((p) => seen.add(p));
    record(actor.getSnapshot().value);
    actor.subscribe((s: { value: StateValue }) => record(s.value));
  };
}

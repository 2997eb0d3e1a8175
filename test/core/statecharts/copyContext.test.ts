import { describe, expect, it } from 'vitest';
import { assign, createActor, setup } from 'xstate';
import { contextCopier } from '../../../src/core/statecharts/copyContext.js';
import { LeanActor } from '../../../src/core/statecharts/LeanActor.js';

describe('contextCopier', () => {
  const copy = contextCopier(['id', 'attempts', 'seq'])!;

  it('copies a plain context with exactly its keys into a new object, as the spread would', () => {
    const context = { id: 'm1', attempts: 2, seq: null };
    const copied = copy(context);
    expect(copied).toEqual({ ...context });
    expect(copied).not.toBe(context);
    expect(Object.keys(copied!)).toEqual(['id', 'attempts', 'seq']);
  });

  it('refuses anything the literal would copy differently, so the caller spreads instead', () => {
    expect(copy({ id: 'm1', attempts: 2 })).toBeUndefined();
    expect(copy({ id: 'm1', attempts: 2, seq: 1, extra: true })).toBeUndefined();
    expect(copy({ id: 'm1', attempts: 2, other: 1 })).toBeUndefined();
    expect(copy(Object.assign(Object.create(null), { id: 'm1', attempts: 2, seq: 1 }))).toBeUndefined();
    class Context {
      id = 'm1';
      attempts = 2;
      seq = 1;
    }
    expect(copy(new Context())).toBeUndefined();
  });

  it('is made only for identifier keys, and shared between equal key lists', () => {
    expect(contextCopier(['ok', 'not-an-identifier'])).toBeUndefined();
    expect(contextCopier([])).toBeUndefined();
    expect(contextCopier(['id', 'attempts', 'seq'])).toBe(copy);
  });
});

describe('LeanActor contexts whose shape changes', () => {
  // An assign may add a key the initial context lacks: later copies must keep it (the spread's route).
  const machine = setup({
    types: { context: {} as { count: number; note?: string }, events: {} as { type: 'NOTE' } | { type: 'COUNT' } },
  }).createMachine({
    context: { count: 0 },
    on: {
      NOTE: { actions: assign({ note: 'added' }) },
      COUNT: { actions: assign({ count: ({ context }) => context.count + 1 }) },
    },
  });

  it('matches XState event for event', () => {
    const lean = new LeanActor(machine).start();
    const real = createActor(machine).start();
    for (const type of ['COUNT', 'NOTE', 'COUNT', 'COUNT'] as const) {
      lean.send({ type });
      real.send({ type });
      expect(lean.getSnapshot().context).toEqual(real.getSnapshot().context);
    }
    expect(lean.getSnapshot().context).toEqual({ count: 3, note: 'added' });
  });
});

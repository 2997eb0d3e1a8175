import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { assign, createActor, fromPromise, setup, SimulatedClock, type AnyActorRef, type AnyEventObject, type AnyStateMachine, type InspectionEvent } from 'xstate';
import { connectionMachine } from '../../../machines/connection.js';
import { inboxMachine, type BatchResult } from '../../../machines/inbox.js';
import { messageMachine } from '../../../machines/message.js';
import { outboxMachine } from '../../../machines/outbox.js';
import { pendingItemMachine } from '../../../machines/pendingItem.js';
import { transitionKey, transitionLabels } from '../../../scripts/mermaid.js';
import { compileMachine, UnsupportedMachineError } from '../../../src/core/statecharts/compileMachine.js';
import { LeanActor } from '../../../src/core/statecharts/LeanActor.js';
import { createLifecycle } from '../../../src/core/statecharts/lifecycle.js';
import { random } from '../../helpers/random.js';

/*
 * The lean actor must be indistinguishable from an XState actor of the same
 * machine. Seeded random walks (every event offered in every state, timers
 * advanced at random) run both side by side; after every step the state,
 * status, context, the side effects run so far (with their params and the
 * context they saw) and the number of snapshots subscribers received must be
 * identical, and together the walks must take every transition of the machine.
 */

type Step = { event: AnyEventObject } | { tick: number };

interface Spec {
  machine: AnyStateMachine;
  /** Custom actions to record (the side effects src provides). */
  effects: string[];
  inputs: Array<() => unknown>;
  events: Array<() => AnyEventObject>;
  ticks: number[];
  /** An effect that sends its actor an event at once (re-entrancy), e.g. a socket written synchronously. */
  echo?: { effect: string; event: AnyEventObject };
}

const AT = '2026-01-01T00:00:00.000Z';

const specs: Spec[] = [
  {
    machine: messageMachine,
    effects: ['transmit', 'persistStatus'],
    inputs: [
      () => ({ id: 'm1', conversationId: 'a+b', to: 'b', maxAttempts: 3, ackTimeoutMs: 1000, expiresAt: null }),
      () => ({ id: 'm1', conversationId: 'a+b', to: 'b', maxAttempts: 2, ackTimeoutMs: 1000, expiresAt: Date.now() - 1 }),
      () => ({ id: 'm1', conversationId: 'a+b', to: 'b', maxAttempts: 2, ackTimeoutMs: 1000, expiresAt: Date.now() + 1500 }),
      () => ({ id: 'm1', conversationId: 'a+b', to: 'b', maxAttempts: 1, ackTimeoutMs: 1000, expiresAt: null }),
    ],
    events: [
      () => ({ type: 'DISPATCH' }),
      () => ({ type: 'SENT' }),
      () => ({ type: 'ACK', seq: 7, at: AT }),
      () => ({ type: 'NACK', code: 'inbox_full', message: 'full', retryable: true }),
      () => ({ type: 'NACK', code: 'too_large', message: 'big', retryable: false }),
      () => ({ type: 'NACK', code: 'unknown_recipient', message: 'who', retryable: false }),
      () => ({ type: 'CONNECTION_LOST' }),
      () => ({ type: 'RECEIPT', at: AT }),
      () => ({ type: 'CANCEL' }),
      () => ({ type: 'EXPIRE' }),
    ],
    ticks: [400, 1000, 2500],
    echo: { effect: 'transmit', event: { type: 'SENT' } },
  },
  {
    machine: pendingItemMachine,
    effects: ['persistClaim', 'persistExtend', 'persistRelease', 'persistAck'],
    inputs: [() => ({ id: 'p1' }), () => ({ id: 'p1', attempts: 4 })],
    events: [
      () => ({ type: 'CLAIM', leaseMs: 1000 }),
      () => ({ type: 'CLAIM', leaseMs: 3000 }),
      () => ({ type: 'RESUME_CLAIM', leaseUntil: Date.now() + 800 }),
      () => ({ type: 'EXTEND', leaseMs: 2000 }),
      () => ({ type: 'RELEASE' }),
      () => ({ type: 'ACK' }),
    ],
    ticks: [300, 900, 2100],
  },
  {
    machine: outboxMachine,
    effects: ['dispatch', 'abandonInflight'],
    inputs: [() => ({ window: 3 }), () => ({ window: 1 })],
    events: [
      () => ({ type: 'ONLINE' }),
      () => ({ type: 'OFFLINE' }),
      () => ({ type: 'QUEUE_CHANGED', queued: 0, inflight: 0 }),
      () => ({ type: 'QUEUE_CHANGED', queued: 5, inflight: 0 }),
      () => ({ type: 'QUEUE_CHANGED', queued: 5, inflight: 3 }),
      () => ({ type: 'QUEUE_CHANGED', queued: 1, inflight: 2 }),
      () => ({ type: 'THROTTLE', untilMs: Date.now() + 500 }),
      () => ({ type: 'THROTTLE', untilMs: Date.now() + 2000 }),
    ],
    ticks: [200, 700, 2500],
  },
];

interface Effect {
  name: string;
  params: unknown;
  context: unknown;
  event: string;
}

/** One side of the comparison: an actor whose effects and notifications are recorded. */
function side(spec: Spec, kind: 'xstate' | 'lean', input: unknown, echo: boolean, taken?: Set<string>) {
  const effects: Effect[] = [];
  const clock = new SimulatedClock();
  const logic = spec.machine.provide({
    actions: Object.fromEntries(
      spec.effects.map((name) => [
        name,
        ({ context, event, self }: { context: unknown; event: AnyEventObject; self: { send(e: AnyEventObject): void } }, params: unknown) => {
          effects.push({ name, params, context: structuredClone(context), event: event.type });
          if (echo && spec.echo?.effect === name) self.send(spec.echo.event);
        },
      ]),
    ),
  });
  const started = startSide(logic, kind, input, clock, taken);
  return {
    actor: started.actor,
    clock,
    effects,
    get notifications() {
      return started.notifications;
    },
  };
}

/**
 * Starts one side's actor (XState, recording the transitions it takes into
 * `taken`, or lean) with a subscriber that counts the snapshots it gets.
 */
function startSide(logic: AnyStateMachine, kind: 'xstate' | 'lean', input: unknown, clock: SimulatedClock, taken?: Set<string>) {
  let notifications = 0;
  let previous: unknown;
  const inspect = (e: InspectionEvent) => {
    if (e.type !== '@xstate.snapshot' || (e.actorRef as AnyActorRef) !== actor) return;
    if (previous && taken) for (const t of logic.getTransitionData(previous as never, e.event as never)) taken.add(transitionKey(t));
    previous = e.snapshot;
  };
  const actor: { start(): unknown; send(e: AnyEventObject): void; getSnapshot(): { value: unknown; context: unknown; status: string }; subscribe(fn: () => void): unknown } =
    kind === 'xstate' ? (createActor(logic, { input, clock, inspect }) as never) : new LeanActor(logic, { input, clock });
  actor.subscribe(() => notifications++);
  actor.start();
  return {
    actor,
    get notifications() {
      return notifications;
    },
  };
}

/** One side of a walk, as compared: its actor's snapshot, the effects it ran, the snapshots its subscriber got. */
interface Side {
  actor: { getSnapshot(): { value: unknown; context: unknown; status: string } };
  effects: Effect[];
  notifications: number;
}

/** The lean side matches the XState side at this point of the walk. */
function expectAlike(x: Side, l: Side, where: string): void {
  const xs = x.actor.getSnapshot();
  const ls = l.actor.getSnapshot();
  expect(ls.value, where).toEqual(xs.value);
  expect(ls.status, where).toBe(xs.status);
  expect(ls.context, where).toEqual(xs.context);
  expect(l.effects, where).toEqual(x.effects);
  expect(l.notifications, where).toBe(x.notifications);
}

function walk(spec: Spec, seed: number, length: number): Step[] {
  const next = random(seed);
  return Array.from({ length }, () =>
    next() < 0.2 ? { tick: spec.ticks[Math.floor(next() * spec.ticks.length)]! } : { event: spec.events[Math.floor(next() * spec.events.length)]!() },
  );
}

beforeEach(() => {
  // Deadlines in context come from Date.now(): both sides must read the same time.
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(new Date(AT));
});

afterEach(() => {
  vi.useRealTimers();
});

describe('LeanActor runs a machine exactly as XState does', () => {
  for (const spec of specs) {
    it(`${spec.machine.id}: random walks agree step by step and take every transition`, () => {
      const taken = new Set<string>();
      let walks = 0;
      for (let seed = 1; seed <= 400; seed++) {
        const input = spec.inputs[seed % spec.inputs.length]!();
        const echo = seed % 3 === 0;
        const steps = walk(spec, seed, 30);
        const x = side(spec, 'xstate', input, echo, taken);
        const l = side(spec, 'lean', input, echo);
        const compare = (where: string) => expectAlike(x, l, `seed ${seed}, ${where}`);
        compare('after start');
        steps.forEach((step, i) => {
          if ('tick' in step) {
            vi.setSystemTime(Date.now() + step.tick);
            x.clock.increment(step.tick);
            l.clock.increment(step.tick);
          } else {
            // A finished XState actor only warns about later events; the lean one must ignore them too.
            if (x.actor.getSnapshot().status === 'active') x.actor.send(step.event);
            l.actor.send(step.event);
          }
          compare(`step ${i + 1} (${'tick' in step ? `tick ${step.tick}` : step.event.type})`);
        });
        walks++;
      }
      expect(walks).toBe(400);
      expect([...taken].sort()).toEqual([...new Set(transitionLabels(spec.machine))].sort());
    });
  }

  it('inbox: random walks with an invoked promise actor agree step by step and take every transition', async () => {
    const flush = async () => {
      for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
    };
    type Walk = { event: AnyEventObject } | { settle: 'resolve' | 'reject'; remaining: number } | { tick: number };
    const inboxSide = (kind: 'xstate' | 'lean', taken?: Set<string>) => {
      const effects: Effect[] = [];
      const pending: Array<{ resolve: (v: unknown) => void; reject: (e: unknown) => void; signal: AbortSignal }> = [];
      let upTo = 0;
      const clock = new SimulatedClock();
      const logic = inboxMachine.provide({
        actors: {
          persistBatch: fromPromise<BatchResult>(
            ({ signal }) =>
              new Promise<BatchResult>((resolve, reject) => {
                effects.push({ name: 'persistBatch', params: undefined, context: undefined, event: 'invoke' });
                pending.push({ resolve: resolve as (v: unknown) => void, reject, signal });
              }),
          ),
        },
        actions: {
          acknowledge: ({ context, event }: { context: unknown; event: AnyEventObject }, params: unknown) =>
            effects.push({ name: 'acknowledge', params, context: structuredClone(context), event: event.type }),
        },
      });
      const started = startSide(logic, kind, { storedUpTo: 0 }, clock, taken);
      return {
        actor: started.actor,
        clock,
        effects,
        get notifications() {
          return started.notifications;
        },
        /** Settles the newest running batch, if any, as the walk says. */
        settle(how: 'resolve' | 'reject', remaining: number) {
          const batch = pending.findLast((p) => !p.signal.aborted);
          if (!batch) return;
          pending.splice(pending.indexOf(batch), 1);
          if (how === 'resolve') batch.resolve({ count: 1, upTo: ++upTo, remaining });
          else batch.reject(new Error('disk full'));
        },
      };
    };
    const taken = new Set<string>();
    for (let seed = 1; seed <= 150; seed++) {
      const next = random(seed);
      const steps: Walk[] = Array.from({ length: 25 }, () => {
        const r = next();
        if (r < 0.35) return { event: { type: 'DELIVERED', count: 1 + Math.floor(next() * 3) } };
        if (r < 0.7) return { settle: 'resolve', remaining: next() < 0.5 ? 0 : 2 };
        if (r < 0.85) return { settle: 'reject', remaining: 0 };
        return { tick: [50, 150, 1000][Math.floor(next() * 3)]! };
      });
      const x = inboxSide('xstate', taken);
      const l = inboxSide('lean');
      const compare = (where: string) => expectAlike(x, l, `seed ${seed}, ${where}`);
      compare('after start');
      for (const [i, step] of steps.entries()) {
        if ('tick' in step) {
          vi.setSystemTime(Date.now() + step.tick);
          x.clock.increment(step.tick);
          l.clock.increment(step.tick);
        } else if ('settle' in step) {
          x.settle(step.settle, step.remaining);
          l.settle(step.settle, step.remaining);
        } else {
          x.actor.send(step.event);
          l.actor.send(step.event);
        }
        await flush();
        compare(`step ${i + 1} (${'tick' in step ? `tick ${step.tick}` : 'settle' in step ? step.settle : step.event.type})`);
      }
    }
    expect([...taken].sort()).toEqual([...new Set(transitionLabels(inboxMachine))].sort());
  });

  it('starts an invoked promise once its transition is complete, and none when restored in its state, as XState does', async () => {
    const run = async (kind: 'xstate' | 'lean', restore?: { value: unknown; context: unknown }) => {
      const seen: string[] = [];
      const logic = setup({
        actors: { work: fromPromise(async () => {}) },
        actions: { log: (_, params: { name: string }) => void seen.push(params.name) },
      })
        .createMachine({
          id: 'ordered',
          initial: 'a',
          states: {
            a: { on: { GO: 'b' } },
            b: {
              entry: { type: 'log', params: { name: 'enter b' } },
              exit: { type: 'log', params: { name: 'exit b' } },
              invoke: { id: 'work', src: 'work', onDone: { target: 'c', actions: { type: 'log', params: { name: 'done' } } } },
              initial: 'b1',
              states: { b1: { entry: { type: 'log', params: { name: 'enter b1' } } } },
            },
            c: { type: 'final' },
          },
        })
        .provide({ actors: { work: fromPromise(async () => { seen.push('work started'); }) } });
      const actor: { start(): unknown; send(e: AnyEventObject): void; getSnapshot(): { value: unknown; status: string } } =
        kind === 'xstate'
          ? (createActor(logic, restore ? { snapshot: logic.resolveState(restore as never) } : {}) as never)
          : new LeanActor(logic, restore ? { snapshot: restore as never } : {});
      actor.start();
      actor.send({ type: 'GO' });
      await new Promise((r) => setImmediate(r));
      return { seen, value: actor.getSnapshot().value, status: actor.getSnapshot().status };
    };
    const fresh = await run('lean');
    expect(fresh).toEqual(await run('xstate'));
    expect(fresh).toEqual({ seen: ['enter b', 'enter b1', 'work started', 'exit b', 'done'], value: 'c', status: 'done' });
    const restored = await run('lean', { value: { b: 'b1' }, context: {} });
    expect(restored).toEqual(await run('xstate', { value: { b: 'b1' }, context: {} }));
    // A snapshot from resolveState has no running children: nothing is started, and it stays.
    expect(restored).toEqual({ seen: [], value: { b: 'b1' }, status: 'active' });
  });

  it('runs a machine it cannot compile as an XState actor when asked for a lifecycle', () => {
    expect(() => compileMachine(connectionMachine)).toThrow(UnsupportedMachineError);
    const actor = createLifecycle(connectionMachine, { id: 'connection', input: {} });
    expect(actor).not.toBeInstanceOf(LeanActor);
    actor.start();
    expect(actor.getSnapshot().value).toBe('disconnected');
    actor.stop();
  });

  it('restores from a state and context without running entry actions, then goes on alike', () => {
    const context = { id: 'm9', conversationId: 'a+b', to: 'b', attempts: 1, failures: 0, maxAttempts: 3, ackTimeoutMs: 1000, expiresAt: null, ackDeadline: null, seq: 4, serverAt: AT, deliveredAt: null, error: null };
    const seen: Array<{ who: string; status: unknown }> = [];
    const logic = messageMachine.provide({ actions: { persistStatus: (_: unknown, params: { status: string }) => seen.push({ who: 'lean', status: params.status }) } });
    const lean = new LeanActor(logic, { snapshot: { value: 'acked', context } });
    const notified: string[] = [];
    lean.subscribe(() => notified.push('kept'));
    lean.subscribe(() => notified.push('dropped')).unsubscribe();
    lean.start();
    expect(notified).toEqual(['kept']);
    expect(seen).toEqual([]);
    expect(lean.getSnapshot().value).toBe('acked');
    lean.send({ type: 'RECEIPT', at: AT });
    expect(lean.getSnapshot().status).toBe('done');
    expect(lean.getSnapshot().context).toMatchObject({ seq: 4, deliveredAt: AT });
    expect(seen).toEqual([{ who: 'lean', status: 'delivered' }]);
    // Once done, nothing more happens.
    lean.send({ type: 'RECEIPT', at: AT });
    expect(seen).toHaveLength(1);
  });

  it('finish() ends a resting lifecycle without an actor exactly as a restored XState actor would, or runs nothing', () => {
    const context = { id: 'm9', conversationId: 'a+b', to: 'b', attempts: 1, failures: 0, maxAttempts: 3, ackTimeoutMs: 1000, expiresAt: null, ackDeadline: null, seq: 4, serverAt: AT, deliveredAt: null, error: null };
    const spec = specs[0]!;
    const states = [...compileMachine(spec.machine).byPath.keys()];
    let finished = 0;
    for (const path of states) {
      const value = path.includes('.') ? { [path.split('.')[0]!]: path.split('.')[1]! } : path;
      for (const makeEvent of spec.events) {
        const event = makeEvent();
        const record = (effects: Effect[]) =>
          Object.fromEntries(
            spec.effects.map((name) => [name, ({ context: c, event: e }: { context: unknown; event: AnyEventObject }, params: unknown) => effects.push({ name, params, context: structuredClone(c), event: e.type })]),
          );
        const viaXState: Effect[] = [];
        const logicX = spec.machine.provide({ actions: record(viaXState) });
        const actor = createActor(logicX, { snapshot: logicX.resolveState({ value, context } as never), clock: new SimulatedClock() }).start();
        if (actor.getSnapshot().status === 'active') actor.send(event);
        const viaFinish: Effect[] = [];
        const ended = LeanActor.finish(spec.machine.provide({ actions: record(viaFinish) }), { value, context }, event);
        const where = `${path} + ${event.type}`;
        if (ended === undefined) {
          expect(viaFinish, where).toEqual([]);
          continue;
        }
        finished++;
        expect(actor.getSnapshot().status, where).toBe('done');
        expect(ended, where).toEqual(actor.getSnapshot().context);
        expect(viaFinish, where).toEqual(viaXState);
      }
    }
    // What the outbox relies on: a receipt ends a message at rest in `acked`, writing its status.
    const seen: unknown[] = [];
    const logic = messageMachine.provide({ actions: { persistStatus: (_: unknown, params: { status: string }) => seen.push(params.status) } });
    expect(LeanActor.finish(logic, { value: 'acked', context }, { type: 'RECEIPT', at: AT })).toMatchObject({ seq: 4, deliveredAt: AT });
    expect(seen).toEqual(['delivered']);
    // Events that leave it running (a timer to arm, a state that is not final) are refused.
    expect(LeanActor.finish(logic, { value: 'queued', context }, { type: 'DISPATCH' })).toBeUndefined();
    expect(finished).toBeGreaterThan(3);
  });

  it('several assigns in one microstep: each sees the one before it, its own properties the context before it, and what an action or assign keeps does not change', () => {
    type Ctx = { a: number; b: number; c: number; x: number; y: number; prev?: object; kept?: object };
    const kept: Array<{ who: string; context: Ctx }> = [];
    const machine = setup({
      types: { context: {} as Ctx, events: {} as { type: 'GO' } },
      actions: { keep: () => {} },
    }).createMachine({
      id: 'microstep',
      context: { a: 0, b: 0, c: 0, x: 1, y: 2 },
      initial: 'one',
      states: {
        one: {
          // Exit assign, then the transition's: the second reads the first's write.
          exit: assign({ a: 1 }),
          on: {
            GO: {
              target: 'two',
              actions: [
                assign({ b: ({ context }) => context.a + 1 }),
                // Both properties read the context before this assign: a swap.
                assign({ x: ({ context }) => context.y, y: ({ context }) => context.x }),
                'keep',
                // Written after the action ran: the context the action kept must not change.
                assign(({ context }) => ({ c: context.b + 1 })),
                // An assign may keep the context it is given too: the next one must not change it.
                assign({ prev: ({ context }) => ({ ...context }), kept: ({ context }) => context }),
                assign({ a: 9 }),
                'keep',
              ],
            },
          },
        },
        two: {},
      },
    });
    for (const who of ['xstate', 'lean'] as const) {
      const logic = machine.provide({ actions: { keep: ({ context }) => kept.push({ who, context }) } });
      const actor = who === 'xstate' ? createActor(logic) : new LeanActor(logic);
      actor.start();
      const before = actor.getSnapshot().context;
      actor.send({ type: 'GO' });
      const { prev, kept: keptByAssign, ...rest } = actor.getSnapshot().context;
      expect(rest, who).toEqual({ a: 9, b: 2, c: 3, x: 2, y: 1 });
      expect(keptByAssign, `${who}: the context an assign kept is the one it was given`).toEqual(prev);
      expect(keptByAssign, who).not.toBe(actor.getSnapshot().context);
      expect(before, `${who}: the snapshot before the event is unchanged`).toEqual({ a: 0, b: 0, c: 0, x: 1, y: 2 });
    }
    expect(kept.map(({ who, context: { a, b, c, x, y } }) => ({ who, context: { a, b, c, x, y } }))).toEqual([
      { who: 'xstate', context: { a: 1, b: 2, c: 0, x: 2, y: 1 } },
      { who: 'xstate', context: { a: 9, b: 2, c: 3, x: 2, y: 1 } },
      { who: 'lean', context: { a: 1, b: 2, c: 0, x: 2, y: 1 } },
      { who: 'lean', context: { a: 9, b: 2, c: 3, x: 2, y: 1 } },
    ]);
  });

  it('stopping cancels its timers: a stopped actor never fires a delayed transition', () => {
    const clock = new SimulatedClock();
    const lean = new LeanActor(pendingItemMachine, { input: { id: 'p1' }, clock }).start();
    lean.send({ type: 'CLAIM', leaseMs: 1000 });
    expect(lean.getSnapshot().value).toBe('claimed');
    lean.stop();
    vi.setSystemTime(Date.now() + 5000);
    clock.increment(5000);
    expect(lean.getSnapshot()).toMatchObject({ value: 'claimed', status: 'stopped' });
  });

  it('refuses machines that use what it does not run, naming the feature', () => {
    expect(() => compileMachine(connectionMachine)).toThrow(UnsupportedMachineError);
    expect(() => compileMachine(connectionMachine)).toThrow(/invoke/);

  });
});

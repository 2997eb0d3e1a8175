import { describe, expect, it } from 'vitest';
import { createActor, fromPromise, SimulatedClock } from 'xstate';
import { inboxMachine, type BatchResult } from '../../machines/inbox.js';
import { outboxMachine } from '../../machines/outbox.js';
import { pendingItemMachine } from '../../machines/pendingItem.js';
import { coverStates } from './stateCoverage.js';

const trackOutbox = coverStates(outboxMachine);
const trackInbox = coverStates(inboxMachine);
const trackItem = coverStates(pendingItemMachine);

describe('outbox machine', () => {
  function start(window: number) {
    const dispatched: number[] = [];
    let abandoned = 0;
    const actor = createActor(
      outboxMachine.provide({ actions: { dispatch: (_, { count }) => void dispatched.push(count), abandonInflight: () => void abandoned++ } }),
      { input: { window } },
    );
    trackOutbox(actor);
    actor.start();
    return { actor, dispatched, abandoned: () => abandoned };
  }

  it('holds messages while offline and, once online, plans to fill the window, never beyond it', () => {
    const { actor, dispatched } = start(3);
    actor.send({ type: 'QUEUE_CHANGED', queued: 5, inflight: 0 });
    expect(dispatched).toEqual([]);
    actor.send({ type: 'ONLINE' });
    expect(dispatched).toEqual([3]);
    // The outbox dispatched them and reports the new counts: the window is full, nothing more.
    actor.send({ type: 'QUEUE_CHANGED', queued: 2, inflight: 3 });
    expect(dispatched).toEqual([3]);
    // One settles: one more slot.
    actor.send({ type: 'QUEUE_CHANGED', queued: 2, inflight: 2 });
    expect(dispatched).toEqual([3, 1]);
    expect(actor.getSnapshot().context).toMatchObject({ inflight: 2, queued: 2, lastDispatch: 1 });
  });

  it('pauses when offline and asks in-flight messages to come back', () => {
    const { actor, dispatched, abandoned } = start(10);
    actor.send({ type: 'ONLINE' });
    actor.send({ type: 'QUEUE_CHANGED', queued: 4, inflight: 0 });
    actor.send({ type: 'QUEUE_CHANGED', queued: 0, inflight: 4 });
    actor.send({ type: 'OFFLINE' });
    expect(actor.getSnapshot().value).toBe('offline');
    expect(abandoned()).toBe(1);
    actor.send({ type: 'QUEUE_CHANGED', queued: 4, inflight: 0 });
    expect(dispatched).toEqual([0, 4]);
    expect(actor.getSnapshot().context).toMatchObject({ queued: 4, inflight: 0 });
  });

  it('waits out a rate limit before draining again', () => {
    const clock = new SimulatedClock();
    const dispatched: number[] = [];
    const actor = createActor(outboxMachine.provide({ actions: { dispatch: (_, { count }) => void dispatched.push(count) } }), {
      input: { window: 5 },
      clock,
    });
    trackOutbox(actor);
    actor.start();
    actor.send({ type: 'ONLINE' });
    actor.send({ type: 'THROTTLE', untilMs: Date.now() + 1000 });
    expect(actor.getSnapshot().value).toEqual({ online: 'throttled' });
    actor.send({ type: 'QUEUE_CHANGED', queued: 2, inflight: 0 });
    expect(dispatched).toEqual([0]);
    clock.increment(1000);
    expect(actor.getSnapshot().value).toEqual({ online: 'draining' });
    expect(dispatched).toEqual([0, 2]);
  });
});

describe('inbox machine', () => {
  it('persists buffered deliveries in batches and acknowledges each batch once durable', async () => {
    const acks: number[] = [];
    const batches: number[] = [];
    let stored = 0;
    let buffered = 0;
    const actor = createActor(
      inboxMachine.provide({
        actors: {
          persistBatch: fromPromise<BatchResult>(async () => {
            const count = buffered;
            buffered = 0;
            batches.push(count);
            await new Promise((r) => setTimeout(r, 5));
            stored += count;
            return { count, upTo: stored, remaining: buffered };
          }),
        },
        actions: { acknowledge: (_, { upTo }) => void acks.push(upTo) },
      }),
      { input: { storedUpTo: 0 } },
    );
    trackInbox(actor);
    actor.start();
    const deliver = (n: number) => {
      buffered += n;
      actor.send({ type: 'DELIVERED', count: n });
    };
    deliver(1);
    deliver(1);
    deliver(1);
    await new Promise((r) => setTimeout(r, 50));
    expect(actor.getSnapshot().value).toBe('idle');
    // The first delivery went alone; the two that arrived during its write went together.
    expect(batches).toEqual([1, 2]);
    expect(acks).toEqual([1, 3]);
    expect(actor.getSnapshot().context).toMatchObject({ buffered: 0, storedUpTo: 3 });
  });

  it('acknowledges nothing when a write fails, and tries again after a pause', async () => {
    const acks: number[] = [];
    let failures = 1;
    const actor = createActor(
      inboxMachine.provide({
        actors: {
          persistBatch: fromPromise<BatchResult>(async () => {
            if (failures-- > 0) throw new Error('disk full');
            return { count: 1, upTo: 1, remaining: 0 };
          }),
        },
        actions: { acknowledge: (_, { upTo }) => void acks.push(upTo) },
      }),
      { input: { storedUpTo: 0 } },
    );
    trackInbox(actor);
    actor.start();
    actor.send({ type: 'DELIVERED', count: 1 });
    await new Promise((r) => setTimeout(r, 10));
    expect(actor.getSnapshot().value).toBe('retrying');
    expect(actor.getSnapshot().context.lastError).toBe('disk full');
    expect(acks).toEqual([]);
    await new Promise((r) => setTimeout(r, 150));
    expect(actor.getSnapshot().value).toBe('idle');
    expect(acks).toEqual([1]);
  });
});

describe('pending item machine', () => {
  function start() {
    const clock = new SimulatedClock();
    const log: string[] = [];
    const actor = createActor(
      pendingItemMachine.provide({
        actions: {
          persistClaim: () => void log.push('claim'),
          persistExtend: () => void log.push('extend'),
          persistRelease: () => void log.push('release'),
          persistAck: () => void log.push('ack'),
        },
      }),
      { input: { id: 'm1' }, clock },
    );
    trackItem(actor);
    actor.start();
    return { actor, clock, log };
  }

  it('is claimed for a lease that lapses back to pending unless acknowledged', () => {
    const { actor, clock, log } = start();
    actor.send({ type: 'CLAIM', leaseMs: 1000 });
    expect(actor.getSnapshot().value).toBe('claimed');
    expect(actor.getSnapshot().context.attempts).toBe(1);
    clock.increment(1000);
    expect(actor.getSnapshot().value).toBe('pending');
    actor.send({ type: 'CLAIM', leaseMs: 1000 });
    actor.send({ type: 'ACK' });
    expect(actor.getSnapshot().value).toBe('done');
    expect(log).toEqual(['claim', 'release', 'claim', 'ack']);
  });

  it('resumes a claim from a previous run without recording it again, and honours extend (not a new claim) and release', () => {
    const { actor, clock, log } = start();
    actor.send({ type: 'RESUME_CLAIM', leaseUntil: Date.now() + 500 });
    expect(actor.getSnapshot().value).toBe('claimed');
    actor.send({ type: 'EXTEND', leaseMs: 5000 });
    clock.increment(1000);
    expect(actor.getSnapshot().value).toBe('claimed');
    expect(actor.getSnapshot().context.attempts).toBe(0);
    actor.send({ type: 'RELEASE' });
    expect(actor.getSnapshot().value).toBe('pending');
    expect(log).toEqual(['extend', 'release']);
  });
});

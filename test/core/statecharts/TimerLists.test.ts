import { describe, expect, it, vi } from 'vitest';
import { createMachine } from 'xstate';
import { LeanActor } from '../../../src/core/statecharts/LeanActor.js';
import { startTimer, stopTimer, type Timer, type TimerOwner } from '../../../src/core/statecharts/TimerLists.js';

/** An owner that notes what fired, and when, and may start more from a firing. */
function owner(onFire?: (timer: Timer) => void): TimerOwner & { fired: Array<[string, number]> } {
  const fired: Array<[string, number]> = [];
  return {
    fired,
    timerFired(timer) {
      fired.push([timer.id, performance.now()]);
      onFire?.(timer);
    },
  };
}

const EVENT = { type: 'T' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Node timers the process holds (what would keep it alive); compared only within one synchronous stretch, as the runner has timers of its own. */
const nodeTimers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

// Real time throughout: what is tested is how these lists sit on Node's own timers. Only lower
// bounds on when a timer fires are asserted; a busy machine may fire any of them late.
describe('TimerLists: delayed events on shared lists, one Node timer per delay', () => {
  it('fires each timer once its delay has passed, in deadline order, with one Node timer per delay', async () => {
    const o = owner();
    const started = new Map<string, number>();
    const start = (delay: number, id: string) => {
      started.set(id, performance.now());
      startTimer(delay, o, id, EVENT);
    };
    start(80, 'a');
    await sleep(10);
    const before = nodeTimers();
    start(80, 'b');
    start(25, 'c');
    start(80, 'd');
    // One Node timer per delay, whatever the number of timers on it: b and d join a's.
    expect(nodeTimers() - before).toBe(1);
    await vi.waitFor(() => expect(o.fired).toHaveLength(4), { timeout: 2000, interval: 5 });
    expect(o.fired.map(([id]) => id)).toEqual(['c', 'a', 'b', 'd']);
    for (const [id, at] of o.fired) expect(at - started.get(id)!, id).toBeGreaterThanOrEqual(id === 'c' ? 25 : 80);
  });

  it('a stopped timer never fires; the one after a stopped head fires at its own time, not the head’s', async () => {
    const o = owner();
    const a = startTimer(40, o, 'a', EVENT);
    await sleep(20);
    const bAt = performance.now();
    startTimer(40, o, 'b', EVENT);
    stopTimer(a);
    stopTimer(a); // again: nothing
    await vi.waitFor(() => expect(o.fired).toHaveLength(1), { timeout: 2000, interval: 2 });
    expect(o.fired[0]![0]).toBe('b');
    expect(o.fired[0]![1] - bAt).toBeGreaterThanOrEqual(40);
    await sleep(50);
    expect(o.fired).toHaveLength(1);
  });

  it('leaves no Node timer behind once every timer is stopped, so nothing keeps the process alive', () => {
    const o = owner();
    const before = nodeTimers();
    const timers = Array.from({ length: 1000 }, (_, i) => startTimer(10_000, o, `m${i}`, EVENT));
    expect(nodeTimers()).toBe(before + 1);
    for (const t of timers.slice(0, 999)) stopTimer(t);
    expect(nodeTimers()).toBe(before + 1);
    stopTimer(timers[999]!);
    expect(nodeTimers()).toBe(before);
  });

  it('a timer started while others fire waits its own delay; the others due still fire', async () => {
    const o = owner((timer) => {
      if (timer.id === 'a') startTimer(20, o, 'again', EVENT);
    });
    startTimer(20, o, 'a', EVENT);
    startTimer(20, o, 'b', EVENT);
    await vi.waitFor(() => expect(o.fired).toHaveLength(3), { timeout: 2000, interval: 2 });
    expect(o.fired.map(([id]) => id)).toEqual(['a', 'b', 'again']);
    expect(o.fired[2]![1] - o.fired[0]![1]).toBeGreaterThanOrEqual(20);
  });

  it('a timer started by the last of its list (which empties and is forgotten) gets a list and a Node timer of its own', async () => {
    const o = owner((timer) => {
      if (timer.id === 'solo') startTimer(15, o, 'next', EVENT);
    });
    startTimer(15, o, 'solo', EVENT);
    await vi.waitFor(() => expect(o.fired).toHaveLength(2), { timeout: 2000, interval: 2 });
    expect(o.fired[1]![1] - o.fired[0]![1]).toBeGreaterThanOrEqual(15);
  });

  it('timers started while a list fires wait for a later turn of the event loop, however long the firing takes', async () => {
    // Each firing outlasts the delay and starts another: fired from the same run, they would never
    // let the loop turn (50 firings stop the chain, for this test to fail rather than hang).
    let firings = 0;
    let firedBeforeTurn: number | undefined;
    const o = owner((timer) => {
      firings++;
      if (firings === 1) setImmediate(() => (firedBeforeTurn = firings));
      const until = performance.now() + 2;
      while (performance.now() < until) {
        /* a slow handler */
      }
      if (firedBeforeTurn === undefined && firings < 50) startTimer(1, o, timer.id, EVENT);
    });
    startTimer(1, o, 'x', EVENT);
    startTimer(1, o, 'y', EVENT);
    await vi.waitFor(() => expect(firedBeforeTurn).toBeDefined(), { timeout: 2000, interval: 2 });
    expect(firedBeforeTurn).toBe(2);
  });

  it('takes delays as setTimeout does: under 1 ms, not a number, or past the longest timeout run after 1 ms', async () => {
    const o = owner();
    const t0 = performance.now();
    const delays = { zero: 0, negative: -5, nan: Number.NaN, huge: 2 ** 31, infinite: Number.POSITIVE_INFINITY };
    for (const [id, delay] of Object.entries(delays)) startTimer(delay, o, id, EVENT);
    await vi.waitFor(() => expect(o.fired).toHaveLength(5), { timeout: 2000, interval: 2 });
    expect(o.fired.map(([id]) => id)).toEqual(Object.keys(delays));
    for (const [, at] of o.fired) expect(at - t0).toBeGreaterThanOrEqual(1);
  });

  it('never fires early on real time, though Node’s timers count whole milliseconds of the loop’s clock', async () => {
    const o = owner();
    const startedAt = new Map<string, number>();
    for (let delay = 1; delay <= 20; delay++) {
      startedAt.set(`d${delay}`, performance.now());
      startTimer(delay, o, `d${delay}`, EVENT);
    }
    await vi.waitFor(() => expect(o.fired).toHaveLength(20), { timeout: 2000, interval: 5 });
    for (const [id, at] of o.fired) expect(at - startedAt.get(id)!, id).toBeGreaterThanOrEqual(Number(id.slice(1)));
  });

  it('drives a lean actor’s delayed transitions on real time, and stop() cancels them', async () => {
    const machine = createMachine({
      id: 'delayed',
      initial: 'waiting',
      states: { waiting: { after: { 20: 'late' } }, late: { type: 'final' } },
    });
    const fires = new LeanActor(machine).start();
    const stopped = new LeanActor(machine).start();
    stopped.stop();
    const t = performance.now();
    await vi.waitFor(() => expect(fires.getSnapshot().value).toBe('late'), { timeout: 2000, interval: 5 });
    expect(performance.now() - t).toBeGreaterThanOrEqual(19);
    await new Promise((r) => setTimeout(r, 30));
    expect(stopped.getSnapshot()).toMatchObject({ value: 'waiting', status: 'stopped' });
  });
});

import { describe, expect, it } from 'vitest';
import { OpenSegments, type Parkable } from '../../../src/server/store/OpenSegments.js';

/** An inbox as the bound sees it: parks unless busy (rolling, trimming, reopening). */
class Inbox implements Parkable {
  segmentUsedAt = 0;
  segmentCounted = false;
  busy = false;
  open = true;
  parkCalls = 0;
  park(): boolean {
    this.parkCalls++;
    if (this.busy) return false;
    this.open = false;
    return true;
  }
}

describe('OpenSegments', () => {
  it('closes the least recently used beyond the bound, and a use makes an inbox recent again', () => {
    const bound = new OpenSegments(2);
    const [a, b, c] = [new Inbox(), new Inbox(), new Inbox()];
    bound.used(a);
    bound.used(b);
    bound.used(a); // a is now more recent than b
    bound.used(c);
    expect([a.open, b.open, c.open]).toEqual([true, false, true]);
    expect(bound.size).toBe(2);
  });

  it('skips busy inboxes, and closes the excess once they are idle', () => {
    const bound = new OpenSegments(1);
    const [a, b] = [new Inbox(), new Inbox()];
    bound.used(a);
    a.busy = true;
    bound.used(b);
    expect([a.open, b.open, bound.size]).toEqual([true, true, 2]);
    // a's roll ended: a itself is spared (appends wait for it), and the excess is closed.
    a.busy = false;
    bound.idle(a);
    expect([a.open, b.open, bound.size]).toEqual([true, false, 1]);
  });

  it('does a bounded amount of work per use when many of the oldest inboxes are busy', () => {
    const max = 1024;
    const bound = new OpenSegments(max);
    const old = Array.from({ length: max }, () => new Inbox());
    for (const inbox of old) bound.used(inbox);
    // The 1,000 oldest are busy for a long time (say, trims waiting on a dedupe rewrite).
    for (const inbox of old.slice(0, 1000)) inbox.busy = true;
    const opens = 2000;
    for (let i = 0; i < opens; i++) bound.used(new Inbox());
    const refusals = old.reduce((n, inbox) => n + (inbox.busy ? inbox.parkCalls : 0), 0);
    // Each use meets at most a few busy inboxes (they are stamped recent when met), not all of them.
    expect(refusals).toBeLessThanOrEqual(4 * opens);
    expect(bound.size).toBeLessThanOrEqual(max + 1000);
  });
});

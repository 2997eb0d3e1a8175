import { describe, expect, it } from 'vitest';
import type { AnyActorRef, InspectionEvent } from 'xstate';
import { collect, eventually, makeClient } from '../helpers/clients.js';
import { startServer } from '../helpers/server.js';

describe('send window and inspection', () => {
  it('never has more than `window` messages awaiting their ack, and sends them in order', async () => {
    const server = await startServer();
    const live = new Map<string, string>();
    let maxInFlight = 0;
    const actorIds = new Set<string>();
    const inspect = (e: InspectionEvent) => {
      if (e.type !== '@xstate.snapshot') return;
      const id = (e.actorRef as AnyActorRef).id;
      actorIds.add(id.split(':')[0]!);
      if (!id.startsWith('message:')) return;
      live.set(id, JSON.stringify((e.snapshot as unknown as { value: unknown }).value));
      const n = [...live.values()].filter((v) => v.includes('inFlight')).length;
      maxInFlight = Math.max(maxInFlight, n);
    };
    const a = await makeClient(server.url, 'agent_001', { window: 3, inspect });
    const b = await makeClient(server.url, 'agent_002');
    const got = collect(b);
    for (let i = 0; i < 40; i++) await a.sendMessage({ to: 'agent_002', text: `m${i}` });
    await Promise.all([a.connect(), b.connect()]);
    await eventually(() => got.length === 40);
    expect(got.map((m) => m.text)).toEqual(Array.from({ length: 40 }, (_, i) => `m${i}`));
    expect(maxInFlight).toBe(3);
    // Inspection reached every kind of actor the client runs.
    expect([...actorIds].sort()).toEqual(['connection', 'inbox', 'message', 'outbox', 'persistBatch', 'socket']);
  });
});

import { describe, expect, it } from 'vitest';
import type { WireMessage } from '../../../src/protocol/message.js';
import type { InboxStore } from '../../../src/server/store/InboxStore.js';

// Dedupe windows count from the server time of a message, so use the present.
const T = new Date().toISOString();
export function wire(n: number, from = 'agent_001', to = 'agent_002'): WireMessage {
  return { id: `msg_${String(n).padStart(8, '0')}`, from, to, conversationId: `${from}+${to}`, text: `m${n}`, sentAt: T, serverAt: T };
}

/**
 * The behaviour every InboxStore must have. `make` returns a store over
 * `key`'s data: called twice with the same key, a durable store sees the
 * first one's data (the second call happens after the first store closed).
 */
export function inboxStoreContract(name: string, make: (key: string) => Promise<InboxStore>, options: { durable: boolean }): void {
  describe(`InboxStore contract: ${name}`, () => {
    it('assigns consecutive sequences per recipient and reads them back in order', async () => {
      const s = await make('seq');
      await s.open();
      const accepted = await Promise.all([1, 2, 3].map((n) => s.appendMessage(wire(n), `d${n}`)));
      expect(accepted.map((a) => a.seq)).toEqual([1, 2, 3]);
      expect((await s.appendMessage(wire(4, 'agent_001', 'agent_003'), 'd4')).seq).toBe(1);
      const entries = await s.read('agent_002', 0, 10);
      expect(entries.map((e) => e.seq)).toEqual([1, 2, 3]);
      expect(entries.map((e) => e.kind === 'message' && JSON.parse(e.payload).text)).toEqual(['m1', 'm2', 'm3']);
      expect((await s.read('agent_002', 1, 1)).map((e) => e.seq)).toEqual([2]);
      expect(await s.position('agent_002')).toMatchObject({ latestSeq: 3, ackedUpTo: 0 });
      await s.close();
    });

    it('remembers accepted messages by sender and id', async () => {
      const s = await make('dedupe');
      await s.open();
      const a = await s.appendMessage(wire(1), 'digest-1');
      expect(await s.findAccepted('agent_001', wire(1).id)).toEqual(a);
      expect(await s.findAccepted('agent_009', wire(1).id)).toBeUndefined();
      await s.close();
    });

    it('acks cumulatively: covered entries leave the backlog and are not read again', async () => {
      const s = await make('ack');
      await s.open();
      for (let n = 1; n <= 5; n++) await s.appendMessage(wire(n), `d${n}`);
      await s.appendReceipt('agent_002', { by: 'agent_007', at: T, messages: [{ id: wire(9).id, conversationId: 'x' }] });
      expect((await s.coveredBy('agent_002', 3)).map((e) => e.seq)).toEqual([1, 2, 3]);
      await s.ack('agent_002', 3);
      expect(await s.backlog('agent_002')).toBe(3);
      expect((await s.read('agent_002', 0, 10)).map((e) => [e.seq, e.kind])).toEqual([
        [4, 'message'],
        [5, 'message'],
        [6, 'receipt'],
      ]);
      await s.ack('agent_002', 2); // an older ack changes nothing
      expect((await s.position('agent_002')).ackedUpTo).toBe(3);
      await s.close();
    });

    it.runIf(options.durable)('keeps inboxes, acks, epochs and dedupe across a reopen', async () => {
      const first = await make('reopen');
      await first.open();
      for (let n = 1; n <= 4; n++) await first.appendMessage(wire(n), `d${n}`);
      await first.ack('agent_002', 2);
      const before = await first.position('agent_002');
      await first.close();
      const second = await make('reopen');
      await second.open();
      expect(await second.position('agent_002')).toEqual(before);
      expect((await second.read('agent_002', 0, 10)).map((e) => e.seq)).toEqual([3, 4]);
      expect((await second.findAccepted('agent_001', wire(1).id))?.seq).toBe(1);
      expect((await second.appendMessage(wire(5), 'd5')).seq).toBe(5);
      await second.close();
    });
  });
}

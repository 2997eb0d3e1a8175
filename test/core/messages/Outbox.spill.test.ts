import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { holdWriteOf } from '../../helpers/diskFaults.js';
import { tempDir } from '../../helpers/tmp.js';

/**
 * Races between a read-back of spilled messages and what happens while it
 * reads (a receipt, a cancel, a stop) depend on where the read is when they
 * come. These tests pin that moment: `hook.gate` holds the next journal read
 * before it starts, `hook.atEnd` runs as it ends (its entries found, not yet
 * taken back), `hook.fail` makes it fail as a disk would. Everything else is real: the workspace files and the outbox.
 * The journal reads in two ways, both hooked: a refill carries on through the file with a
 * `LineCursor`, a read of chosen messages (a cancel, an expiry) scans it with `readJsonlBatches`.
 */
const hook: { gate?: Promise<void>; atEnd?: () => Promise<void>; fail?: boolean } = {};
/** Holds a read at the gate, or fails it, before it starts. */
async function beforeRead(): Promise<void> {
  const gate = hook.gate;
  hook.gate = undefined;
  if (gate) await gate;
  if (hook.fail) {
    hook.fail = false;
    throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
  }
}
/** Runs what is to happen as a read ends. */
async function afterRead(): Promise<void> {
  const atEnd = hook.atEnd;
  hook.atEnd = undefined;
  if (atEnd) await atEnd();
}
vi.mock('../../../src/fs/readJsonl.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../../src/fs/readJsonl.js')>();
  return {
    ...real,
    readJsonlBatches: async function* (...args: Parameters<typeof real.readJsonlBatches>) {
      await beforeRead();
      try {
        yield* real.readJsonlBatches(...args);
      } finally {
        await afterRead();
      }
    },
  };
});
vi.mock('../../../src/fs/LineCursor.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../../src/fs/LineCursor.js')>();
  class LineCursor extends real.LineCursor {
    override async read(...args: Parameters<InstanceType<typeof real.LineCursor>['read']>): Promise<number> {
      await beforeRead();
      try {
        return await super.read(...args);
      } finally {
        await afterRead();
      }
    }
  }
  return { LineCursor };
});
const { WorkspaceStorage } = await import('../../../src/core/storage/WorkspaceStorage.js');
const { Outbox } = await import('../../../src/core/messages/Outbox.js');

const T = '2026-01-01T00:00:00.000Z';
const entry = (n: string, to = 'agent_002') => ({ id: `msg_${n}`, conversationId: `agent_001+${to}`, to, text: n, sentAt: T });

/**
 * An outbox over a real workspace whose journal holds these messages from an
 * earlier run, two of them in memory (offline, it keeps one send window's worth, at most half of
 * `maxQueuedInMemory`); `frames` records what it sends once online.
 */
async function outboxWith(entries: Array<ReturnType<typeof entry> & { expiresAt?: string }>, maxQueuedInMemory = 4) {
  const storage = await WorkspaceStorage.open({ workspacePath: join(await tempDir(), 'ws'), agentId: 'agent_001' });
  await storage.outbox.put(entries);
  const errors: string[] = [];
  const frames: string[] = [];
  // Where the socket would be: frames are recorded and count as written at once.
  const link = {
    // The outbox hands the link each send frame as its JSON text.
    sendOrFail: (frame: string, written: () => void) => {
      frames.push((JSON.parse(frame) as { id: string }).id.slice('msg_'.length));
      queueMicrotask(written);
      return true;
    },
  };
  const outbox = new Outbox({
    storage,
    agentId: 'agent_001',
    link: link as never,
    window: 10,
    ackTimeoutMs: 10_000,
    maxAttempts: 3,
    maxQueuedInMemory,
    onStatus: () => {},
    onError: (err) => errors.push(String(err)),
  });
  await outbox.start();
  return { storage, outbox, errors, frames };
}

const settle = () => new Promise((r) => setTimeout(r, 100));

/** Six expired messages, four of them spilled, and a sweep whose look through the journal is held while the refill, started as the two in memory fail, reads c and d back. */
async function heldExpiryScan() {
  const { storage, outbox, errors } = await outboxWith(['a', 'b', 'c', 'd', 'e', 'f'].map((n) => ({ ...entry(n), expiresAt: T })));
  expect(storage.outbox.spilled).toBe(4);
  let release: () => void = () => {};
  hook.gate = new Promise((r) => (release = r));
  outbox.sweepExpired(Date.parse(T) + 1);
  await settle();
  return { storage, outbox, errors, release };
}

/**
 * Sends message `name` as the next journal read ends (a refill about to take its messages
 * back), and lets the read end once `until` resolves; gives the send's promise.
 */
function sendAsReadEnds(outbox: InstanceType<typeof Outbox>, name: string, until: () => Promise<unknown>): Promise<Promise<void>> {
  return new Promise((resolve) => {
    hook.atEnd = async () => {
      const n = entry(name);
      const record = { type: 'message' as const, id: n.id, conversationId: n.conversationId, direction: 'out' as const, from: 'agent_001', to: n.to, text: n.text, sentAt: T, status: 'queued' as const };
      resolve(outbox.enqueue(n, record, false));
      await until();
    };
  });
}

describe('Outbox read-back races', () => {
  it('a receipt that finishes a message a refill has just found is not taken for a damaged journal', async () => {
    const { storage, outbox, errors } = await outboxWith(['e0', 'e1', 'A1', 'A2', 'B'].map((n) => entry(n)));
    expect(storage.outbox.spilled).toBe(3);
    // The refill the cancel of e0 starts finds A1; A1's receipt (sent before a restart) lands before it is taken back.
    hook.atEnd = async () => {
      await outbox.receipt([{ id: 'msg_A1', conversationId: 'agent_001+agent_002' }], 'agent_002', T);
    };
    expect(await outbox.cancel('msg_e0')).toBe(true);
    expect(await outbox.cancel('msg_e1')).toBe(true);
    await settle();
    expect(errors).toEqual([]);
    expect(storage.outbox.spilled).toBe(0);
    expect(outbox.stateOf('msg_A2')).toBe('queued');
    expect(outbox.stateOf('msg_B')).toBe('queued');
    outbox.stop();
    await storage.close();
  });

  it('does not send again a spilled message whose receipt comes as a refill finds it', async () => {
    const { storage, outbox, errors, frames } = await outboxWith(['e0', 'e1', 'A'].map((n) => entry(n)));
    let receipted: Promise<void> | undefined;
    // A (sent before a restart) is receipted just as the refill finds it: its status line is on its way.
    hook.atEnd = async () => {
      receipted = outbox.receipt([{ id: 'msg_A', conversationId: 'agent_001+agent_002' }], 'agent_002', T);
    };
    expect(await outbox.cancel('msg_e0')).toBe(true);
    await receipted;
    outbox.online();
    await settle();
    expect(frames).toEqual(['e1']);
    expect(outbox.has('msg_A')).toBe(false);
    expect(errors).toEqual([]);
    outbox.stop();
    await storage.close();
  });

  it('a refill still waiting when the outbox stops reports nothing', async () => {
    const { storage, outbox, errors } = await outboxWith(['e0', 'e1', 'A', 'B', 'C'].map((n) => entry(n)));
    let release: () => void = () => {};
    hook.gate = new Promise((r) => (release = r));
    const cancelB = outbox.cancel('msg_B');
    // The queue drains: a refill waits behind the cancel's read, held.
    expect(await outbox.cancel('msg_e0')).toBe(true);
    outbox.stop();
    release();
    await cancelB.catch(() => {});
    await settle();
    expect(errors).toEqual([]);
    await storage.close();
  });

  it('cancels a spilled message read back as the outbox goes online, before anything can send it', async () => {
    const { storage, outbox, frames } = await outboxWith(['e0', 'e1', 'S1', 'X'].map((n) => entry(n)));
    const cancelled = outbox.cancel('msg_X');
    outbox.online();
    expect(await cancelled).toBe(true);
    await settle();
    expect(frames).toEqual(['e0', 'e1', 'S1']);
    outbox.stop();
    await storage.close();
  });

  it('knows the conversation of a queued message read back while it looked in the journal', async () => {
    const { storage, outbox } = await outboxWith([entry('e0'), entry('e1'), entry('X', 'agent_003')]);
    let release: () => void = () => {};
    hook.gate = new Promise((r) => (release = r));
    const looked = outbox.queuedConversationOf('msg_X');
    // Meanwhile the queue drains and the refill reads X back.
    expect(await outbox.cancel('msg_e0')).toBe(true);
    await settle();
    expect(outbox.has('msg_X')).toBe(true);
    release();
    expect(await looked).toBe('agent_001+agent_003');
    outbox.stop();
    await storage.close();
  });

  it('one sweep fails every expired message, those a refill reads back while it looks through the journal included', async () => {
    const { storage, outbox, errors, release } = await heldExpiryScan();
    release();
    await settle();
    expect(['a', 'b', 'c', 'd', 'e', 'f'].map((n) => outbox.stateOf(`msg_${n}`) ?? 'gone').filter((s) => s === 'queued')).toEqual([]);
    expect(storage.outbox.spilled).toBe(0);
    expect(errors).toEqual([]);
    outbox.stop();
    await storage.close();
  });

  it('with maxQueuedInMemory 1, reads the spilled messages back one at a time and sends them all', async () => {
    const { storage, outbox, errors, frames } = await outboxWith(['a', 'b', 'c', 'd'].map((n) => entry(n)), 1);
    expect(storage.outbox.spilled).toBe(3);
    outbox.online();
    await settle();
    expect(frames).toEqual(['a', 'b', 'c', 'd']);
    expect(errors).toEqual([]);
    outbox.stop();
    await storage.close();
  });

  it('cancels a spilled message that a refill under way reads back, before the refill can send it', async () => {
    // e0 and e1 kept (offline), the rest spilled; online, a refill reads two at a time.
    const { storage, outbox, frames, errors } = await outboxWith(['e0', 'e1', 'e2', 'e3', 'S1', 'X'].map((n) => entry(n)));
    let release: () => void = () => {};
    // The first refill (e2, e3) reads freely; the second (S1, X) is held.
    hook.atEnd = async () => {
      hook.gate = new Promise((r) => (release = r));
    };
    outbox.online();
    await settle();
    expect(frames).toEqual(['e0', 'e1', 'e2', 'e3']);
    const cancelled = outbox.cancel('msg_X');
    release();
    expect(await cancelled).toBe(true);
    await settle();
    expect(frames).toEqual(['e0', 'e1', 'e2', 'e3', 'S1']);
    expect(outbox.has('msg_X')).toBe(false);
    expect(errors).toEqual([]);
    outbox.stop();
    await storage.close();
  });

  it('keeps only what one refill reads in memory while offline, and sends the whole queue in order once online', async () => {
    const names = Array.from({ length: 10 }, (_, i) => `m${i}`);
    // maxQueuedInMemory 4: a refill reads 2, so offline 2 stay in memory and 8 wait in the journal.
    const { storage, outbox, frames, errors } = await outboxWith(names.map((n) => entry(n)));
    expect(storage.outbox.spilled).toBe(8);
    await settle();
    expect(storage.outbox.spilled).toBe(8);
    outbox.online();
    await settle();
    expect(frames).toEqual(names);
    expect(storage.outbox.spilled).toBe(0);
    expect(errors).toEqual([]);
    outbox.stop();
    await storage.close();
  });

  it('a refill that fails is tried again, and the queue moves on with nothing else happening', async () => {
    const { storage, outbox, frames, errors } = await outboxWith(['e0', 'e1', 'S1', 'S2'].map((n) => entry(n)));
    let release: () => void = () => {};
    hook.gate = new Promise((r) => (release = r));
    outbox.online();
    await settle();
    expect(frames).toEqual(['e0', 'e1']);
    outbox.onAck({ type: 'ack', id: 'msg_e0', seq: 1, at: T });
    outbox.onAck({ type: 'ack', id: 'msg_e1', seq: 2, at: T });
    await settle();
    // The held refill fails; no send, ack or reconnect follows.
    hook.fail = true;
    release();
    await new Promise((r) => setTimeout(r, 500));
    expect(errors).toHaveLength(1);
    expect(frames).toEqual(['e0', 'e1', 'S1', 'S2']);
    outbox.stop();
    await storage.close();
  });

  it('a message put while the last spilled one is read back stays behind it, across a close and a restart', async () => {
    const { storage, outbox, errors } = await outboxWith(['e000', 'e001', 'S001'].map((n) => entry(n)));
    expect(storage.outbox.spilled).toBe(1);
    let release: () => void = () => {};
    hook.gate = new Promise((r) => (release = r));
    // As the refill (reading S001) ends, N is sent: its put is under way when S001 is taken back.
    const sending = sendAsReadEnds(outbox, 'NNNN', async () => {
      while (!storage.outbox.has('msg_NNNN')) await new Promise((r) => setImmediate(r));
    });
    // The queue in memory empties: the refill starts, held.
    expect(await outbox.cancel('msg_e000')).toBe(true);
    expect(await outbox.cancel('msg_e001')).toBe(true);
    release();
    await (await sending);
    await settle();
    // The client closes offline: the journal is compacted from memory.
    await outbox.settled();
    outbox.stop();
    await storage.close();
    const again = await WorkspaceStorage.open({ workspacePath: storage.paths.workspace, agentId: 'agent_001' });
    const frames: string[] = [];
    const link = { sendOrFail: (f: string, written: () => void) => (frames.push((JSON.parse(f) as { id: string }).id.slice('msg_'.length)), queueMicrotask(written), true) };
    const next = new Outbox({ storage: again, agentId: 'agent_001', link: link as never, window: 10, ackTimeoutMs: 10_000, maxAttempts: 3, maxQueuedInMemory: 4, onStatus: () => {}, onError: (err) => errors.push(String(err)) });
    await next.start();
    next.online();
    await settle();
    // One conversation: S001 was sent (queued) before NNNN.
    expect(frames).toEqual(['S001', 'NNNN']);
    expect(errors).toEqual([]);
    next.stop();
    await again.close();
  });

  it('an expiry scan that ends after the outbox stopped fails nothing and writes nothing', async () => {
    const { storage, outbox, errors, release } = await heldExpiryScan();
    expect(outbox.stateOf('msg_c')).toBe('queued');
    // The client closes: the outbox stops, then the storage closes, and only then does the scan end.
    outbox.stop();
    await storage.close();
    release();
    await settle();
    expect(errors).toEqual([]);
  });

  it('a message put while the last spilled one is read back, and kept in memory by a compaction, stays behind it', async () => {
    const { storage, outbox, errors } = await outboxWith(['e000', 'e001', 'S001'].map((n) => entry(n)));
    expect(storage.outbox.spilled).toBe(1);
    // Messages finished in one go below, enough to start a compaction of the journal.
    const done = Array.from({ length: 4100 }, (_, i) => entry(`j${String(i).padStart(5, '0')}`, 'agent_009'));
    await storage.outbox.put(done);
    let releaseWrite: () => void = () => {};
    const { spy, entered } = await holdWriteOf('{"op":"put","entry":{"id":"msg_NNNN"', new Promise<void>((r) => (releaseWrite = r)));
    let release: () => void = () => {};
    hook.gate = new Promise((r) => (release = r));
    // As the refill (reading S001) ends, N is sent; its put is held on the disk.
    const sending = sendAsReadEnds(outbox, 'NNNN', () => entered);
    expect(await outbox.cancel('msg_e000')).toBe(true);
    expect(await outbox.cancel('msg_e001')).toBe(true);
    release();
    while (storage.outbox.spilled !== 0) await new Promise((r) => setImmediate(r));
    // Nothing spilled: the finished messages start a compaction, which refuses N's spill.
    storage.outbox.finish(done.map((e) => e.id));
    releaseWrite();
    await (await sending);
    spy.mockRestore();
    expect(storage.outbox.isSpilled('msg_NNNN')).toBe(false);
    await settle();
    await outbox.settled();
    outbox.stop();
    await storage.close();
    // The journal, compacted from memory, holds them in send order.
    const ids = (await readFile(storage.outbox.path, 'utf8')).trim().split('\n').map((line) => (JSON.parse(line) as { entry: { id: string } }).entry.id);
    expect(ids).toEqual(['msg_S001', 'msg_NNNN']);
    expect(errors).toEqual([]);
  });
});

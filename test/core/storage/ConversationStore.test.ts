import { appendFile, mkdir } from 'node:fs/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { StorageWarning } from '../../../src/fs/StorageWarning.js';
import { ConversationStore } from '../../../src/core/storage/ConversationStore.js';
import { WorkspacePaths } from '../../../src/core/storage/paths.js';
import type { ConversationRecord, MessageRecord } from '../../../src/core/storage/records.js';
import { tempDir } from '../../helpers/tmp.js';

const CID = 'agent_001+agent_002';
const at = (n: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString();

function out(n: number): MessageRecord {
  return { type: 'message', id: `msg_${String(n).padStart(8, '0')}`, conversationId: CID, direction: 'out', from: 'agent_001', to: 'agent_002', text: `out ${n}`, sentAt: at(n), status: 'queued' };
}
function inbound(n: number, seq: number): MessageRecord {
  return { type: 'message', id: `in_${String(n).padStart(8, '0')}`, conversationId: CID, direction: 'in', from: 'agent_002', to: 'agent_001', text: `in ${n}`, sentAt: at(n), seq, serverAt: at(n) };
}
const status = (n: number, s: 'acked' | 'delivered' | 'failed', extra: object = {}): ConversationRecord => ({
  type: 'status', id: `msg_${String(n).padStart(8, '0')}`, status: s, at: at(n + 1000), ...extra,
});

async function store(maxOpenFiles?: number): Promise<{ store: ConversationStore; paths: WorkspacePaths; warnings: StorageWarning[] }> {
  const paths = new WorkspacePaths(await tempDir('ws-'));
  const warnings: StorageWarning[] = [];
  const s = new ConversationStore(paths, { onWarning: (w) => warnings.push(w), ...(maxOpenFiles ? { maxOpenFiles } : {}) });
  onTestFinished(() => s.close());
  await mkdir(paths.conversations, { recursive: true });
  return { store: s, paths, warnings };
}

describe('ConversationStore.history', () => {
  it('returns the newest `limit` messages oldest first, statuses folded in', async () => {
    const { store: s } = await store();
    await s.append(CID, [out(1), inbound(2, 1), out(3), status(1, 'acked', { seq: 5, serverAt: at(1) }), status(1, 'delivered'), out(4), status(3, 'acked', { seq: 6 })]);
    const page = await s.history(CID, { limit: 3 });
    expect(page.hasMore).toBe(true);
    expect(page.messages.map((m) => m.text)).toEqual(['in 2', 'out 3', 'out 4']);
    expect(page.messages.map((m) => m.status)).toEqual([undefined, 'acked', 'queued']);
    const all = await s.history(CID, { limit: 50 });
    expect(all.hasMore).toBe(false);
    expect(all.messages[0]).toMatchObject({ id: 'msg_00000001', status: 'delivered', seq: 5, deliveredAt: at(1001), direction: 'out', from: 'agent_001' });
  });

  it('folds status lines into our message only, when the contact\'s message has the same id', async () => {
    const { store: s } = await store();
    // Ids are unique per sender: the contact's reply reuses our request's id, and overtakes our receipt.
    const reply: MessageRecord = { ...inbound(9, 2), id: out(1).id, text: 'reply' };
    await s.append(CID, [out(1), status(1, 'acked', { seq: 1 }), reply, status(1, 'delivered')]);
    const page = await s.history(CID, { limit: 10 });
    expect(page.messages.map((m) => [m.from, m.text, m.status, m.seq])).toEqual([
      ['agent_001', 'out 1', 'delivered', 1],
      ['agent_002', 'reply', undefined, 2],
    ]);
    expect(await s.find(CID, out(1).id, 'agent_001')).toMatchObject({ text: 'out 1', status: 'delivered' });
    expect(await s.find(CID, out(1).id, 'agent_002')).toMatchObject({ text: 'reply', seq: 2 });
  });

  it('pages backwards with `before`', async () => {
    const { store: s } = await store();
    const records: ConversationRecord[] = [];
    for (let n = 1; n <= 20; n++) records.push(out(n));
    records.push(status(2, 'acked'));
    await s.append(CID, records);
    const page1 = await s.history(CID, { limit: 8 });
    expect(page1.messages.map((m) => m.text)).toEqual(Array.from({ length: 8 }, (_, i) => `out ${13 + i}`));
    const page2 = await s.history(CID, { limit: 8, before: page1.messages[0]!.id });
    expect(page2.messages.map((m) => m.text)).toEqual(Array.from({ length: 8 }, (_, i) => `out ${5 + i}`));
    const page3 = await s.history(CID, { limit: 8, before: page2.messages[0]!.id });
    expect(page3.messages.map((m) => m.text)).toEqual(['out 1', 'out 2', 'out 3', 'out 4']);
    expect(page3.hasMore).toBe(false);
    // A status line written long after its message still folds into it on a later page.
    expect(page3.messages[1]!.status).toBe('acked');
  });

  it('resumes paging where the previous page stopped, folding statuses appended in between', async () => {
    const { store: s } = await store();
    const records: ConversationRecord[] = [];
    for (let n = 1; n <= 30; n++) records.push(out(n));
    await s.append(CID, records);
    const page1 = await s.history(CID, { limit: 10 });
    // While the caller reads page 1, older messages get acked and delivered.
    await s.append(CID, [status(3, 'acked', { seq: 33 }), status(3, 'delivered'), out(31)]);
    const page2 = await s.history(CID, { limit: 10, before: page1.messages[0]!.id });
    const page3 = await s.history(CID, { limit: 10, before: page2.messages[0]!.id });
    expect([...page3.messages, ...page2.messages, ...page1.messages].map((m) => m.text)).toEqual(Array.from({ length: 30 }, (_, i) => `out ${i + 1}`));
    expect(page3.messages[2]).toMatchObject({ text: 'out 3', status: 'delivered', seq: 33 });
    expect(page3.hasMore).toBe(false);
  });

  it('never lets a status move a message backwards (a duplicate or late receipt)', async () => {
    const { store: s } = await store();
    await s.append(CID, [out(1), status(1, 'delivered'), status(1, 'acked', { seq: 9 })]);
    const [m] = (await s.history(CID, { limit: 1 })).messages;
    expect(m).toMatchObject({ status: 'delivered', seq: 9 });
  });

  it('lets a receipt overrule a failure the client gave up on, keeping the error', async () => {
    const { store: s } = await store();
    const reason = { code: 'TIMEOUT', message: 'no ack after 10 attempts' };
    await s.append(CID, [out(1), status(1, 'failed', { reason }), status(1, 'delivered')]);
    const [m] = (await s.history(CID, { limit: 1 })).messages;
    expect(m).toMatchObject({ status: 'delivered', deliveredAt: at(1001), error: reason });
  });

  it('skips a torn last line and a corrupt middle line with warnings, keeping the messages around them', async () => {
    const { store: s, paths, warnings } = await store();
    await s.append(CID, [out(1)]);
    await appendFile(paths.conversation(CID), 'not json at all\n');
    await s.append(CID, [out(2)]);
    await s.close();
    await appendFile(paths.conversation(CID), '{"type":"message","id":"msg_0000');
    const fresh = new ConversationStore(paths, { onWarning: (w) => warnings.push(w) });
    const page = await fresh.history(CID, { limit: 10 });
    expect(page.messages.map((m) => m.text)).toEqual(['out 1', 'out 2']);
    expect(warnings).toHaveLength(2);
    expect(warnings.every((w) => w.file === paths.conversation(CID))).toBe(true);
    // Appending after the torn line keeps both the old and the new records readable.
    await fresh.append(CID, [out(3)]);
    const forward: string[] = [];
    for await (const r of fresh.records(CID)) if (r.value.type === 'message') forward.push(r.value.text);
    expect(forward).toEqual(['out 1', 'out 2', 'out 3']);
    await fresh.close();
  });

  it('returns the tail of a long conversation', async () => {
    const { store: s } = await store();
    const batch: ConversationRecord[] = [];
    for (let n = 1; n <= 20_000; n++) batch.push(out(n));
    await s.append(CID, batch);
    const page = await s.history(CID, { limit: 5 });
    expect(page.messages.map((m) => m.text)).toEqual(['out 19996', 'out 19997', 'out 19998', 'out 19999', 'out 20000']);
  });

  it('keeps appends working across many conversations with a small pool of open files', async () => {
    const { store: s } = await store(2);
    const ids = ['c-1', 'c-2', 'c-3', 'c-4', 'c-5'];
    await Promise.all(
      Array.from({ length: 100 }, (_, i) => {
        const id = ids[i % ids.length]!;
        return s.append(id, [{ ...out(i), conversationId: id }]);
      }),
    );
    for (const id of ids) expect((await s.history(id, { limit: 100 })).messages).toHaveLength(20);
    expect((await s.list()).sort()).toEqual(ids);
  });
});

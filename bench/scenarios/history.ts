import type { ConversationRecord } from '../../src/core/storage/records.js';
import { WorkspaceStorage } from '../../src/core/storage/WorkspaceStorage.js';
import { directConversationId } from '../../src/protocol/ids.js';
import { PeerProcess } from '../lib/PeerProcess.js';
import { median } from '../lib/stats.js';
import { removeDir, tempDir } from '../lib/servers.js';
import { bodyOf } from '../peers/Peer.js';

const ME = 'bench_a';
const THEM = 'bench_b';

export interface HistoryResult {
  /** The first query of a freshly opened client (nothing cached), ms. */
  coldMs: number;
  /** Later queries of the same client, median ms. */
  warmMs: number;
  fileBytes: number;
}

/**
 * Writes a conversation of `count` messages (half sent, with their acked and
 * delivered status lines; half received) through the storage layer.
 */
export async function writeConversation(workspacePath: string, count: number): Promise<number> {
  const storage = await WorkspaceStorage.open({ workspacePath, agentId: ME });
  const conversationId = directConversationId(ME, THEM);
  const start = Date.parse('2026-01-01T00:00:00Z');
  try {
    let batch: ConversationRecord[] = [];
    for (let i = 0; i < count; i++) {
      const at = new Date(start + i * 1000).toISOString();
      const out = i % 2 === 0;
      const id = `m${String(i).padStart(8, '0')}`;
      batch.push({ type: 'message', id, conversationId, direction: out ? 'out' : 'in', from: out ? ME : THEM, to: out ? THEM : ME, text: bodyOf(i), sentAt: at, ...(out ? { status: 'queued' as const } : { seq: i + 1, serverAt: at }) });
      if (out) {
        batch.push({ type: 'status', id, status: 'acked', at, seq: i + 1, serverAt: at });
        batch.push({ type: 'status', id, status: 'delivered', at });
      }
      if (batch.length >= 30_000) {
        await storage.conversations.append(conversationId, batch);
        batch = [];
      }
    }
    await storage.conversations.append(conversationId, batch);
    return await storage.conversations.scanStart(conversationId);
  } finally {
    await storage.close();
  }
}

/** A workspace holding one conversation of `count` messages; remove it when done. */
export async function conversationWorkspace(count: number): Promise<{ workspace: string; fileBytes: number }> {
  const workspace = await tempDir(`im-bench-history-${count}-`);
  return { workspace, fileBytes: await writeConversation(workspace, count) };
}

/** The last `limit` messages of the conversation in `workspace`, as a client opened on it sees them. */
export async function historyQuery(workspace: string, expectLast: string, limit = 50, warm = 20): Promise<Omit<HistoryResult, 'fileBytes'>> {
  const peer = PeerProcess.start();
  try {
    await peer.call('init', { kind: 'im', url: 'http://127.0.0.1:9', agentId: ME, window: 1000, workspace });
    await peer.call('open');
    const query = async () => {
      const r = await peer.call<{ ms: number; count: number; last: string }>('history', { contactId: THEM, limit });
      if (r.count !== limit || r.last !== expectLast) throw new Error(`history returned ${r.count} messages ending with ${r.last}`);
      return r.ms;
    };
    const coldMs = await query();
    const warmRuns: number[] = [];
    for (let i = 0; i < warm; i++) warmRuns.push(await query());
    return { coldMs, warmMs: median(warmRuns) };
  } finally {
    await peer.call('close').catch(() => {});
    await peer.stop();
  }
}

export { removeDir };

import { join } from 'node:path';
import { z } from 'zod';
import { OutboxRecord } from '../../src/core/storage/records.js';
import { readJsonl } from '../../src/fs/readJsonl.js';

/**
 * The ids still in a workspace's outbox, as the client would find them on
 * start: put in `outbox.jsonl` (and not done there, as earlier versions
 * wrote), and without a final status line in their conversation file (the
 * line, not the journal, records that a message left).
 */
export async function outboxIds(workspacePath: string): Promise<string[]> {
  const live = new Map<string, string>();
  for await (const { value } of readJsonl(join(workspacePath, 'im_client', 'outbox.jsonl'), OutboxRecord)) {
    if (value.op === 'put') live.set(value.entry.id, value.entry.conversationId);
    else live.delete(value.id);
  }
  const Line = z.object({ type: z.string(), id: z.string(), status: z.string().optional() });
  for (const conversationId of new Set(live.values())) {
    for await (const { value } of readJsonl(join(workspacePath, 'im_client', 'conversations', `${conversationId}.jsonl`), Line)) {
      if (value.type === 'status' && value.status !== 'queued' && value.status !== 'sending') live.delete(value.id);
    }
  }
  return [...live.keys()];
}

/** The status lines written for a message in a conversation file, in order (`message` for its message line). */
export async function linesOf(workspacePath: string, conversationId: string, id: string): Promise<string[]> {
  const Line = z.object({ type: z.string(), id: z.string(), status: z.string().optional() });
  const out: string[] = [];
  for await (const { value } of readJsonl(join(workspacePath, 'im_client', 'conversations', `${conversationId}.jsonl`), Line)) {
    if (value.id === id) out.push(value.type === 'message' ? 'message' : value.status!);
  }
  return out;
}

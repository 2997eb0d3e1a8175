import { readdir, stat } from 'node:fs/promises';
import { IMClientError, storageIoError } from '../../errors.js';
import { JsonlWriter } from '../../fs/JsonlWriter.js';
import { parseLine, readJsonl, type JsonlRecord } from '../../fs/readJsonl.js';
import { readLinesBackward } from '../../fs/readLinesBackward.js';
import type { WarningListener } from '../../fs/StorageWarning.js';
import { applyStatus, messageFromRecord, type IMMessage } from '../IMMessage.js';
import { conversationLine } from '../../util/jsonText.js';
import type { WorkspacePaths } from './paths.js';
import { ConversationRecord, type StatusRecord } from './records.js';

/** Options of {@link ConversationStore.history}. */
export interface HistoryQuery {
  /** How many messages to return at most. */
  limit: number;
  /** Return only messages older than the message with this id. */
  before?: string | undefined;
}

/** Where a backward history scan stopped. */
interface Scan {
  /** File length when the scan started. */
  length: number;
  /** Offset of the oldest message returned: the next page ends there. */
  resumeAt: number;
  /** Status lines already read whose messages are older. */
  statuses: Map<string, StatusRecord[]>;
}

function scanKey(conversationId: string, messageId: string): string {
  return `${conversationId}\n${messageId}`;
}

function addStatus(statuses: Map<string, StatusRecord[]>, record: StatusRecord): void {
  const list = statuses.get(record.id);
  if (list) list.push(record);
  else statuses.set(record.id, [record]);
}

/** A page of history, oldest first. */
export interface HistoryPage {
  messages: IMMessage[];
  /** Whether older messages exist before the first one returned. */
  hasMore: boolean;
}

/**
 * The conversation logs `conversations/{conversation_id}.jsonl`: append-only
 * JSONL, one `message` line per message and one `status` line per later
 * lifecycle step of an outgoing message. Appends are group-committed per file;
 * reads fold status lines into their message.
 *
 * Writers are pooled: at most `maxOpenFiles` files stay open, the least
 * recently used one is closed when another is needed.
 */
export class ConversationStore {
  readonly #paths: WorkspacePaths;
  readonly #onWarning: WarningListener | undefined;
  readonly #maxOpen: number;
  readonly #writers = new Map<string, Promise<JsonlWriter>>();
  /** Writers evicted from the pool and still flushing; a new writer for the same file waits for them. */
  readonly #closing = new Map<string, Promise<void>>();
  #closed = false;
  /** Where recent history pages stopped, by conversation and oldest message id, to resume paging from. */
  readonly #scans = new Map<string, Scan>();

  constructor(paths: WorkspacePaths, options: { onWarning?: WarningListener | undefined; maxOpenFiles?: number } = {}) {
    this.#paths = paths;
    this.#onWarning = options.onWarning;
    this.#maxOpen = options.maxOpenFiles ?? 64;
  }

  /** Appends records to a conversation; resolves once they are durable. */
  async append(conversationId: string, records: readonly ConversationRecord[]): Promise<void> {
    // Async: a record that cannot be encoded rejects, like a failed write, instead of throwing.
    return this.appendLines(conversationId, records.map(conversationLine));
  }

  /** Appends lines already written as JSON (by `src/util/jsonText.ts`) to a conversation; resolves once they are durable. */
  async appendLines(conversationId: string, lines: readonly string[]): Promise<void> {
    for (;;) {
      if (this.#closed) throw new IMClientError('CLOSED', 'the conversation store is closed');
      const writer = await this.#writer(conversationId);
      // The pool may have evicted (closed) this writer while we waited for it: take a fresh one.
      if (!writer.closed) return writer.append(lines);
    }
  }

  /**
   * A byte offset at or before which the next record appended to the
   * conversation starts (where a scan for it can begin): the file's length
   * as far as its writes have settled, since a failing write is taken back.
   */
  async scanStart(conversationId: string): Promise<number> {
    return (await this.#writer(conversationId)).settledLength;
  }

  /** The ids of every conversation that has a file. */
  async list(): Promise<string[]> {
    try {
      const names = await readdir(this.#paths.conversations);
      return names.filter((n) => n.endsWith('.jsonl')).map((n) => n.slice(0, -'.jsonl'.length));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw storageIoError(this.#paths.conversations, err);
    }
  }

  /** Every valid record of a conversation, front to back, from byte `start`. */
  records(conversationId: string, start = 0): AsyncGenerator<JsonlRecord<ConversationRecord>> {
    return readJsonl(this.#paths.conversation(conversationId), ConversationRecord, { onWarning: this.#onWarning, start });
  }

  /**
   * The newest `limit` messages (older than `before`, when given), oldest
   * first, with their statuses folded in. Reads the file backwards from its
   * end, so the cost depends on how far back the page is, not on the size of
   * the conversation. Paging on with `before` set to the oldest message of
   * the previous page resumes where that page stopped (plus whatever was
   * appended since), so reading a whole conversation page by page is linear.
   */
  async history(conversationId: string, query: HistoryQuery): Promise<HistoryPage> {
    const file = this.#paths.conversation(conversationId);
    const writer = await this.#writers.get(conversationId);
    await writer?.flush();
    // Where the lines settled so far end: a batch being written past it may still be taken back, and
    // a page resumed from inside it would start in the middle of a line.
    const length = await stat(file).then(
      (st) => Math.min(st.size, writer?.settledLength ?? Infinity),
      () => 0,
    );
    // Status lines come after their message, so reading backwards meets them first.
    let statuses = new Map<string, StatusRecord[]>();
    let end = length;
    let reachedBefore = query.before === undefined;
    const resume = query.before === undefined ? undefined : this.#scans.get(scanKey(conversationId, query.before));
    if (resume && resume.length <= length) {
      statuses = new Map([...resume.statuses].map(([id, list]) => [id, [...list]]));
      // Lines appended since the previous page may hold statuses of older messages; they are the
      // newest, so they go first in the newest-first lists.
      const appended = new Map<string, StatusRecord[]>();
      for await (const { value } of this.records(conversationId, resume.length)) {
        if (value.type === 'status') addStatus(appended, value);
      }
      for (const [id, list] of appended) statuses.set(id, [...list.reverse(), ...(statuses.get(id) ?? [])]);
      end = resume.resumeAt;
      reachedBefore = true;
    }
    const newestFirst: IMMessage[] = [];
    let oldestOffset = 0;
    let hasMore = false;
    for await (const { text, offset } of readLinesBackward(file, { end })) {
      const parsed = parseLine(text, ConversationRecord);
      if (!parsed.ok) {
        this.#onWarning?.({ file, offset, reason: parsed.reason });
        continue;
      }
      const record = parsed.value;
      if (record.type === 'status') {
        addStatus(statuses, record);
        continue;
      }
      // Status lines are written for outgoing messages only: a contact's message may share the id.
      const ours = record.direction === 'out';
      if (!reachedBefore) {
        if (record.id === query.before) reachedBefore = true;
        if (ours) statuses.delete(record.id);
        continue;
      }
      if (newestFirst.length === query.limit) {
        hasMore = true;
        break;
      }
      const message = messageFromRecord(record);
      // Collected newest first: replay them oldest first.
      const list = ours ? statuses.get(record.id) : undefined;
      if (list) {
        for (let i = list.length - 1; i >= 0; i--) applyStatus(message, list[i]!);
        statuses.delete(record.id);
      }
      newestFirst.push(message);
      oldestOffset = offset;
    }
    const oldest = newestFirst.at(-1);
    if (hasMore && oldest) this.#remember(scanKey(conversationId, oldest.id), { length, resumeAt: oldestOffset, statuses });
    return { messages: newestFirst.reverse(), hasMore };
  }

  /**
   * The message `from` sent with this id (ids are unique per sender, so the
   * other party's message may share it), statuses folded in, or undefined.
   * Reads the file backwards until it is found: cheap for recent messages, a
   * full read for an id that is not there.
   */
  async find(conversationId: string, id: string, from: string): Promise<IMMessage | undefined> {
    const file = this.#paths.conversation(conversationId);
    await this.#writers.get(conversationId)?.then((w) => w.flush());
    const statuses: StatusRecord[] = [];
    // A cheap filter before parsing: every line holding this id contains it quoted.
    const needle = JSON.stringify(id);
    for await (const { text } of readLinesBackward(file)) {
      if (!text.includes(needle)) continue;
      const parsed = parseLine(text, ConversationRecord);
      if (!parsed.ok || parsed.value.id !== id) continue;
      if (parsed.value.type === 'status') {
        statuses.push(parsed.value);
        continue;
      }
      if (parsed.value.from !== from) continue;
      const message = messageFromRecord(parsed.value);
      // Status lines are written for outgoing messages only.
      if (message.direction === 'out') for (let i = statuses.length - 1; i >= 0; i--) applyStatus(message, statuses[i]!);
      return message;
    }
    return undefined;
  }

  #remember(key: string, scan: Scan): void {
    this.#scans.delete(key);
    this.#scans.set(key, scan);
    if (this.#scans.size > 64) this.#scans.delete(this.#scans.keys().next().value as string);
  }

  /** Flushes and closes every open file. */
  async close(): Promise<void> {
    this.#closed = true;
    const writers = [...this.#writers.values()];
    this.#writers.clear();
    await Promise.all(writers.map(async (w) => (await w).close()));
  }

  #writer(conversationId: string): Promise<JsonlWriter> {
    let writer = this.#writers.get(conversationId);
    if (writer) {
      // Re-insert to mark it most recently used.
      this.#writers.delete(conversationId);
      this.#writers.set(conversationId, writer);
      return writer;
    }
    const file = this.#paths.conversation(conversationId);
    const closing = this.#closing.get(conversationId);
    writer = closing ? closing.then(() => JsonlWriter.open(file)) : JsonlWriter.open(file);
    this.#writers.set(conversationId, writer);
    writer.catch(() => this.#writers.delete(conversationId));
    if (this.#writers.size > this.#maxOpen) {
      const [oldestId, oldest] = this.#writers.entries().next().value as [string, Promise<JsonlWriter>];
      this.#writers.delete(oldestId);
      const closed = oldest.then((w) => w.close()).catch(() => {});
      this.#closing.set(oldestId, closed);
      void closed.then(() => {
        if (this.#closing.get(oldestId) === closed) this.#closing.delete(oldestId);
      });
    }
    return writer;
  }
}

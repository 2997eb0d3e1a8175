import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { IMClientError, storageIoError } from '../../errors.js';
import { removeStaleTempFiles } from '../../fs/atomicWriteFile.js';
import { FileLock } from '../../fs/FileLock.js';
import { fsyncDir } from '../../fs/fsyncDir.js';
import type { WarningListener } from '../../fs/StorageWarning.js';
import type { InboxPosition } from '../../protocol/handshake.js';
import { assertId, isId } from '../../protocol/ids.js';
import type { WireMessage } from '../../protocol/message.js';
import { quote } from '../../util/jsonText.js';
import { AgentInbox, type SegmentRecord } from './AgentInbox.js';
import { DedupeIndex } from './DedupeIndex.js';
import { InboxFullError, type AcceptedMessage, type InboxEntry, type InboxStore, type ReceiptBody } from './InboxStore.js';
import { OpenSegments } from './OpenSegments.js';

/** Options of {@link FileInboxStore}. */
export interface FileInboxStoreOptions {
  /** Directory holding `inboxes/`, `dedupe.jsonl` and `server.lock`. */
  dataDir: string;
  /** Roll an inbox to a new segment file at this size. @default 8 MiB */
  segmentBytes?: number | undefined;
  /** How long a message id is remembered for deduplication. @default 24 h */
  dedupeWindowMs?: number | undefined;
  /** Most message ids remembered for deduplication. @default 1,000,000 */
  dedupeMaxEntries?: number | undefined;
  /** Most inbox segment files held open at once; idle ones beyond it are closed until next written. @default 1024 */
  maxOpenSegments?: number | undefined;
  onWarning?: WarningListener | undefined;
}

/**
 * The reference server's durable store: one folder of segment files per
 * agent under `{dataDir}/inboxes/`, plus `dedupe.jsonl`. Appends are
 * group-committed per inbox (many messages, one fsync) and acknowledged to
 * senders only once synced. See docs/protocol.md, "Reference server storage".
 */
export class FileInboxStore implements InboxStore {
  readonly dataDir: string;
  readonly #segmentBytes: number;
  readonly #onWarning: WarningListener | undefined;
  readonly #dedupe: DedupeIndex;
  readonly #segments: OpenSegments;
  readonly #inboxes = new Map<string, Promise<AgentInbox>>();
  /** Inboxes that finished loading, for the hot path (no await for an open inbox). */
  readonly #loaded = new Map<string, AgentInbox>();
  #lock: FileLock | undefined;
  #closing = false;

  constructor(options: FileInboxStoreOptions) {
    this.dataDir = options.dataDir;
    this.#segmentBytes = options.segmentBytes ?? 8 * 1024 * 1024;
    this.#onWarning = options.onWarning;
    this.#segments = new OpenSegments(options.maxOpenSegments ?? 1024);
    this.#dedupe = new DedupeIndex(join(this.dataDir, 'dedupe.jsonl'), {
      windowMs: options.dedupeWindowMs ?? 24 * 60 * 60 * 1000,
      maxEntries: options.dedupeMaxEntries ?? 1_000_000,
    });
  }

  /** Takes the data-directory lock and loads every inbox. */
  async open(): Promise<void> {
    const inboxesDir = join(this.dataDir, 'inboxes');
    try {
      await mkdir(inboxesDir, { recursive: true });
      // Its entry in the data directory is durable before any inbox in it is.
      await fsyncDir(this.dataDir);
    } catch (err) {
      throw storageIoError(inboxesDir, err);
    }
    this.#lock = await FileLock.acquire(join(this.dataDir, 'server.lock'), 'im-server');
    try {
      await removeStaleTempFiles(this.dataDir);
      await this.#dedupe.load(this.#onWarning);
      const names = await readdir(inboxesDir);
      for (const name of names) {
        if (!isId('agentId', name)) continue;
        await this.#inbox(name);
      }
      await this.#dedupe.finishLoad();
    } catch (err) {
      // Nothing the half-open store opened stays open (inboxes loaded so far, the dedupe index).
      await this.close().catch(() => {});
      throw err;
    }
  }

  /**
   * Closes every inbox (those still loading once loaded; one that failed to
   * load has nothing open), the dedupe index and the lock, whatever fails.
   * No inbox is opened once closing has begun.
   */
  async close(): Promise<void> {
    this.#closing = true;
    try {
      const inboxes = await Promise.allSettled(this.#inboxes.values());
      const closed = await Promise.allSettled(inboxes.flatMap((i) => (i.status === 'fulfilled' ? [i.value.close()] : [])));
      const dedupe = await this.#dedupe.close().then(
        () => undefined,
        (err: unknown) => ({ err }),
      );
      // An inbox's failure is reported first; the dedupe index's if it is the only one.
      const failed = closed.find((c) => c.status === 'rejected');
      if (failed) throw failed.reason;
      if (dedupe) throw dedupe.err;
    } finally {
      await this.#lock?.release();
    }
  }

  async position(agentId: string): Promise<InboxPosition> {
    return (await this.#inbox(agentId)).position();
  }

  async backlog(agentId: string): Promise<number> {
    return (await this.#inbox(agentId)).backlog;
  }

  async findAccepted(from: string, id: string): Promise<AcceptedMessage | undefined> {
    return this.#dedupe.get(from, id);
  }

  findAcceptedNow(from: string, id: string): AcceptedMessage | undefined {
    return this.#dedupe.get(from, id);
  }

  async appendMessage(message: WireMessage, digest: string, limits: { maxBacklog?: number } = {}): Promise<AcceptedMessage> {
    const [accepted] = await this.appendMessages(message.to, [{ message, digest }], limits);
    if (!accepted) throw new InboxFullError(message.to, limits.maxBacklog ?? Infinity);
    return accepted;
  }

  async appendMessages(to: string, batch: ReadonlyArray<{ message: WireMessage; digest: string }>, limits: { maxBacklog?: number } = {}): Promise<Array<AcceptedMessage | undefined>> {
    for (const { message } of batch) {
      if (message.to !== to) throw new TypeError(`appendMessages: message ${message.id} is to "${message.to}", not "${to}"`);
    }
    const inbox = this.#loaded.get(to) ?? (await this.#inbox(to));
    const { first, count } = await inbox.appendMany(
      batch.length,
      (i, seq) => {
        const { message, digest } = batch[i]!;
        // A flat string (not a template's concatenation): it is embedded in the line and in every delivery.
        const payload = JSON.stringify(message);
        return {
          // Built by hand so the message JSON is serialised once, for the file and the delivery alike.
          line: `{"k":"m","seq":${seq},"d":${quote(digest)},"m":${payload}}`,
          entry: { seq, kind: 'message', payload, from: message.from, id: message.id, conversationId: message.conversationId },
        };
      },
      limits.maxBacklog,
    );
    const out = new Array<AcceptedMessage | undefined>(batch.length).fill(undefined);
    for (let i = 0; i < count; i++) {
      const { message, digest } = batch[i]!;
      const accepted: AcceptedMessage = { to, seq: first + i, at: message.serverAt, digest };
      this.#dedupe.remember(message.from, message.id, accepted);
      out[i] = accepted;
    }
    return out;
  }

  async appendReceipt(to: string, receipt: ReceiptBody): Promise<number> {
    const inbox = await this.#inbox(to);
    const payload = JSON.stringify(receipt);
    return inbox.append((seq) => ({
      line: `{"k":"r","seq":${seq},"r":${payload}}`,
      entry: { seq, kind: 'receipt', payload },
    }));
  }

  async read(agentId: string, afterSeq: number, limit: number): Promise<InboxEntry[]> {
    return (await this.#inbox(agentId)).read(afterSeq, limit);
  }

  /** Unacknowledged entries of the agent with `seq <= upTo` (what an ack to `upTo` would cover). */
  async coveredBy(agentId: string, upTo: number): Promise<InboxEntry[]> {
    return (await this.#inbox(agentId)).coveredBy(upTo);
  }

  async ack(agentId: string, upTo: number): Promise<void> {
    await (await this.#inbox(agentId)).ack(upTo);
  }

  #inbox(agentId: string): Promise<AgentInbox> {
    let inbox = this.#inboxes.get(agentId);
    if (!inbox) {
      if (this.#closing) return Promise.reject(new IMClientError('CLOSED', 'the inbox store is closed'));
      assertId('agentId', agentId);
      const created = new AgentInbox(agentId, join(this.dataDir, 'inboxes', agentId), {
        segmentBytes: this.#segmentBytes,
        segments: this.#segments,
        onWarning: this.#onWarning,
        beforeTrim: (messages) => this.#dedupe.persist(messages),
        onLoadedMessage: (r: Extract<SegmentRecord, { k: 'm' }>) =>
          this.#dedupe.remember(r.m.from, r.m.id, { to: r.m.to, seq: r.seq, at: r.m.serverAt, digest: r.d }),
      });
      inbox = created.load().then(() => {
        this.#loaded.set(agentId, created);
        return created;
      });
      this.#inboxes.set(agentId, inbox);
      inbox.catch(() => this.#inboxes.delete(agentId));
    }
    return inbox;
  }
}

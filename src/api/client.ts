import { CLIENT_VERSION, DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_MESSAGE_BYTES } from '../constants.js';
import type { InspectionEvent } from 'xstate';
import { FlightRecorder } from '../core/FlightRecorder.js';
import { ConnectionManager, type ConnectionState, type ConnectionStateChange } from '../core/connection/ConnectionManager.js';
import { Link } from '../core/connection/Link.js';
import { messageFromRecord, type IMMessage } from '../core/IMMessage.js';
import { Inbox } from '../core/messages/Inbox.js';
import { createMessageId } from '../core/messages/messageId.js';
import { Outbox, type StatusUpdate } from '../core/messages/Outbox.js';
import { PendingQueue, type PendingMessage, type PendingRef } from '../core/messages/PendingQueue.js';
import { drainPending } from '../core/messages/drainPending.js';
import { deferred } from '../util/deferred.js';
import { FifoMap } from '../util/FifoMap.js';
import { utf8LengthIfOver } from '../util/utf8.js';
import { isoFormatter } from '../util/isoTime.js';
import { StatusWaiters, type AwaitableStatus, type WaitOptions } from '../core/messages/StatusWaiters.js';
import type { Contact, MessageRecord, OutboxEntry } from '../core/storage/records.js';
import { WorkspaceStorage } from '../core/storage/WorkspaceStorage.js';
import { IMClientError, InvalidOptionError, type IMClientErrorCode } from '../errors.js';
import { formatStorageWarning } from '../fs/StorageWarning.js';
import { assertId, directConversationId } from '../protocol/ids.js';
import { MessageMeta } from '../protocol/message.js';
import { Emitter } from './Emitter.js';
import { MessageStream } from './MessageStream.js';
import { resolveClientOptions, type IMClientOptions, type ResolvedClientOptions } from './options.js';
import type { ContactInput, DrainOptions, HistoryOptions, IMClientEvents, SendMessageOptions } from './types.js';

interface Parts {
  storage: WorkspaceStorage;
  link: Link;
  outbox: Outbox;
  inbox: Inbox;
  pending: PendingQueue;
  connection: ConnectionManager;
  limits: { maxMessageBytes: number; maxFrameBytes: number };
  recorder: FlightRecorder | undefined;
}

/**
 * The agent's IM client: connects to an IM server, sends messages with a
 * durable ack lifecycle, receives messages into the agent's workspace,
 * keeps contacts and (in queue mode) a pending queue. Built on the
 * statecharts in `machines/`; this class only wires their actors together.
 *
 * @example
 * ```ts
 * const client = new IMClient({ workspacePath: '~/.gateway/workspaces/user_001',
 *   imServerUrl: 'http://127.0.0.1:8080', agentId: 'agent_001' });
 * await client.connect();
 * await client.sendMessage({ to: 'agent_002', text: '你好，我需要你的帮助' });
 * const off = client.onMessage((m) => console.log(m.from, m.text));
 * await client.close();
 * ```
 */
export class IMClient {
  /** This agent's id. */
  readonly agentId: string;
  readonly #o: ResolvedClientOptions;
  readonly #events: Emitter<IMClientEvents>;
  readonly #waiters = new StatusWaiters();
  /** The turns of sends of caller-chosen ids in progress, by id (see {@link #turnFor}). */
  readonly #idTurns = new Map<string, Promise<void>>();
  readonly #streams = new Set<MessageStream>();
  /** Drains running (`drainPendingMessages`): `close()` lets them finish what they started. */
  readonly #drains = new Set<Promise<unknown>>();
  /** Direct conversation ids of recent contacts: one string shared by every queued message to them. */
  readonly #directIds = new FifoMap<string, string>();
  #parts: Promise<Parts> | undefined;
  /** The same parts once assembled, for synchronous getters. */
  #opened: Parts | undefined;
  #closing: Promise<void> | undefined;

  /** Validates the options (throws InvalidOptionError / InvalidIdError); touches nothing on disk. */
  constructor(options: IMClientOptions) {
    this.#o = resolveClientOptions(options);
    this.agentId = this.#o.agentId;
    this.#events = new Emitter<IMClientEvents>((err, event) => {
      const message = `a '${String(event)}' listener threw: ${err instanceof Error ? err.message : String(err)}`;
      if (event === 'warning' || this.#events.listenerCount('warning') === 0) console.error(`im-client: ${message}`);
      else this.#events.emit('warning', { kind: 'listener', message });
    });
  }

  /** The absolute workspace path (`~` expanded). */
  get workspacePath(): string {
    return this.#o.workspacePath;
  }

  /** Where the connection is. */
  get connectionState(): ConnectionState {
    if (this.#closing) return 'closed';
    return this.#opened?.connection.state ?? 'disconnected';
  }

  /** Subscribes to an event; returns the unsubscribe function. */
  on<K extends keyof IMClientEvents>(event: K, listener: IMClientEvents[K]): () => void {
    return this.#events.on(event, listener);
  }

  /** Calls `listener` with each incoming message (once per id); returns the unsubscribe function. */
  onMessage(listener: (message: IMMessage) => void): () => void {
    return this.#events.on('message', listener);
  }

  /** Calls `listener` on each connection state change; returns the unsubscribe function. */
  onConnectionStateChange(listener: (change: ConnectionStateChange) => void): () => void {
    return this.#events.on('connectionStateChange', listener);
  }

  /**
   * Incoming messages as an async iterator, from now on; ends when the
   * client closes or `signal` aborts.
   *
   * @example
   * ```ts
   * for await (const m of client.messages({ signal })) console.log(m.text);
   * ```
   */
  messages(options: { signal?: AbortSignal } = {}): AsyncIterableIterator<IMMessage> {
    const stream = new MessageStream(() => this.#streams.delete(stream), options.signal);
    if (this.#closing) stream.end();
    else this.#streams.add(stream);
    return stream;
  }

  /**
   * Opens the workspace (taking its lock) without connecting: history,
   * contacts and sending (queued offline) work from here. `connect` and every
   * other method open it when needed.
   */
  async open(): Promise<void> {
    await this.#ready();
  }

  /**
   * Connects and resolves once online. Keeps retrying with backoff through
   * network trouble; rejects at once when the server refuses the login
   * (`UNAUTHORIZED`, `UNSUPPORTED_PROTOCOL`, `SESSION_REPLACED`), and with
   * `TIMEOUT` / the signal's reason when given and they fire.
   */
  async connect(options: WaitOptions = {}): Promise<void> {
    const { connection } = await this.#ready();
    if (connection.state === 'online') return;
    await new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (err?: Error) => {
        off();
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const check = (state: ConnectionState) => {
        if (state === 'online') done();
        else if (state === 'failed') done(loginError(connection));
        else if (state === 'closed') done(new IMClientError('CLOSED', 'the client was closed'));
      };
      const off = connection.onChange((c) => check(c.newState));
      const onAbort = () =>
        done(options.signal!.reason instanceof Error ? options.signal!.reason : new IMClientError('ABORTED', 'connect was aborted'));
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      if (options.timeoutMs !== undefined) {
        timer = setTimeout(() => done(new IMClientError('TIMEOUT', `not online within ${options.timeoutMs} ms`)), options.timeoutMs);
      }
      connection.connect();
      check(connection.state);
    });
  }

  /** Skips a running reconnect delay (or retries a failed login). */
  reconnectNow(): void {
    if (!this.#closing) this.#opened?.connection.reconnectNow();
  }

  /**
   * Closes the connection, lets in-progress writes finish, stops every actor
   * and releases the workspace. Pending waits reject with `CLOSED`. Drains
   * start no new message; a handler already running gets up to 5 seconds to
   * finish (its acknowledgement is written), and a drain's unstarted claims
   * go back to the queue.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#waiters.rejectAll(new IMClientError('CLOSED', 'the client was closed'));
      for (const s of [...this.#streams]) s.end();
      const parts = await this.#parts?.catch(() => undefined);
      if (!parts) return;
      // Sends being made durable finish first, so none is left half written.
      await parts.outbox.enqueued();
      parts.connection.close();
      // A delivery batch being written finishes (bounded: the disk may be stuck).
      await Promise.race([parts.inbox.idle(), new Promise((r) => setTimeout(r, 2000).unref())]);
      await parts.outbox.settled();
      // Drains see the client closing at their next step; idle workers are woken to see it.
      parts.pending.interrupt();
      const drains = Promise.allSettled([...this.#drains]);
      await Promise.race([drains, new Promise((r) => setTimeout(r, CLOSE_DRAIN_WAIT_MS).unref())]);
      parts.inbox.stop();
      parts.outbox.stop();
      parts.pending.stop();
      try {
        await parts.recorder?.close();
      } finally {
        // The workspace (its lock, the pending queue's snapshot) is closed whatever the recorder did.
        await parts.storage.close();
      }
    })();
    return this.#closing;
  }

  /**
   * Sends a message. Resolves once it is durable in the local outbox (so it
   * works offline) with the message and its id; `waitFor: 'acked'` or
   * `'delivered'` waits for the server or the recipient.
   */
  async sendMessage(options: SendMessageOptions): Promise<IMMessage> {
    requireObject(options);
    // Checked before anything is written: a send that throws must not have been queued.
    const waitFor = options.waitFor ?? 'stored';
    if (waitFor !== 'stored' && waitFor !== 'acked' && waitFor !== 'delivered') throw new InvalidOptionError('waitFor', `expected 'stored', 'acked' or 'delivered'`);
    const parts = await this.#ready();
    const { to, text } = options;
    assertId('contactId', to);
    if (typeof text !== 'string') throw new InvalidOptionError('text', 'expected a string');
    const conversationId = this.#conversationFor(to, options.conversationId);
    if (options.replyTo !== undefined) assertId('messageId', options.replyTo);
    const { meta, metaJson } = metaSnapshot(options.meta);
    const { maxMessageBytes, maxFrameBytes } = parts.limits;
    const metaBytes = metaJson === undefined ? 0 : Buffer.byteLength(metaJson);
    const bytes = utf8LengthIfOver(text, maxMessageBytes - metaBytes) + metaBytes;
    if (bytes > maxMessageBytes) {
      throw new IMClientError('MESSAGE_TOO_LARGE', `message is ${bytes} bytes; the server accepts at most ${maxMessageBytes}`);
    }
    // Escaping can make the frame much bigger than the text ("\u0001" is six bytes): check the frame too,
    // with room for the envelope, or the server would close the connection on it again and again.
    // A text cannot grow past 6 bytes per UTF-16 unit, so a short one needs no encoding to know it fits.
    if (text.length * 6 + (metaJson?.length ?? 0) * 6 + FRAME_ENVELOPE_BYTES > maxFrameBytes) {
      const frameBytes = Buffer.byteLength(JSON.stringify({ text, meta })) + FRAME_ENVELOPE_BYTES;
      if (frameBytes > maxFrameBytes) {
        throw new IMClientError('MESSAGE_TOO_LARGE', `message encodes to about ${frameBytes} bytes; the server accepts frames of at most ${maxFrameBytes}`);
      }
    }
    const ttlMs = options.ttlMs ?? this.#o.messageTtlMs;
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 0) throw new InvalidOptionError('ttlMs', 'expected an integer >= 0');
    const id = options.id ?? createMessageId();
    if (options.id !== undefined) assertId('messageId', id);
    const now = Date.now();
    const sentAt = sentIso(now);
    // Built field by field, not with spreads of optional parts: those allocate, and leave the
    // records in a slower shape for the JSON encoding each gets. This runs once per message.
    const record: MessageRecord = { type: 'message', id, conversationId, direction: 'out', from: this.agentId, to, text, sentAt, status: 'queued' };
    if (options.replyTo !== undefined) record.replyTo = options.replyTo;
    if (meta !== undefined) record.meta = meta;
    let earlier: IMMessage | undefined;
    let enqueued: Promise<void> | undefined;
    // Sends of one caller-chosen id take turns until one has queued it: the next finds it queued,
    // or (acked already) in history, never sends it again.
    const endTurn = options.id === undefined ? undefined : await this.#turnFor(id);
    try {
      const queuedIn = endTurn && (await parts.outbox.queuedConversationOf(id));
      if (queuedIn && queuedIn !== conversationId) {
        // Ids are unique per sender: the server would refuse it (id_conflict), and the queued message is another.
        throw new InvalidOptionError('id', `message id ${id} is already used by a message queued in ${queuedIn}`);
      }
      if (endTurn && !parts.outbox.has(id) && !parts.outbox.enqueuing(id)) {
        // A caller's own id that was sent before (acked already, or in an earlier run) is not sent again.
        earlier = await parts.storage.conversations.find(conversationId, id, this.agentId);
      }
      if (!earlier && !parts.outbox.has(id)) {
        // enqueue() also folds a send of an id being enqueued into the first one.
        const entry: OutboxEntry = { id, conversationId, to, text, sentAt };
        if (options.replyTo !== undefined) entry.replyTo = options.replyTo;
        if (meta !== undefined) entry.meta = meta;
        if (ttlMs > 0) entry.expiresAt = expiresIso(now + ttlMs);
        enqueued = parts.outbox.enqueue(entry, record, options.id !== undefined);
      }
    } finally {
      endTurn?.();
    }
    await enqueued;
    const message = earlier ?? messageFromRecord(record);
    // The lifecycle is ahead of the history line while a status line is on its way to disk.
    message.status = parts.outbox.stateOf(id) ?? (earlier ? earlier.status : 'queued');
    if (waitFor === 'stored') return message;
    if (earlier) this.#learnFromHistory(earlier);
    // The message is durable: a history read that fails leaves the wait to the live updates.
    await this.#recall(id, conversationId, parts).catch(() => {});
    return withStatus(message, await this.#waiters.wait(id, waitFor, options));
  }

  /** Waits for the turn of a send of this caller-chosen id; returns the function that ends it. */
  async #turnFor(id: string): Promise<() => void> {
    const prior = this.#idTurns.get(id);
    const mine = deferred();
    const turn = prior ? prior.then(() => mine.promise) : mine.promise;
    this.#idTurns.set(id, turn);
    await prior;
    return () => {
      mine.resolve();
      if (this.#idTurns.get(id) === turn) this.#idTurns.delete(id);
    };
  }

  /**
   * Tells the status waiters where a message sent earlier stands, from its
   * history line, unless they know already (a live status is newer than a
   * line that may lag it).
   */
  #learnFromHistory(earlier: IMMessage): void {
    if (this.#waiters.knows(earlier.id) || earlier.status === undefined || earlier.status === 'queued' || earlier.status === 'sending') return;
    const update: StatusUpdate = { id: earlier.id, conversationId: earlier.conversationId, status: earlier.status, at: earlier.deliveredAt ?? earlier.serverAt ?? earlier.sentAt };
    if (earlier.seq !== undefined) update.seq = earlier.seq;
    if (earlier.serverAt !== undefined) update.serverAt = earlier.serverAt;
    if (earlier.deliveredAt !== undefined) update.deliveredAt = earlier.deliveredAt;
    if (earlier.error !== undefined) update.error = earlier.error;
    this.#waiters.update(update);
  }

  /**
   * Waits until a message sent by this client is `acked` or `delivered`;
   * rejects if it fails (MessageRejectedError, `MESSAGE_EXPIRED`, `TIMEOUT`)
   * or is cancelled (`MESSAGE_CANCELLED`).
   */
  async waitForStatus(id: string, status: AwaitableStatus, options: WaitOptions & { conversationId?: string } = {}): Promise<StatusUpdate> {
    assertId('messageId', id);
    if (!(await this.#recall(id, options.conversationId, await this.#ready()))) {
      throw new IMClientError('NOT_FOUND', `no message ${id} sent by this client${options.conversationId === undefined ? ' in this run (pass conversationId to look in history)' : ` in ${options.conversationId}`}`);
    }
    return this.#waiters.wait(id, status, options);
  }

  /**
   * Makes sure the status waiters know where a message stands before a wait: they hold the
   * updates of the last messages only. For one acked and still waiting for its receipt, the
   * outbox tells them; for one settled earlier (in this run or an earlier one), its history line
   * does, in the caller's conversation or the one the waiters remember for the id. Resolves
   * whether the message is known at all (in the outbox or in history).
   */
  async #recall(id: string, conversationId: string | undefined, { outbox, storage }: Parts): Promise<boolean> {
    if (this.#waiters.knows(id)) return true;
    if (outbox.knows(id)) {
      // Acked and waiting for its receipt: the state it rests with says so. Otherwise its updates
      // are still to come, and reach the waiters as they do.
      const acked = outbox.stateOf(id) === 'acked' ? outbox.ackedUpdate(id) : undefined;
      if (acked) this.#waiters.update(acked);
      return true;
    }
    const inConversation = conversationId ?? this.#waiters.conversationOf(id);
    if (inConversation === undefined) return false;
    let earlier = await storage.conversations.find(inConversation, id, this.agentId);
    // Settled while the history was read (its final line landed after the read passed it), and
    // its update already gone from the waiters: read again, the line is durable by now.
    if (earlier && !isFinal(earlier.status) && this.#waiters.settled(id) && !this.#waiters.knows(id)) {
      earlier = await storage.conversations.find(inConversation, id, this.agentId);
    }
    if (!earlier || earlier.direction !== 'out') return false;
    this.#learnFromHistory(earlier);
    return true;
  }

  /** Cancels a message that is still queued; resolves to whether it was. */
  async cancelMessage(id: string): Promise<boolean> {
    const { outbox } = await this.#ready();
    return outbox.cancel(id);
  }

  /**
   * The newest `limit` messages of a conversation, oldest first, with the
   * status of outgoing ones; page back with `before`.
   */
  async getConversationHistory(options: HistoryOptions): Promise<IMMessage[]> {
    requireObject(options);
    const { storage, outbox } = await this.#ready();
    if ((options.contactId === undefined) === (options.conversationId === undefined)) {
      throw new InvalidOptionError('contactId', 'give exactly one of contactId and conversationId');
    }
    const conversationId = options.conversationId ?? directConversationId(this.agentId, options.contactId!);
    const limit = options.limit ?? 50;
    if (!Number.isSafeInteger(limit) || limit < 1) throw new InvalidOptionError('limit', 'expected a positive integer');
    if (options.before !== undefined) assertId('messageId', options.before);
    // Statuses already reported (an early ack) are in the file before it is read.
    await outbox.statusLinesWritten();
    const page = await storage.conversations.history(conversationId, { limit, before: options.before });
    for (const m of page.messages) {
      // The file knows durable statuses; the live lifecycle knows a message is on the wire.
      if (m.direction === 'out' && m.status === 'queued' && outbox.stateOf(m.id) === 'sending') m.status = 'sending';
    }
    return page.messages;
  }

  /** Messages in the pending queue not yet acknowledged, oldest first (a peek: nothing is claimed). */
  async getPendingMessages(options: { limit?: number } = {}): Promise<PendingMessage[]> {
    const { pending } = await this.#ready();
    return pending.list(options.limit);
  }

  /** Claims up to `max` pending messages for `leaseMs`; unacknowledged claims return to the queue when the lease ends. */
  async claimPendingMessages(options: { max?: number; leaseMs?: number } = {}): Promise<PendingMessage[]> {
    const { pending } = await this.#ready();
    return pending.claim(positive('max', options.max, 1), positive('leaseMs', options.leaseMs, this.#o.leaseMs));
  }

  /**
   * Removes processed messages from the pending queue; resolves to how many
   * were pending. Each is named by `{ from, id }` (the pending message itself
   * will do) or by its id alone, which is refused (`INVALID_OPTION`) while
   * another sender's pending message has the same id.
   */
  async ackPendingMessages(messages: readonly PendingRef[]): Promise<number> {
    requireRefs(messages);
    const { pending } = await this.#ready();
    return pending.ack(pending.keys(messages));
  }

  /** Returns claimed messages to the queue unprocessed (named as for {@link ackPendingMessages}). */
  async releasePendingMessages(messages: readonly PendingRef[]): Promise<void> {
    requireRefs(messages);
    const { pending } = await this.#ready();
    await pending.release(pending.keys(messages));
  }

  /** Extends the lease of claimed messages by `leaseMs` from now (named as for {@link ackPendingMessages}). */
  async extendPendingLease(messages: readonly PendingRef[], leaseMs = this.#o.leaseMs): Promise<void> {
    requireRefs(messages);
    const { pending } = await this.#ready();
    await pending.extend(pending.keys(messages), positive('leaseMs', leaseMs, leaseMs));
  }

  /**
   * Works through the pending queue: claims messages, calls `handler` for
   * each (up to `concurrency` at once), acknowledges those it finished and
   * releases those it threw on. Runs until `signal` aborts (or, with
   * `untilEmpty`, until the queue is empty); resolves to how many were processed.
   */
  async drainPendingMessages(handler: (message: PendingMessage) => unknown, options: DrainOptions = {}): Promise<number> {
    const { pending } = await this.#ready();
    const { signal } = options;
    const drain = drainPending(pending, handler, {
      concurrency: positive('concurrency', options.concurrency, 1),
      leaseMs: positive('leaseMs', options.leaseMs, this.#o.leaseMs),
      untilEmpty: options.untilEmpty === true,
      signal,
      stopped: () => signal?.aborted === true || this.#closing !== undefined,
      warn: (warning) => this.#events.emit('warning', warning),
    });
    this.#drains.add(drain);
    void drain.catch(() => {}).finally(() => this.#drains.delete(drain));
    return drain;
  }

  /** Adds a contact, or replaces the one with the same id (keeping when it was added). */
  async addContact(input: ContactInput): Promise<Contact> {
    const { storage } = await this.#ready();
    assertId('contactId', input.contactId);
    const now = new Date().toISOString();
    const contact = checkContact({ ...input, addedAt: storage.contacts.get(input.contactId)?.addedAt ?? now, updatedAt: now });
    await storage.contacts.put(contact);
    return contact;
  }

  /** Changes some fields of a contact; rejects with code `NOT_FOUND` for an unknown one. */
  async updateContact(contactId: string, patch: Partial<Omit<ContactInput, 'contactId'>>): Promise<Contact> {
    const { storage } = await this.#ready();
    assertId('contactId', contactId);
    const current = storage.contacts.get(contactId);
    if (!current) throw new IMClientError('NOT_FOUND', `no contact "${contactId}"`);
    const contact = checkContact({ ...current, ...patch, contactId, updatedAt: new Date().toISOString() });
    await storage.contacts.put(contact);
    return contact;
  }

  /** Removes a contact; resolves to whether it existed. */
  async removeContact(contactId: string): Promise<boolean> {
    const { storage } = await this.#ready();
    assertId('contactId', contactId);
    return storage.contacts.remove(contactId);
  }

  async getContact(contactId: string): Promise<Contact | undefined> {
    const { storage } = await this.#ready();
    return storage.contacts.get(contactId);
  }

  async listContacts(): Promise<Contact[]> {
    const { storage } = await this.#ready();
    return storage.contacts.list();
  }

  #conversationFor(to: string, conversationId: string | undefined): string {
    let direct = this.#directIds.get(to);
    if (direct === undefined) {
      direct = directConversationId(this.agentId, to);
      this.#directIds.set(to, direct);
      if (this.#directIds.size > 1024) this.#directIds.shift();
    }
    if (conversationId === undefined) return direct;
    assertId('conversationId', conversationId);
    if (conversationId.includes('+') && conversationId !== direct) {
      throw new InvalidOptionError('conversationId', `"${conversationId}" is the direct conversation of other agents; use "${direct}" or an id without "+"`);
    }
    return conversationId;
  }

  #ready(): Promise<Parts> {
    if (this.#closing) return Promise.reject(new IMClientError('CLOSED', 'the client was closed'));
    // A failed open (a workspace locked for now) is not remembered: the next call tries again.
    this.#parts ??= this.#assemble().catch((err: unknown) => {
      this.#parts = undefined;
      throw err;
    });
    return this.#parts;
  }

  /** Opens storage and wires the actors: connection -> inbox/outbox, outbox <-> inbox (receipts). */
  async #assemble(): Promise<Parts> {
    const o = this.#o;
    const warn = (kind: 'storage' | 'protocol', message: string, where: { file?: string; line?: number } = {}) =>
      this.#events.emit('warning', { kind, message, ...where });
    const fail = (err: unknown) =>
      this.#events.emit('error', err instanceof IMClientError ? err : new IMClientError('STORAGE_IO', String(err), { cause: err }));
    const storage = await WorkspaceStorage.open({
      workspacePath: o.workspacePath,
      agentId: o.agentId,
      imServerUrl: o.imServerUrl,
      maxQueuedInMemory: o.maxQueuedInMemory,
      onWarning: (w) => warn('storage', formatStorageWarning(w), { file: w.file, ...(w.line === undefined ? {} : { line: w.line }) }),
    });
    const recorder = o.flightRecorder ? await FlightRecorder.open(storage.paths.flight).catch(async (err: unknown) => {
      await storage.close();
      throw err;
    }) : undefined;
    // Every actor gets one inspection hook: the caller's, the flight recorder, or both.
    const inspect = combine(o.inspect, recorder?.observe);
    try {
      const link = new Link();
      const limits = { maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES, maxFrameBytes: DEFAULT_MAX_FRAME_BYTES };
      const { clock } = o;
      const pending = new PendingQueue({ store: storage.pending, inspect, clock, onError: fail });
      await pending.start();
      const outbox = new Outbox({
        storage,
        agentId: o.agentId,
        link,
        window: o.window,
        maxQueuedInMemory: o.maxQueuedInMemory,
        ackTimeoutMs: o.ackTimeoutMs,
        maxAttempts: o.maxAttempts,
        inspect,
        clock,
        onStatus: (update) => {
          // An ack already reached the waiters as it arrived (onAcked).
          if (update.status !== 'acked') this.#waiters.update(update);
          this.#events.emit('status', update);
        },
        // `waitFor: 'acked'` means the server stored it: no need to wait for the local status line too.
        onAcked: (update) => this.#waiters.update(update),
        onError: fail,
      });
      const inbox = await Inbox.open({
        storage,
        link,
        outbox,
        pending: o.mode === 'queue' ? pending : undefined,
        inspect,
        clock,
        publish: (messages) => {
          for (const m of messages) {
            this.#events.emit('message', m);
            for (const s of this.#streams) s.push(m);
          }
        },
        onWarning: (message) => warn('protocol', message),
        onError: fail,
      });
      const connection = new ConnectionManager({
        url: o.wsUrl,
        agentId: o.agentId,
        token: o.token,
        link,
        resume: () => inbox.resume(),
        handlers: {
          onWelcome: (frame, generation) => {
            limits.maxMessageBytes = frame.limits.maxMessageBytes;
            limits.maxFrameBytes = frame.limits.maxFrameBytes;
            link.limitFrames(frame.limits.maxFrameBytes);
            inbox.onWelcome(frame, generation);
          },
          onAck: (frame) => outbox.onAck(frame),
          onNack: (frame) => outbox.onNack(frame),
          onDeliver: (frame, generation) => inbox.onDeliver(frame, generation),
          onReceipt: (frame, generation) => inbox.onReceipt(frame, generation),
          onProtocolError: (message) => warn('protocol', message),
          onMessageEnd: () => inbox.endOfMessage(),
        },
        backoff: o.backoff,
        stableAfterMs: o.stableAfterMs,
        heartbeatMs: o.heartbeatMs,
        pongTimeoutMs: o.pongTimeoutMs,
        connectTimeoutMs: o.connectTimeoutMs,
        handshakeTimeoutMs: o.handshakeTimeoutMs,
        inspect,
        clock,
        clientVersion: CLIENT_VERSION,
      });
      connection.onChange((change) => {
        if (change.newState === 'online') outbox.online();
        else if (change.oldState === 'online') outbox.offline();
        this.#events.emit('connectionStateChange', change);
      });
      await outbox.start();
      const parts: Parts = { storage, link, outbox, inbox, pending, connection, limits, recorder };
      this.#opened = parts;
      return parts;
    } catch (err) {
      await recorder?.close();
      await storage.close();
      throw err;
    }
  }
}

function combine(...hooks: Array<((event: InspectionEvent) => void) | undefined>): ((event: InspectionEvent) => void) | undefined {
  const present = hooks.filter((h): h is (event: InspectionEvent) => void => h !== undefined);
  if (present.length <= 1) return present[0];
  return (event) => {
    for (const h of present) h(event);
  };
}

/** Whether a message's status is its last (nothing follows delivered, failed or cancelled). */
function isFinal(status: IMMessage['status']): boolean {
  return status === 'delivered' || status === 'failed' || status === 'cancelled';
}

function withStatus(message: IMMessage, update: StatusUpdate): IMMessage {
  message.status = update.status;
  if (update.seq !== undefined) message.seq = update.seq;
  if (update.serverAt !== undefined) message.serverAt = update.serverAt;
  if (update.deliveredAt !== undefined) message.deliveredAt = update.deliveredAt;
  return message;
}

/** The typed error of a refused login, from what the connection recorded. */
function loginError(connection: ConnectionManager): IMClientError {
  const p = connection.lastProblem;
  const byClose: Record<number, IMClientErrorCode> = { 4001: 'UNAUTHORIZED', 4002: 'UNSUPPORTED_PROTOCOL', 4003: 'SESSION_REPLACED' };
  const code = (p?.closeCode !== undefined ? byClose[p.closeCode] : undefined) ?? 'CONNECTION_LOST';
  return new IMClientError(code, `the server refused the connection: ${p?.message ?? 'unknown reason'}`);
}

function checkContact(contact: Contact): Contact {
  if (typeof contact.name !== 'string' || contact.name.trim() === '') throw new InvalidOptionError('name', 'expected a non-empty string');
  if (contact.description !== undefined && typeof contact.description !== 'string') throw new InvalidOptionError('description', 'expected a string');
  if (contact.kind !== undefined && contact.kind !== 'agent' && contact.kind !== 'user') throw new InvalidOptionError('kind', "expected 'agent' or 'user'");
  // As a send's: the JSON copy is what is kept, checked once it is taken.
  if (contact.meta !== undefined) return { ...contact, meta: metaSnapshot(contact.meta).meta };
  return contact;
}

/** Frame bytes around a message's text and meta (type, ids, conversation, times, `after`). */
const FRAME_ENVELOPE_BYTES = 1024;
/** How long `close()` waits for handlers running under a drain. */
const CLOSE_DRAIN_WAIT_MS = 5000;
/** Message times as ISO strings, formatted once per millisecond. */
const sentIso = isoFormatter();
const expiresIso = isoFormatter();

function requireObject(options: unknown): void {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options', 'expected an object');
}

function requireRefs(refs: unknown): asserts refs is readonly PendingRef[] {
  if (!Array.isArray(refs)) throw new InvalidOptionError('ids', 'expected an array of pending messages ({ from, id }) or message ids');
  for (const ref of refs) {
    if (typeof ref === 'string') assertId('messageId', ref);
    else if (typeof ref === 'object' && ref !== null) {
      assertId('agentId', (ref as { from?: unknown }).from);
      assertId('messageId', (ref as { id?: unknown }).id);
    } else throw new InvalidOptionError('ids', 'expected an array of pending messages ({ from, id }) or message ids');
  }
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < 1) throw new InvalidOptionError(name, `expected a positive integer, got ${String(value)}`);
  return v;
}

/**
 * The metadata of a send as plain JSON data, taken once: every line and frame
 * is written from this copy, so what the caller changes afterwards (or what a
 * `toJSON` or getter would give the next time) cannot make the outbox entry,
 * the history line and the frame disagree, or fail a write. What is checked is
 * the copy, as `JSON.stringify` gives it (a `Date` becomes its ISO string);
 * anything that does not encode to a JSON object (a throwing `toJSON`, a
 * function, nesting too deep to encode or check) is refused with a typed error.
 */
function metaSnapshot(value: unknown): { meta: MessageMeta | undefined; metaJson: string | undefined } {
  if (value === undefined) return { meta: undefined, metaJson: undefined };
  let metaJson: string | undefined;
  let meta: unknown;
  try {
    metaJson = JSON.stringify(value);
    meta = metaJson === undefined ? undefined : JSON.parse(metaJson);
    if (metaJson !== undefined && MessageMeta.safeParse(meta).success) return { meta: meta as MessageMeta, metaJson };
  } catch (err) {
    throw new InvalidOptionError('meta', `expected a JSON object: ${err instanceof Error ? err.message : String(err)}`);
  }
  throw new InvalidOptionError('meta', 'expected a JSON object');
}

import { mkdir } from 'node:fs/promises';
import { IMClientError, storageIoError } from '../../errors.js';
import { removeStaleTempFiles } from '../../fs/atomicWriteFile.js';
import { FileLock } from '../../fs/FileLock.js';
import { JsonFile } from '../../fs/JsonFile.js';
import { LoggedJsonFile } from '../../fs/LoggedJsonFile.js';
import type { WarningListener } from '../../fs/StorageWarning.js';
import { assertId } from '../../protocol/ids.js';
import { ContactsStore } from './ContactsStore.js';
import { ConversationStore } from './ConversationStore.js';
import { OutboxJournal } from './OutboxJournal.js';
import { WorkspacePaths } from './paths.js';
import { PendingQueueStore } from './PendingQueueStore.js';
import { ClientConfigFile, CursorFile } from './records.js';

/** Options of {@link WorkspaceStorage.open}. */
export interface WorkspaceStorageOptions {
  /** The agent's workspace; `~` is the home directory. */
  workspacePath: string;
  /** The agent this workspace belongs to. */
  agentId: string;
  /** Recorded in `config.json`. */
  imServerUrl?: string | undefined;
  /** Receives a warning for each torn or corrupt line skipped while reading. */
  onWarning?: WarningListener | undefined;
  /** Most pending-queue items whose messages stay in memory (the rest wait in the queue's files). @default 10000 */
  maxQueuedInMemory?: number | undefined;
}

/**
 * The client's Storage Manager: everything under `{workspace}/im_client/`
 * (layout in docs/storage.md). Opening takes the workspace lock, so exactly
 * one client (in any process) writes a workspace at a time.
 *
 * @example
 * ```ts
 * const storage = await WorkspaceStorage.open({ workspacePath: '~/.gateway/workspaces/user_001', agentId: 'agent_001' });
 * await storage.contacts.put({ contactId: 'agent_002', name: '助理 Agent', addedAt: now, updatedAt: now });
 * await storage.close();
 * ```
 */
export class WorkspaceStorage {
  readonly paths: WorkspacePaths;
  readonly agentId: string;
  readonly config: ClientConfigFile;
  readonly contacts: ContactsStore;
  readonly conversations: ConversationStore;
  readonly outbox: OutboxJournal;
  readonly pending: PendingQueueStore;
  readonly cursor: LoggedJsonFile<typeof CursorFile>;
  readonly #lock: FileLock;
  #closed = false;

  private constructor(parts: {
    paths: WorkspacePaths;
    agentId: string;
    config: ClientConfigFile;
    contacts: ContactsStore;
    conversations: ConversationStore;
    outbox: OutboxJournal;
    pending: PendingQueueStore;
    cursor: LoggedJsonFile<typeof CursorFile>;
    lock: FileLock;
  }) {
    this.paths = parts.paths;
    this.agentId = parts.agentId;
    this.config = parts.config;
    this.contacts = parts.contacts;
    this.conversations = parts.conversations;
    this.outbox = parts.outbox;
    this.pending = parts.pending;
    this.cursor = parts.cursor;
    this.#lock = parts.lock;
  }

  /**
   * Opens (creating if needed) the workspace of `agentId`. Throws
   * `WorkspaceLockedError` when another live client holds it, `INVALID_ID`
   * for a bad agent id, `WORKSPACE_MISMATCH` when it belongs to another agent
   * and `STORAGE_CORRUPT` when a JSON file cannot be trusted.
   */
  static async open(options: WorkspaceStorageOptions): Promise<WorkspaceStorage> {
    assertId('agentId', options.agentId);
    const paths = new WorkspacePaths(options.workspacePath);
    try {
      await mkdir(paths.conversations, { recursive: true });
      await mkdir(paths.queue, { recursive: true });
    } catch (err) {
      throw storageIoError(paths.root, err);
    }
    const lock = await FileLock.acquire(paths.lock, options.agentId);
    let outbox: OutboxJournal | undefined;
    let pending: PendingQueueStore | undefined;
    let cursor: LoggedJsonFile<typeof CursorFile> | undefined;
    try {
      await removeStaleTempFiles(paths.root);
      await removeStaleTempFiles(paths.queue);
      const config = await openConfig(paths.config, options.agentId, options.imServerUrl);
      const contacts = await ContactsStore.open(paths.contacts);
      outbox = await OutboxJournal.open(paths.outbox, options.onWarning);
      pending = await PendingQueueStore.open(paths.pending, paths.pendingLog, { onWarning: options.onWarning, maxInMemory: options.maxQueuedInMemory });
      // Opening validates it: a corrupt cursor must stop the client before it acks anything.
      cursor = await LoggedJsonFile.open(paths.cursor, paths.cursorLog, CursorFile, { onWarning: options.onWarning });
      const conversations = new ConversationStore(paths, { onWarning: options.onWarning });
      return new WorkspaceStorage({ paths, agentId: options.agentId, config, contacts, conversations, outbox, pending, cursor, lock });
    } catch (err) {
      await outbox?.close().catch(() => {});
      await pending?.close().catch(() => {});
      await cursor?.close().catch(() => {});
      await lock.release();
      throw err;
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Flushes every file and releases the workspace lock. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await Promise.all([this.conversations.close(), this.outbox.close(), this.pending.close(), this.cursor.close()]);
    } finally {
      await this.#lock.release();
    }
  }
}

async function openConfig(path: string, agentId: string, imServerUrl: string | undefined): Promise<ClientConfigFile> {
  const file = new JsonFile(path, ClientConfigFile);
  const existing = await file.read();
  if (existing && existing.agentId !== agentId) {
    throw new IMClientError(
      'WORKSPACE_MISMATCH',
      `${path} belongs to agent "${existing.agentId}", not "${agentId}": one workspace serves one agent`,
    );
  }
  if (existing && (imServerUrl === undefined || existing.imServerUrl === imServerUrl)) return existing;
  const now = new Date().toISOString();
  const config: ClientConfigFile = {
    version: 1,
    agentId,
    ...(imServerUrl === undefined ? {} : { imServerUrl }),
    createdAt: existing?.createdAt ?? now,
    updatedAt: now,
  };
  await file.write(config);
  return config;
}

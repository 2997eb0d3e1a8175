/**
 * Every error this package throws or rejects with is an {@link IMClientError}
 * carrying a stable string {@link IMClientErrorCode}; callers branch on `code`
 * (or on a subclass where extra fields matter), never on message text.
 *
 * @example
 * ```ts
 * try {
 *   await client.connect();
 * } catch (err) {
 *   if (err instanceof IMClientError && err.code === 'UNAUTHORIZED') rotateToken();
 * }
 * ```
 */
export type IMClientErrorCode =
  /** An option is missing, of the wrong type or out of range. */
  | 'INVALID_OPTION'
  /** An agent, contact, conversation or message id breaks the id rules. */
  | 'INVALID_ID'
  /** Another live client holds the workspace lock. */
  | 'WORKSPACE_LOCKED'
  /** The workspace belongs to another agent id. */
  | 'WORKSPACE_MISMATCH'
  /** A storage file exists but cannot be read as what it should hold. */
  | 'STORAGE_CORRUPT'
  /** A file-system operation failed (disk full, permissions...). */
  | 'STORAGE_IO'
  /** The peer sent something that breaks the wire protocol. */
  | 'PROTOCOL_ERROR'
  /** The server refused the agent id or token. */
  | 'UNAUTHORIZED'
  /** Client and server share no protocol version. */
  | 'UNSUPPORTED_PROTOCOL'
  /** Another session logged in with the same agent id and took over. */
  | 'SESSION_REPLACED'
  /** The connection dropped or could not be opened. */
  | 'CONNECTION_LOST'
  /** The server refused a message for good (see {@link MessageRejectedError}). */
  | 'MESSAGE_REJECTED'
  /** A message is larger than the server's limit. */
  | 'MESSAGE_TOO_LARGE'
  /** The message's time to live ran out before the server acknowledged it. */
  | 'MESSAGE_EXPIRED'
  /** The message was cancelled before it was sent. */
  | 'MESSAGE_CANCELLED'
  /** No such contact (or other named thing). */
  | 'NOT_FOUND'
  /** A wait ran past its timeout. */
  | 'TIMEOUT'
  /** An AbortSignal aborted the call (the rejection is `signal.reason` when it is an Error). */
  | 'ABORTED'
  /** The client or server was closed. */
  | 'CLOSED'
  /** The reference server could not start or was misconfigured. */
  | 'SERVER_ERROR';

/** Base class of every error raised by im-client. */
export class IMClientError extends Error {
  /** Stable, machine-readable reason. */
  readonly code: IMClientErrorCode;

  constructor(code: IMClientErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** An option passed to a constructor or method is invalid; `option` names it. */
export class InvalidOptionError extends IMClientError {
  readonly option: string;

  constructor(option: string, message: string) {
    super('INVALID_OPTION', `Invalid option "${option}": ${message}`);
    this.option = option;
  }
}

/** An id breaks the id rules (see docs/protocol.md, "Identifiers"). */
export class InvalidIdError extends IMClientError {
  /** Which id: `agentId`, `contactId`, `conversationId`, `messageId`... */
  readonly kind: string;
  /** The offending value, as received. */
  readonly value: unknown;

  constructor(kind: string, value: unknown, reason: string) {
    super('INVALID_ID', `Invalid ${kind} ${JSON.stringify(value)}: ${reason}`);
    this.kind = kind;
    this.value = value;
  }
}

/** Who holds a lock file. */
export interface LockHolder {
  pid: number;
  hostname: string;
  /** ISO time the holder took the lock. */
  since: string;
  /** Free-form label, e.g. the agent id. */
  owner?: string | undefined;
}

/** The workspace (or server data directory) is locked by another live process. */
export class WorkspaceLockedError extends IMClientError {
  readonly lockPath: string;
  readonly holder: LockHolder;

  constructor(lockPath: string, holder: LockHolder) {
    super(
      'WORKSPACE_LOCKED',
      `${lockPath} is held by pid ${holder.pid} on ${holder.hostname} since ${holder.since}` +
        (holder.owner ? ` (${holder.owner})` : '') +
        '; close that client first, or delete the lock file if that process is gone',
    );
    this.lockPath = lockPath;
    this.holder = holder;
  }
}

/** A storage file exists but does not hold what it should; it is left untouched. */
export class StorageCorruptError extends IMClientError {
  readonly file: string;

  constructor(file: string, reason: string, options?: { cause?: unknown }) {
    super('STORAGE_CORRUPT', `${file} is corrupt and was left untouched: ${reason}`, options);
    this.file = file;
  }
}

/** The server refused a message for good (a `nack` that retrying cannot fix). */
export class MessageRejectedError extends IMClientError {
  readonly messageId: string;
  /** The server's nack code, e.g. `unknown_recipient`. */
  readonly reason: string;

  constructor(messageId: string, reason: string, message: string, code: IMClientErrorCode = 'MESSAGE_REJECTED') {
    super(code, `Message ${messageId} was rejected (${reason}): ${message}`);
    this.messageId = messageId;
    this.reason = reason;
  }
}

/** Wraps a Node file-system error with the file it concerns. */
export function storageIoError(file: string, cause: unknown): IMClientError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new IMClientError('STORAGE_IO', `I/O error on ${file}: ${detail}`, { cause });
}

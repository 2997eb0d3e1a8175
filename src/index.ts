/**
 * im-client: the instant-messaging client AI agents embed. Start with
 * {@link IMClient}; the statecharts it runs on are exported for inspection
 * and model-based testing.
 */
export { IMClient } from './api/client.js';
export type { IMClientOptions } from './api/options.js';
export type {
  ContactInput,
  DrainOptions,
  HistoryOptions,
  IMClientEvents,
  IMClientWarning,
  PendingMessage,
  PendingRef,
  SendMessageOptions,
} from './api/types.js';
export type { ConnectionState, ConnectionStateChange } from './core/connection/ConnectionManager.js';
export type { IMMessage } from './core/IMMessage.js';
export type { StatusUpdate } from './core/messages/Outbox.js';
export type { AwaitableStatus, WaitOptions } from './core/messages/StatusWaiters.js';
export type { Contact, FailureReason, OutgoingStatus } from './core/storage/records.js';
export {
  IMClientError,
  InvalidIdError,
  InvalidOptionError,
  MessageRejectedError,
  StorageCorruptError,
  WorkspaceLockedError,
  type IMClientErrorCode,
  type LockHolder,
} from './errors.js';
export { CloseCode, PROTOCOL_VERSION, type ErrorCode, type NackCode } from './protocol/codes.js';
export { directConversationId } from './protocol/ids.js';
export { webSocketUrl } from './protocol/url.js';
export {
  backoffDelay,
  connectionMachine,
  inboxMachine,
  messageMachine,
  outboxMachine,
  pendingItemMachine,
  type BackoffPolicy,
} from '../machines/index.js';

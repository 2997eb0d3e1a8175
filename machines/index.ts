/**
 * The statecharts of im-client: pure definitions that name the actions and
 * actors they need; src/ provides them. Exported for runtimes that inspect
 * them and tests that walk them.
 */
export { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from './backoff.js';
export { connectionMachine, type ConnectionContext, type ConnectionEvent, type ConnectionInput, type ConnectionProblem } from './connection.js';
export { inboxMachine, type BatchResult, type InboxContext, type InboxEvent } from './inbox.js';
export { messageMachine, type MessageContext, type MessageEvent, type MessageFailure, type MessageInput } from './message.js';
export { outboxMachine, type OutboxContext, type OutboxEvent } from './outbox.js';
export { pendingItemMachine, type PendingItemContext, type PendingItemEvent, type PendingItemInput } from './pendingItem.js';

export { IMServer } from './IMServer.js';
export { isLoopbackHost, type IMServerOptions, type ServerLogger, type ServerLogRecord } from './options.js';
export { FileInboxStore, type FileInboxStoreOptions } from './store/FileInboxStore.js';
export type { AcceptedMessage, InboxEntry, InboxStore, ReceiptBody } from './store/InboxStore.js';

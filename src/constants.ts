/**
 * Defaults shared by the client and the reference server. Each is documented
 * where it is used as an option (`@default`) and in docs/api.md.
 */

/** Interface the reference server binds by default: loopback only. */
export const DEFAULT_SERVER_HOST = '127.0.0.1';
/** Port of the reference server, as in the seed's `http://im-server:8080`. */
export const DEFAULT_SERVER_PORT = 8080;
/** Data directory of the reference server, beside the seed's `~/.gateway/workspaces`. */
export const DEFAULT_SERVER_DATA_DIR = '~/.gateway/im_server';

/** Interval at which clients ping; the server closes a session silent for 3 intervals. */
export const DEFAULT_HEARTBEAT_MS = 15_000;
/** Time a new connection has to send `hello`. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Largest WebSocket message the server accepts (1 MiB). */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;
/** Largest message body, `text` plus `meta` (256 KiB). */
export const DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024;
/** Deliveries the server leaves unacknowledged per connection. */
export const DEFAULT_MAX_INFLIGHT_DELIVERIES = 1000;
/** Unacknowledged entries one inbox may hold before senders get `inbox_full`. */
export const DEFAULT_MAX_INBOX_ENTRIES = 1_000_000;
/** Bad frames tolerated on one connection before it is closed with 1008. */
export const DEFAULT_MAX_BAD_FRAMES = 20;
/** Sends accepted but not yet answered per connection before the server stops reading from it. */
export const DEFAULT_MAX_PENDING_SENDS = 4096;
/** Bytes queued on a socket above which the server stops writing deliveries to it. */
export const DEFAULT_SEND_HIGH_WATER_BYTES = 1024 * 1024;
/** Messages at most per receipt frame. */
export const MAX_RECEIPT_ITEMS = 512;

/** This package's version, sent in `hello` (kept equal to package.json by a test). */
export const CLIENT_VERSION = '0.1.0';

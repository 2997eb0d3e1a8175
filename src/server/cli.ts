#!/usr/bin/env node
import { parseArgs } from 'node:util';
import {
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_MAX_INBOX_ENTRIES,
  DEFAULT_MAX_INFLIGHT_DELIVERIES,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_SERVER_DATA_DIR,
  DEFAULT_SERVER_HOST,
  DEFAULT_SERVER_PORT,
} from '../constants.js';
import { IMClientError } from '../errors.js';
import { IMServer } from './IMServer.js';
import type { IMServerOptions, ServerLogRecord } from './options.js';

const HELP = `Usage: npm run server -- [options]

Starts the reference IM server (protocol v1, see docs/protocol.md).
With no options it listens on http://${DEFAULT_SERVER_HOST}:${DEFAULT_SERVER_PORT} in open mode
and keeps its data in ${DEFAULT_SERVER_DATA_DIR}.

Options:
  --host HOST              interface to bind (default ${DEFAULT_SERVER_HOST}); anything but
                           loopback requires --tokens
  --port PORT              port to bind, 0 for any free port (default ${DEFAULT_SERVER_PORT})
  --data-dir DIR           where inboxes are stored (default ${DEFAULT_SERVER_DATA_DIR})
  --tokens FILE            JSON file {"agent_id": "token", ...}: only these agents may log in
                           and be addressed; without it every agent id is accepted (open mode)
  --heartbeat-ms MS        client ping interval announced in welcome (default ${DEFAULT_HEARTBEAT_MS})
  --max-frame-bytes N      largest WebSocket message (default ${DEFAULT_MAX_FRAME_BYTES})
  --max-message-bytes N    largest message text + meta (default ${DEFAULT_MAX_MESSAGE_BYTES})
  --max-inflight N         unacknowledged deliveries per connection (default ${DEFAULT_MAX_INFLIGHT_DELIVERIES})
  --max-inbox N            undelivered entries per inbox before inbox_full (default ${DEFAULT_MAX_INBOX_ENTRIES})
  --rate-limit N           messages per second per connection (default: no limit)
  --handshake-timeout-ms MS  time a connection has to send hello (default 10000)
  --max-bad-frames N       bad frames tolerated per connection before closing with 1008 (default 20)
  --dedupe-window-ms MS    how long message ids are remembered for deduplication (default 86400000)
  --segment-bytes N        inbox segment file size (default 8388608)
  --max-open-segments N    most inbox segment files held open at once (default 1024)
  --stop-on-stdin-close    shut down as on SIGTERM once standard input closes: started with
                           stdin piped from its parent, the server stops when the parent
                           goes, however it goes (a test runner or benchmark killed with -9);
                           with stdin from /dev/null it stops at once
  --quiet                  log warnings and errors only
  -h, --help               show this help

The line "listening on URL" is printed once connections are accepted.
SIGTERM or SIGINT drains in-progress sends, closes sessions (1001) and exits 0.
`;

function int(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) {
    process.stderr.write(`im-server: --${name} expects a non-negative integer, got "${value}"\n`);
    process.exit(2);
  }
  return n;
}

function formatLog(record: ServerLogRecord): string {
  const { level, event, ...fields } = record;
  const rest = Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${new Date().toISOString()} ${level} ${event}${rest ? ` ${rest}` : ''}\n`;
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        host: { type: 'string' },
        port: { type: 'string' },
        'data-dir': { type: 'string' },
        tokens: { type: 'string' },
        'heartbeat-ms': { type: 'string' },
        'max-frame-bytes': { type: 'string' },
        'max-message-bytes': { type: 'string' },
        'max-inflight': { type: 'string' },
        'max-inbox': { type: 'string' },
        'rate-limit': { type: 'string' },
        'handshake-timeout-ms': { type: 'string' },
        'max-bad-frames': { type: 'string' },
        'dedupe-window-ms': { type: 'string' },
        'segment-bytes': { type: 'string' },
        'max-open-segments': { type: 'string' },
        'stop-on-stdin-close': { type: 'boolean' },
        quiet: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`im-server: ${(err as Error).message}\n\n${HELP}`);
    process.exit(2);
  }
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const quiet = values.quiet === true;
  const rate = int('rate-limit', values['rate-limit']);
  const options: IMServerOptions = {
    ...(values.host === undefined ? {} : { host: values.host }),
    ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }),
    ...(values.tokens === undefined ? {} : { tokensFile: values.tokens }),
    ...(rate ? { rateLimit: { perSecond: rate } } : {}),
    log: (record) => {
      if (quiet && record.level === 'info') return;
      (record.level === 'info' ? process.stdout : process.stderr).write(formatLog(record));
    },
  };
  const numeric: Array<[keyof IMServerOptions, string]> = [
    ['port', 'port'],
    ['heartbeatMs', 'heartbeat-ms'],
    ['maxFrameBytes', 'max-frame-bytes'],
    ['maxMessageBytes', 'max-message-bytes'],
    ['maxInflightDeliveries', 'max-inflight'],
    ['maxInboxEntries', 'max-inbox'],
    ['handshakeTimeoutMs', 'handshake-timeout-ms'],
    ['maxBadFrames', 'max-bad-frames'],
    ['dedupeWindowMs', 'dedupe-window-ms'],
    ['segmentBytes', 'segment-bytes'],
    ['maxOpenSegments', 'max-open-segments'],
  ];
  for (const [key, flag] of numeric) {
    const n = int(flag, values[flag as keyof typeof values] as string | undefined);
    if (n !== undefined) (options as Record<string, unknown>)[key] = n;
  }

  let server: IMServer;
  try {
    server = await IMServer.start(options);
  } catch (err) {
    const message = err instanceof IMClientError ? err.message : String(err);
    process.stderr.write(`im-server: ${message}\n`);
    process.exit(1);
  }
  process.stdout.write(`listening on ${server.url}\n`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`${signal}: shutting down\n`);
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`im-server: shutdown failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (values['stop-on-stdin-close'] === true) {
    // The parent gone, its ends of stdout and stderr are likely gone too: the shutdown's log
    // lines fail (EPIPE) and are dropped, rather than crash the server before it has drained.
    process.stdout.on('error', () => {});
    process.stderr.on('error', () => {});
    process.stdin.on('close', () => stop('stdin closed'));
    process.stdin.on('error', () => stop('stdin closed'));
    process.stdin.resume();
  }
}

void main();

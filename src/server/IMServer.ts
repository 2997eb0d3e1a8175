import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { IMClientError } from '../errors.js';
import { CloseCode } from '../protocol/codes.js';
import { WS_PATH } from '../protocol/url.js';
import { Authenticator, loadTokensFile } from './auth.js';
import { Exchange } from './Exchange.js';
import { isLoopbackHost, resolveServerOptions, type IMServerOptions, type ResolvedServerOptions } from './options.js';
import { Session, type SessionHost } from './Session.js';
import { FileInboxStore } from './store/FileInboxStore.js';
import type { InboxStore } from './store/InboxStore.js';

/**
 * The reference IM server: WebSocket endpoint `/ws` speaking protocol v1,
 * `GET /healthz`, durable store-and-forward inboxes.
 *
 * @example
 * ```ts
 * const server = await IMServer.start({ port: 0, dataDir: '/tmp/im' });
 * console.log(server.url); // http://127.0.0.1:41234
 * await server.close();
 * ```
 */
export class IMServer {
  readonly options: ResolvedServerOptions;
  readonly store: InboxStore;
  readonly #http: Server;
  readonly #wss: WebSocketServer;
  readonly #host: SessionHost;
  readonly #sessions = new Set<Session>();
  readonly #byAgent = new Map<string, Session>();
  readonly #idleTimer: NodeJS.Timeout;
  /** Callbacks waiting for a session's socket to close (during shutdown). */
  readonly #closeWaiters = new Map<Session, Array<() => void>>();
  #closing: Promise<void> | undefined;

  private constructor(options: ResolvedServerOptions, store: InboxStore, auth: Authenticator) {
    this.options = options;
    this.store = store;
    const exchange = new Exchange({
      store,
      auth,
      maxMessageBytes: options.maxMessageBytes,
      maxInboxEntries: options.maxInboxEntries,
      log: options.log,
      notify: (agentId) => this.#byAgent.get(agentId)?.notify(),
    });
    const server = this;
    this.#host = {
      options,
      store,
      exchange,
      auth,
      get closing() {
        return server.#closing !== undefined;
      },
      register: (session) => this.#register(session),
      unregister: (session) => this.#unregister(session),
    };
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: options.maxFrameBytes, perMessageDeflate: false });
    this.#http = createServer((req, res) => {
      if (req.method === 'GET' && pathOf(req) === '/healthz') {
        const ok = this.#closing === undefined;
        res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ status: ok ? 'ok' : 'shutting_down', sessions: this.#byAgent.size }));
        return;
      }
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'not_found', hint: `WebSocket endpoint is ${WS_PATH}` }));
    });
    this.#http.on('upgrade', (req, socket, head) => this.#upgrade(req, socket, head));
    this.#idleTimer = setInterval(() => this.#closeIdle(), options.heartbeatMs);
    this.#idleTimer.unref();
  }

  /**
   * Validates options, opens the store (taking the data-directory lock) and
   * listens. Refuses to bind a non-loopback host without tokens.
   */
  static async start(options: IMServerOptions = {}): Promise<IMServer> {
    const resolved = resolveServerOptions(options);
    const tokens = resolved.tokensFile ? await loadTokensFile(resolved.tokensFile) : resolved.tokens;
    if (!tokens && !isLoopbackHost(resolved.host)) {
      throw new IMClientError(
        'SERVER_ERROR',
        `refusing to listen on ${resolved.host} in open mode: without a tokens file anyone who can reach it could ` +
          'log in as any agent. Pass --tokens FILE, or bind 127.0.0.1',
      );
    }
    const store =
      resolved.store ??
      new FileInboxStore({
        dataDir: resolved.dataDir,
        segmentBytes: resolved.segmentBytes,
        dedupeWindowMs: resolved.dedupeWindowMs,
        dedupeMaxEntries: resolved.dedupeMaxEntries,
        maxOpenSegments: resolved.maxOpenSegments,
        onWarning: (w) => resolved.log({ level: 'warn', event: 'storage_warning', ...w }),
      });
    await store.open();
    const server = new IMServer(resolved, store, new Authenticator(tokens));
    try {
      await new Promise<void>((resolve, reject) => {
        server.#http.once('error', reject);
        server.#http.listen(resolved.port, resolved.host, () => {
          server.#http.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      clearInterval(server.#idleTimer);
      await store.close();
      throw new IMClientError('SERVER_ERROR', `cannot listen on ${resolved.host}:${resolved.port}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    resolved.log({ level: 'info', event: 'listening', url: server.url, dataDir: resolved.dataDir, openMode: !tokens });
    return server;
  }

  /** The port actually bound (useful with `port: 0`). */
  get port(): number {
    return (this.#http.address() as AddressInfo).port;
  }

  /** Base URL for clients' `imServerUrl`, e.g. `http://127.0.0.1:8080`. */
  get url(): string {
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    return `http://${host}:${this.port}`;
  }

  /** Agents with a live session. */
  get onlineAgents(): string[] {
    return [...this.#byAgent.keys()];
  }

  /**
   * Shuts down gracefully: stops accepting, lets sends in progress finish and
   * be answered, closes every session with 1001, closes the store. Sockets
   * still open after `timeoutMs` are terminated.
   */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.#closing ??= this.#shutdown(options.timeoutMs ?? 5000);
    return this.#closing;
  }

  async #shutdown(timeoutMs: number): Promise<void> {
    clearInterval(this.#idleTimer);
    const httpClosed = new Promise<void>((resolve) => this.#http.close(() => resolve()));
    const sessions = [...this.#sessions];
    await withTimeout(Promise.all(sessions.map((s) => s.whenIdle())), timeoutMs);
    const socketsClosed = Promise.all(
      sessions.map((s) => new Promise<void>((resolve) => (s.closed ? resolve() : this.#onceClosed(s, resolve)))),
    );
    for (const s of sessions) s.close(CloseCode.GOING_AWAY, 'server shutting down');
    if (!(await withTimeout(socketsClosed, timeoutMs))) for (const s of sessions) s.terminate();
    this.#http.closeAllConnections();
    await httpClosed;
    // Acks and sends still being processed finish before the store (and its lock) goes away.
    await withTimeout(this.#host.exchange.idle(), timeoutMs);
    await this.store.close();
    this.options.log({ level: 'info', event: 'closed' });
  }

  #onceClosed(session: Session, fn: () => void): void {
    const list = this.#closeWaiters.get(session);
    if (list) list.push(fn);
    else this.#closeWaiters.set(session, [fn]);
  }

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (pathOf(req) !== WS_PATH || this.#closing) {
      socket.end(`HTTP/1.1 ${this.#closing ? '503 Service Unavailable' : '404 Not Found'}\r\nConnection: close\r\n\r\n`);
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      this.#sessions.add(new Session(ws, this.#host));
    });
  }

  #register(session: Session): void {
    const previous = this.#byAgent.get(session.agentId!);
    this.#byAgent.set(session.agentId!, session);
    if (previous && previous !== session) {
      this.options.log({ level: 'info', event: 'session_replaced', agentId: session.agentId, old: previous.id, new: session.id });
      previous.closeWithError('session_replaced', 'another connection logged in as this agent', CloseCode.SESSION_REPLACED);
    }
  }

  #unregister(session: Session): void {
    this.#sessions.delete(session);
    if (session.agentId && this.#byAgent.get(session.agentId) === session) this.#byAgent.delete(session.agentId);
    for (const fn of this.#closeWaiters.get(session) ?? []) fn();
    this.#closeWaiters.delete(session);
  }

  #closeIdle(): void {
    const limit = Date.now() - 3 * this.options.heartbeatMs;
    for (const s of this.#sessions) {
      // A session whose socket the server stopped reading cannot show it is alive.
      if (s.agentId && !s.paused && s.lastSeen < limit) {
        this.options.log({ level: 'info', event: 'idle_timeout', agentId: s.agentId });
        s.closeWithError('idle_timeout', 'no frame for 3 heartbeat intervals', CloseCode.IDLE_TIMEOUT);
      }
    }
  }
}

function pathOf(req: IncomingMessage): string {
  return (req.url ?? '/').split('?')[0]!;
}

async function withTimeout(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';

/** What the proxy does with traffic. */
export type FaultMode =
  /** Forward everything both ways. */
  | 'pass'
  /** Keep every connection open but forward nothing, silently: a dead link that looks alive. */
  | 'stall'
  /** Accept new connections and close them at once (an endpoint that refuses). */
  | 'refuse';

interface Pair {
  client: Socket;
  upstream: Socket;
}

/**
 * A TCP proxy on 127.0.0.1 for fault injection between a client and a
 * server: pass traffic, stall it silently, delay it, refuse new
 * connections, drop every connection, or cut the next server-to-client write
 * in the middle of a frame. Works for any protocol over TCP (here, the
 * WebSocket between IMClient and the IM server).
 *
 * @example
 * ```ts
 * const proxy = await FaultProxy.start({ target: server.url });
 * const client = new IMClient({ imServerUrl: proxy.url, ... });
 * proxy.setMode('stall'); // the heartbeat notices, the client reconnects once it passes again
 * ```
 */
export class FaultProxy {
  readonly #server: Server;
  readonly #target: { host: string; port: number };
  readonly #pairs = new Set<Pair>();
  #mode: FaultMode = 'pass';
  #delayMs = 0;
  #cutNext: number | undefined;
  /** Connections accepted so far (refused ones included). */
  connections = 0;

  private constructor(server: Server, target: { host: string; port: number }) {
    this.#server = server;
    this.#target = target;
  }

  /** Starts a proxy to `target` (`http://host:port` or `{ host, port }`) on a free loopback port. */
  static async start(options: { target: string | { host: string; port: number }; port?: number }): Promise<FaultProxy> {
    const target =
      typeof options.target === 'string'
        ? { host: new URL(options.target).hostname, port: Number(new URL(options.target).port) }
        : options.target;
    const server = createServer();
    const proxy = new FaultProxy(server, target);
    server.on('connection', (socket) => proxy.#accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
    });
    return proxy;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** Base URL to give clients instead of the server's. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get mode(): FaultMode {
    return this.#mode;
  }

  /** Connections currently open through the proxy. */
  get openConnections(): number {
    return this.#pairs.size;
  }

  /** Switches mode; stalled data is dropped, not replayed, when traffic passes again. */
  setMode(mode: FaultMode): void {
    this.#mode = mode;
  }

  /** Delays every forwarded chunk by `ms` (0 to stop delaying). */
  setDelay(ms: number): void {
    this.#delayMs = ms;
  }

  /** Destroys every open connection (both ends see a reset). */
  dropAll(): void {
    for (const { client, upstream } of this.#pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.#pairs.clear();
  }

  /** Forwards only the first `bytes` of the next server-to-client chunk, then drops that connection. */
  cutNextServerWrite(bytes: number): void {
    this.#cutNext = bytes;
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: Socket): void {
    this.connections++;
    if (this.#mode === 'refuse') {
      client.destroy();
      return;
    }
    const upstream = connect(this.#target.port, this.#target.host);
    const pair: Pair = { client, upstream };
    this.#pairs.add(pair);
    const end = () => {
      this.#pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.on('data', (chunk: Buffer) => this.#forward(chunk, upstream, pair, false));
    upstream.on('data', (chunk: Buffer) => this.#forward(chunk, client, pair, true));
  }

  #forward(chunk: Buffer, to: Socket, pair: Pair, fromServer: boolean): void {
    if (this.#mode !== 'pass') return;
    if (fromServer && this.#cutNext !== undefined) {
      const bytes = Math.min(this.#cutNext, chunk.length - 1);
      this.#cutNext = undefined;
      to.write(chunk.subarray(0, Math.max(0, bytes)), () => {
        pair.client.destroy();
        pair.upstream.destroy();
      });
      return;
    }
    if (this.#delayMs > 0) setTimeout(() => to.writable && to.write(chunk), this.#delayMs);
    else to.write(chunk);
  }
}

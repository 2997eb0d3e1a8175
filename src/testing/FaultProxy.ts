import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';

/** What the proxy does with the whole link. */
export type FaultMode =
  /** Forward everything both ways (subject to the per-direction settings). */
  | 'pass'
  /** Keep every connection open but forward nothing, silently: a dead link that looks alive. */
  | 'stall'
  /** Keep connections open and buffer everything, to forward it in order once the mode is `pass` again. */
  | 'hold'
  /** Accept new connections and close them at once (an endpoint that refuses). */
  | 'refuse';

/** A direction of traffic. */
export type Direction = 'toServer' | 'toClient';

/** What happens to one direction's traffic after the HTTP upgrade (the WebSocket frames). */
export type DirectionPolicy = 'pass' | 'hold' | 'drop';

interface Side {
  /** Still inside the HTTP request or response that opens the WebSocket. */
  headerBytes: Buffer | undefined;
  /** Upgrade bytes held back (only the link mode holds these). */
  heldHeader: Buffer[];
  /** Frames held back, in order. */
  held: Buffer[];
}

interface Pair {
  client: Socket;
  upstream: Socket;
  toServer: Side;
  toClient: Side;
}

const HEADER_END = Buffer.from('\r\n\r\n');

/**
 * A TCP proxy on 127.0.0.1 for fault injection between a client and a server:
 * pass traffic, stall it silently, hold it and release it later, refuse new
 * connections, drop every connection, delay it, or cut the next server write
 * in the middle of a frame. For WebSocket traffic each direction can also be
 * held or dropped after the HTTP upgrade, which keeps a connection open while
 * its frames (a hello, a ping, the server's answers) wait or vanish.
 *
 * @example
 * ```ts
 * const proxy = await FaultProxy.start({ target: server.url });
 * const client = new IMClient({ imServerUrl: proxy.url, ... });
 * proxy.setMode('stall');              // the heartbeat notices, the client reconnects once it passes again
 * proxy.setDirection('toClient', 'hold'); // acks and deliveries wait...
 * proxy.setDirection('toClient', 'pass'); // ...and arrive, in order
 * ```
 */
export class FaultProxy {
  readonly #server: Server;
  readonly #target: { host: string; port: number };
  readonly #pairs = new Set<Pair>();
  #mode: FaultMode = 'pass';
  readonly #direction: Record<Direction, DirectionPolicy> = { toServer: 'pass', toClient: 'pass' };
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

  /** Switches the whole link's mode. Leaving `hold` forwards what it held; stalled data is gone. */
  setMode(mode: FaultMode): void {
    this.#mode = mode;
    this.#flush();
  }

  /** Sets what happens to one direction's frames after the WebSocket upgrade. `pass` forwards what was held. */
  setDirection(direction: Direction, policy: DirectionPolicy): void {
    this.#direction[direction] = policy;
    if (policy === 'drop') for (const pair of this.#pairs) pair[direction].held = [];
    this.#flush();
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

  /**
   * Sends a WebSocket text frame to every upgraded client as if the server
   * had sent it (a misbehaving server, or a test of how a client takes a frame).
   */
  injectToClient(text: string): void {
    const payload = Buffer.from(text);
    const header =
      payload.length < 126
        ? Buffer.from([0x81, payload.length])
        : payload.length < 65536
          ? Buffer.from([0x81, 126, payload.length >> 8, payload.length & 0xff])
          : Buffer.concat([Buffer.from([0x81, 127]), bigEndian64(payload.length)]);
    for (const pair of this.#pairs) {
      if (pair.toClient.headerBytes === undefined && pair.client.writable) pair.client.write(Buffer.concat([header, payload]));
    }
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
    const pair: Pair = {
      client,
      upstream,
      toServer: { headerBytes: Buffer.alloc(0), heldHeader: [], held: [] },
      toClient: { headerBytes: Buffer.alloc(0), heldHeader: [], held: [] },
    };
    this.#pairs.add(pair);
    const end = () => {
      this.#pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.on('data', (chunk: Buffer) => this.#receive(pair, 'toServer', chunk));
    upstream.on('data', (chunk: Buffer) => this.#receive(pair, 'toClient', chunk));
  }

  /** Splits off the HTTP upgrade part of a chunk (which only the link mode governs) from the frames after it. */
  #receive(pair: Pair, direction: Direction, chunk: Buffer): void {
    if (this.#mode === 'stall') return;
    const side = pair[direction];
    let frames = chunk;
    if (side.headerBytes !== undefined) {
      const seen = Buffer.concat([side.headerBytes, chunk]);
      const end = seen.indexOf(HEADER_END);
      if (end === -1) {
        side.headerBytes = seen;
        this.#enqueue(pair, direction, chunk, false);
        return;
      }
      const headerRest = chunk.length - (seen.length - (end + HEADER_END.length));
      side.headerBytes = undefined;
      this.#enqueue(pair, direction, chunk.subarray(0, headerRest), false);
      frames = chunk.subarray(headerRest);
      if (frames.length === 0) return;
    }
    this.#enqueue(pair, direction, frames, true);
  }

  #enqueue(pair: Pair, direction: Direction, data: Buffer, afterUpgrade: boolean): void {
    const side = pair[direction];
    if (afterUpgrade) {
      if (this.#direction[direction] === 'drop') return;
      side.held.push(data);
    } else {
      side.heldHeader.push(data);
    }
    this.#drain(pair, direction);
  }

  #flush(): void {
    for (const pair of this.#pairs) {
      this.#drain(pair, 'toServer');
      this.#drain(pair, 'toClient');
    }
  }

  /** Forwards what may pass now: upgrade bytes when the link passes, frames when their direction passes too. */
  #drain(pair: Pair, direction: Direction): void {
    if (this.#mode !== 'pass') return;
    const side = pair[direction];
    const to = direction === 'toServer' ? pair.upstream : pair.client;
    while (side.heldHeader.length > 0) {
      const chunk = side.heldHeader.shift()!;
      if (to.writable) to.write(chunk);
    }
    if (this.#direction[direction] !== 'pass') return;
    while (side.held.length > 0) {
      const chunk = side.held.shift()!;
      if (direction === 'toClient' && this.#cutNext !== undefined) {
        const bytes = Math.min(this.#cutNext, chunk.length - 1);
        this.#cutNext = undefined;
        to.write(chunk.subarray(0, Math.max(0, bytes)), () => {
          pair.client.destroy();
          pair.upstream.destroy();
        });
        side.held = [];
        return;
      }
      if (this.#delayMs > 0) setTimeout(() => to.writable && to.write(chunk), this.#delayMs);
      else if (to.writable) to.write(chunk);
    }
  }
}

function bigEndian64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

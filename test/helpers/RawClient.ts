import WebSocket from 'ws';
import { decodeServerMessage, type ClientFrame, type ServerFrame } from '../../src/protocol/frames.js';
import type { WelcomeFrame } from '../../src/protocol/handshake.js';

type FrameOf<T extends ServerFrame['type']> = Extract<ServerFrame, { type: T }>;

/**
 * A bare protocol-v1 client for testing the server frame by frame: it
 * validates what it receives (single frames and batches) with the protocol's
 * own schemas and lets a test wait for specific frames.
 */
export class RawClient {
  readonly ws: WebSocket;
  readonly frames: ServerFrame[] = [];
  /** Frames that failed validation (should stay empty). */
  readonly invalid: string[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  #waiters: Array<{ test: (f: ServerFrame) => boolean; resolve: (f: ServerFrame) => void }> = [];
  readonly #listeners: Array<(f: ServerFrame) => void> = [];

  private constructor(ws: WebSocket) {
    this.ws = ws;
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on('message', (data) => {
      // One frame, or a batch of frames in order.
      for (const decoded of decodeServerMessage(data.toString())) {
        if (!decoded.ok) {
          this.invalid.push(`${decoded.message}: ${data.toString()}`);
          continue;
        }
        this.frames.push(decoded.frame);
        for (const listener of this.#listeners) listener(decoded.frame);
        this.#waiters = this.#waiters.filter((w) => {
          if (!w.test(decoded.frame)) return true;
          w.resolve(decoded.frame);
          return false;
        });
      }
    });
    ws.on('error', () => {});
  }

  /** Opens a socket to `{url}/ws` without saying hello. */
  static async open(url: string): Promise<RawClient> {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws`);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return new RawClient(ws);
  }

  /** Opens a socket, says hello and waits for welcome. */
  static async login(url: string, agentId: string, extra: Partial<Extract<ClientFrame, { type: 'hello' }>> = {}): Promise<RawClient & { welcome: WelcomeFrame }> {
    const c = await RawClient.open(url);
    c.send({ type: 'hello', protocol: 1, agentId, ...extra });
    const first = await c.nextOf(['welcome', 'error']);
    if (first.type !== 'welcome') throw new Error(`login refused: ${JSON.stringify(first)}`);
    return Object.assign(c, { welcome: first });
  }

  /** Calls `listener` with every valid frame received from now on (batches unpacked, in order). */
  onFrame(listener: (frame: ServerFrame) => void): void {
    this.#listeners.push(listener);
  }

  send(frame: ClientFrame | Record<string, unknown>): void {
    this.ws.send(JSON.stringify(frame));
  }

  sendRaw(data: string | Buffer): void {
    this.ws.send(data);
  }

  /** The next frame of `type` not yet returned by `next` (waits up to `timeoutMs`). */
  next<T extends ServerFrame['type']>(type: T, timeoutMs = 5000): Promise<FrameOf<T>> {
    return this.nextOf([type], timeoutMs);
  }

  /** The next frame of any of `types` not yet returned (waits up to `timeoutMs`). */
  nextOf<T extends ServerFrame['type']>(types: readonly T[], timeoutMs = 5000): Promise<FrameOf<T>> {
    const wanted = (f: ServerFrame) => (types as readonly string[]).includes(f.type);
    const buffered = this.frames.find(wanted);
    if (buffered) {
      this.frames.splice(this.frames.indexOf(buffered), 1);
      return Promise.resolve(buffered as FrameOf<T>);
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        test: wanted,
        resolve: (f: ServerFrame) => {
          clearTimeout(timer);
          this.frames.splice(this.frames.indexOf(f), 1);
          resolve(f as FrameOf<T>);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`no ${types.join('/')} frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames).slice(0, 500)}`));
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }

  /** Waits until `count` frames of `type` have arrived in total (consumed or not), returns those not consumed. */
  async collect<T extends ServerFrame['type']>(type: T, count: number, timeoutMs = 10000): Promise<Array<FrameOf<T>>> {
    const out: Array<FrameOf<T>> = [];
    for (let i = 0; i < count; i++) out.push(await this.next(type, timeoutMs));
    return out;
  }

  /** Resolves after `ms` with every frame received meanwhile of `type` (consumed). */
  async drain<T extends ServerFrame['type']>(type: T, ms: number): Promise<Array<FrameOf<T>>> {
    await new Promise((r) => setTimeout(r, ms));
    const out = this.frames.filter((f) => f.type === type) as Array<FrameOf<T>>;
    for (const f of out) this.frames.splice(this.frames.indexOf(f), 1);
    return out;
  }

  close(): void {
    this.ws.close();
  }
}

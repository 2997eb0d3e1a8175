import { randomUUID } from 'node:crypto';
import type { RawData, WebSocket } from 'ws';
import { CloseCode, PROTOCOL_VERSION, type ErrorCode } from '../protocol/codes.js';
import type { DeliverAckFrame } from '../protocol/delivery.js';
import { decodeClientMessage, encodeFrame, type ClientFrame, type Decoded, type ServerFrame } from '../protocol/frames.js';
import { FrameWriter } from '../protocol/FrameWriter.js';
import type { HelloFrame } from '../protocol/handshake.js';
import type { SendFrame } from '../protocol/send.js';
import { deferred, type Deferred } from '../util/deferred.js';
import type { Authenticator } from './auth.js';
import { rateLimitedNack, shuttingDownNack, type Exchange } from './Exchange.js';
import type { ResolvedServerOptions } from './options.js';
import { RateLimiter } from './RateLimiter.js';
import type { InboxEntry, InboxStore } from './store/InboxStore.js';

/** What a session needs from its server. */
export interface SessionHost {
  options: ResolvedServerOptions;
  store: InboxStore;
  exchange: Exchange;
  auth: Authenticator;
  /** Whether the server is shutting down (sends are refused). */
  readonly closing: boolean;
  /** Registers an authenticated session, closing any older one of the same agent. */
  register(session: Session): void;
  /** Called once the session's socket is closed. */
  unregister(session: Session): void;
}

/**
 * One client connection: handshake, then sends, acks and heartbeats in, and
 * a delivery pump out. Deliveries stop at `maxInflightDeliveries`
 * unacknowledged or when the socket's buffer is full, and resume on
 * `deliver_ack` or drain; reading stops while `maxPendingSends` sends are
 * being stored. So neither a slow consumer nor a fast producer grows server
 * memory without bound.
 */
export class Session {
  readonly id = randomUUID();
  readonly #ws: WebSocket;
  /** Everything this session sends goes through it, in order, batched per turn of the event loop. */
  readonly #out: FrameWriter;
  readonly #host: SessionHost;
  readonly #limiter: RateLimiter | undefined;
  agentId: string | undefined;
  /** When a frame last arrived, for the idle check. */
  lastSeen = Date.now();
  #handshakeTimer: NodeJS.Timeout | undefined;
  #badFrames = 0;
  #closed = false;
  /** Highest inbox sequence sent on this connection. */
  #sentUpTo = 0;
  /** Sequences sent and not yet acknowledged, oldest first. */
  #inflight: number[] = [];
  #inflightHead = 0;
  #pumping = false;
  #pumpAgain = false;
  /** The pump stopped on a full socket buffer and waits for the last frame to be written. */
  #blocked = false;
  /** Frames that arrived after hello but before welcome was sent; handled right after it. */
  #early: Array<Decoded<ClientFrame>> | undefined = [];
  #pendingSends = 0;
  #paused = false;
  /** Resolves when no send is in progress (for graceful shutdown). */
  #idle: Deferred | undefined;

  constructor(ws: WebSocket, host: SessionHost) {
    this.#ws = ws;
    this.#out = new FrameWriter(ws);
    this.#host = host;
    const rl = host.options.rateLimit;
    this.#limiter = rl && new RateLimiter(rl);
    this.#handshakeTimer = setTimeout(() => {
      this.#fail('handshake_timeout', 'no hello within the handshake timeout', CloseCode.HANDSHAKE_TIMEOUT);
    }, host.options.handshakeTimeoutMs);
    ws.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
    ws.on('close', () => this.#onClose());
    ws.on('error', (err) => this.#log('warn', 'socket_error', { error: err.message }));
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Wakes the delivery pump: the inbox has something new. */
  notify(): void {
    void this.#pump();
  }

  /** Whether reading from the socket is paused (too many sends pending): silence is then the server's doing. */
  get paused(): boolean {
    return this.#paused;
  }

  /** Tells the client why, with a fatal error frame, then closes with a protocol close code. */
  closeWithError(code: ErrorCode, message: string, closeCode: number): void {
    this.#send({ type: 'error', code, message, fatal: true });
    this.close(closeCode, message.slice(0, 120));
  }

  /** Closes the socket with a protocol close code, after the frames already written. */
  close(code: number, reason: string): void {
    if (this.#ws.readyState === this.#ws.OPEN) this.#out.flush();
    this.#out.discard();
    if (this.#ws.readyState === this.#ws.OPEN || this.#ws.readyState === this.#ws.CONNECTING) this.#ws.close(code, reason);
    this.#closed = true;
  }

  /** Forcibly drops the connection. */
  terminate(): void {
    this.#out.discard();
    this.#ws.terminate();
    this.#closed = true;
  }

  /** Resolves once no send of this session is being stored. */
  whenIdle(): Promise<void> {
    if (this.#pendingSends === 0) return Promise.resolve();
    this.#idle ??= deferred();
    return this.#idle.promise;
  }

  #onMessage(data: RawData, isBinary: boolean): void {
    this.lastSeen = Date.now();
    if (this.#closed) return;
    if (isBinary) {
      const message = 'binary frames are not part of the protocol; send JSON text';
      return this.agentId ? this.#badFrame('bad_frame', message) : this.#fail('bad_frame', `${message}; the first frame must be hello`, CloseCode.BAD_HANDSHAKE);
    }
    // One frame, or a batch of frames handled in order; a run of sends among them is stored together
    // (any other frame is handled after the sends before it, as if the frames had come one by one).
    let sends: SendFrame[] = [];
    for (const decoded of decodeClientMessage(rawText(data))) {
      if (this.#closed) return;
      const batched = decoded.ok && decoded.frame.type === 'send' && this.agentId !== undefined && this.#early === undefined;
      if (!batched && sends.length > 0) {
        this.#onSends(sends);
        sends = [];
        if (this.#closed) return;
      }
      this.#onFrame(decoded, sends);
    }
    if (sends.length > 0 && !this.#closed) this.#onSends(sends);
  }

  /** Handles a frame; a `send` is added to `sends` when given (the caller hands them on together), else handled now. */
  #onFrame(decoded: Decoded<ClientFrame>, sends?: SendFrame[]): void {
    if (this.#early && this.agentId) {
      // hello is being processed: keep later frames in order until welcome is out.
      this.#early.push(decoded);
      return;
    }
    if (!decoded.ok) {
      if (!this.agentId) {
        return this.#fail(decoded.code, `${decoded.message}; the first frame must be hello`, CloseCode.BAD_HANDSHAKE, decoded.type);
      }
      return this.#badFrame(decoded.code, decoded.message, decoded.type);
    }
    const frame = decoded.frame;
    if (!this.agentId) {
      if (frame.type !== 'hello') {
        return this.#fail('not_authenticated', `expected hello, got ${frame.type}`, CloseCode.BAD_HANDSHAKE, frame.type);
      }
      void this.#onHello(frame).catch((err: unknown) => this.#internalError(err));
      return;
    }
    switch (frame.type) {
      case 'hello':
        return this.#badFrame('already_authenticated', 'hello was already accepted on this connection', 'hello');
      case 'send':
        if (sends) sends.push(frame);
        else this.#onSends([frame]);
        return;
      case 'deliver_ack':
        void this.#onDeliverAck(frame).catch((err: unknown) => this.#internalError(err));
        return;
      case 'ping':
        return this.#send({ type: 'pong', ...(frame.t === undefined ? {} : { t: frame.t }) });
    }
  }

  async #onHello(hello: HelloFrame): Promise<void> {
    clearTimeout(this.#handshakeTimer);
    if (hello.protocol !== PROTOCOL_VERSION) {
      return this.#fail(
        'unsupported_protocol',
        `protocol ${hello.protocol} is not supported; this server speaks ${PROTOCOL_VERSION}`,
        CloseCode.UNSUPPORTED_PROTOCOL,
        'hello',
      );
    }
    if (!this.#host.auth.verify(hello.agentId, hello.token)) {
      this.#log('warn', 'unauthorized', { agentId: hello.agentId });
      return this.#fail('unauthorized', `agent "${hello.agentId}" is unknown or its token is wrong`, CloseCode.UNAUTHORIZED, 'hello');
    }
    // Claim the id before any await, so a concurrent login cannot interleave.
    this.agentId = hello.agentId;
    this.#host.register(this);
    const { store, exchange } = this.#host;
    let position = await store.position(hello.agentId);
    if (hello.resume && hello.resume.epoch === position.epoch && hello.resume.ackedUpTo > position.ackedUpTo) {
      await exchange.deliverAck(hello.agentId, Math.min(hello.resume.ackedUpTo, position.latestSeq));
      position = await store.position(hello.agentId);
    }
    if (this.#closed) return;
    this.#sentUpTo = position.ackedUpTo;
    const o = this.#host.options;
    this.#send({
      type: 'welcome',
      protocol: PROTOCOL_VERSION,
      sessionId: this.id,
      agentId: hello.agentId,
      heartbeatMs: o.heartbeatMs,
      limits: { maxFrameBytes: o.maxFrameBytes, maxMessageBytes: o.maxMessageBytes, maxInflightDeliveries: o.maxInflightDeliveries },
      inbox: position,
      serverTime: new Date().toISOString(),
    });
    this.#log('info', 'session_opened', {
      agentId: hello.agentId,
      client: hello.client ? `${hello.client.name ?? '?'}/${hello.client.version ?? '?'}` : undefined,
      resumeFrom: position.ackedUpTo,
      backlog: position.latestSeq - position.ackedUpTo,
    });
    const early = this.#early ?? [];
    this.#early = undefined;
    for (const decoded of early) if (!this.#closed) this.#onFrame(decoded);
    void this.#pump();
  }

  /** Stores the sends of one WebSocket message (those not refused at once) together, answering each. */
  #onSends(frames: SendFrame[]): void {
    const accepted: SendFrame[] = [];
    for (const frame of frames) {
      if (this.#host.closing) {
        this.#send(shuttingDownNack(frame.id));
        continue;
      }
      const wait = this.#limiter?.take() ?? 0;
      if (wait > 0) this.#send(rateLimitedNack(frame.id, wait));
      else accepted.push(frame);
    }
    if (accepted.length === 0) return;
    this.#pendingSends += accepted.length;
    if (!this.#paused && this.#pendingSends >= this.#host.options.maxPendingSends) {
      // Backpressure on the producer: stop reading its socket until the store catches up.
      this.#paused = true;
      this.#ws.pause();
    }
    let unanswered = accepted.length;
    this.#host.exchange
      .sendBatch(this.agentId!, accepted, (answer) => {
        // After an internal error, the remaining sends were settled at once (the session is closing).
        if (unanswered === 0) return;
        unanswered--;
        try {
          this.#send(answer);
        } catch (err) {
          this.#internalError(err);
        } finally {
          this.#sendsSettled(1);
        }
      })
      .catch((err: unknown) => {
        this.#internalError(err);
        this.#sendsSettled(unanswered);
        unanswered = 0;
      });
  }

  /** A send was answered (or failed): the producer may be resumed, and close may go on. */
  #sendsSettled(count: number): void {
    this.#pendingSends -= count;
    if (this.#paused && this.#pendingSends <= this.#host.options.maxPendingSends / 2) {
      this.#paused = false;
      this.#ws.resume();
    }
    if (this.#pendingSends === 0 && this.#idle) {
      this.#idle.resolve();
      this.#idle = undefined;
    }
  }

  async #onDeliverAck(frame: DeliverAckFrame): Promise<void> {
    let upTo = frame.upTo;
    if (upTo > this.#sentUpTo) {
      this.#badFrame('invalid_ack', `deliver_ack upTo ${upTo} is beyond the last delivered sequence ${this.#sentUpTo}`, 'deliver_ack');
      upTo = this.#sentUpTo;
    }
    // The client has these durably: its delivery window moves on now, while the ack is recorded
    // (after the receipts it causes). Waiting for those two appends held the next deliveries back
    // by two fsyncs per window; a crash before they are durable only delivers the entries again,
    // and the client skips what it already stored.
    const recorded = this.#host.exchange.deliverAck(this.agentId!, upTo);
    while (this.#inflightHead < this.#inflight.length && this.#inflight[this.#inflightHead]! <= upTo) this.#inflightHead++;
    if (this.#inflightHead > 1024 && this.#inflightHead * 2 > this.#inflight.length) {
      this.#inflight = this.#inflight.slice(this.#inflightHead);
      this.#inflightHead = 0;
    }
    void this.#pump();
    await recorded;
  }

  /** Sends inbox entries while the window and the socket buffer have room. */
  async #pump(): Promise<void> {
    if (!this.agentId || this.#closed) return;
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = true;
    const { store, options } = this.#host;
    try {
      do {
        this.#pumpAgain = false;
        for (;;) {
          if (this.#closed) return;
          // Waiting for the socket to drain: the last frame's write callback resumes the pump.
          if (this.#blocked) break;
          const room = options.maxInflightDeliveries - (this.#inflight.length - this.#inflightHead);
          if (room <= 0) break;
          const batch = await store.read(this.agentId, this.#sentUpTo, Math.min(room, 256));
          if (batch.length === 0 || this.#closed) break;
          let full = false;
          for (const entry of batch) {
            // Checked per frame: a batch of large messages must not overshoot the buffer limit by much.
            const buffered = this.#out.bufferedAmount;
            full = buffered + entry.payload.length >= options.sendHighWaterBytes && buffered > 0;
            // The write callback of the last frame sent before stopping resumes the pump once it is out.
            this.#out.write(frameOf(entry), full ? this.#onWritten : undefined);
            this.#sentUpTo = entry.seq;
            this.#inflight.push(entry.seq);
            if (full) break;
          }
          if (full) {
            this.#blocked = true;
            break;
          }
        }
      } while (this.#pumpAgain);
    } catch (err) {
      this.#internalError(err);
    } finally {
      this.#pumping = false;
    }
  }

  readonly #onWritten = (): void => {
    if (!this.#blocked) return;
    this.#blocked = false;
    void this.#pump();
  };

  #send(frame: ServerFrame): void {
    if (this.#ws.readyState !== this.#ws.OPEN) return;
    this.#out.write(encodeFrame(frame));
  }

  #badFrame(code: ErrorCode, message: string, ref?: string): void {
    this.#badFrames++;
    this.#log('warn', 'bad_frame', { agentId: this.agentId, code, message });
    if (this.#badFrames > this.#host.options.maxBadFrames) {
      this.#send({ type: 'error', code, message: `${message}; too many bad frames, closing`, fatal: true, ...(ref ? { ref } : {}) });
      this.close(CloseCode.POLICY_VIOLATION, 'too many bad frames');
      return;
    }
    this.#send({ type: 'error', code, message, fatal: false, ...(ref ? { ref } : {}) });
  }

  #fail(code: ErrorCode, message: string, closeCode: number, ref?: string): void {
    clearTimeout(this.#handshakeTimer);
    this.#send({ type: 'error', code, message, fatal: true, ...(ref ? { ref } : {}) });
    this.close(closeCode, message.slice(0, 120));
  }

  #internalError(err: unknown): void {
    this.#log('error', 'internal_error', { agentId: this.agentId, error: err instanceof Error ? err.stack : String(err) });
    this.#send({ type: 'error', code: 'internal', message: 'internal server error', fatal: true });
    this.close(CloseCode.INTERNAL_ERROR, 'internal error');
  }

  #onClose(): void {
    clearTimeout(this.#handshakeTimer);
    this.#out.discard();
    this.#closed = true;
    this.#host.unregister(this);
    if (this.agentId) this.#log('info', 'session_closed', { agentId: this.agentId });
  }

  #log(level: 'info' | 'warn' | 'error', event: string, fields: Record<string, unknown>): void {
    this.#host.options.log({ level, event, session: this.id, ...fields });
  }
}

function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

/** The frame of an inbox entry, assembled around its stored JSON without re-serialising it. */
function frameOf(entry: InboxEntry): string {
  return entry.kind === 'message'
    ? `{"type":"deliver","seq":${entry.seq},"message":${entry.payload}}`
    : `{"type":"receipt","seq":${entry.seq},${entry.payload.slice(1)}`;
}

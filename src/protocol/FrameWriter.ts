/** The part of a `ws` WebSocket a {@link FrameWriter} writes to. */
export interface FrameSocket {
  send(data: Buffer, options: { binary: boolean }, cb?: (err?: Error) => void): void;
  readonly bufferedAmount: number;
}

/** Default cap of one batch: far below any sane `maxFrameBytes`, big enough to amortise a write. */
export const DEFAULT_MAX_BATCH_BYTES = 64 * 1024;
/** Most frames in one batch (the receiving side refuses more, see `MAX_BATCH_FRAMES`). */
export const DEFAULT_MAX_BATCH_FRAMES = 1024;

/** The first buffer of a batch; later ones start at the size the last batch reached. */
const MIN_BUFFER_BYTES = 1024;

const OPEN_BRACKET = 0x5b;
const COMMA = 0x2c;
const CLOSE_BRACKET = 0x5d;
const TEXT = { binary: false };

/**
 * Writes encoded frames to a WebSocket in batches: frames written during one
 * turn of the event loop go out together, as one WebSocket message holding a
 * JSON array of frames (a single frame goes out as itself), in the order they
 * were written. One write and one WebSocket header per batch instead of per
 * frame is what lets a durable exchange keep up with a raw relay.
 *
 * Each frame is encoded to UTF-8 once, straight into the batch's buffer,
 * which goes to the socket as a text message: no joined string of the batch
 * to measure and encode again.
 *
 * A batch is sent early when it reaches `maxBatchBytes` or `maxBatchFrames`;
 * `flush()` sends at once (before closing the socket, so a last error frame
 * is not lost). Each frame's callback runs when its batch was written.
 */
export class FrameWriter {
  readonly #socket: FrameSocket;
  #maxBytes: number;
  readonly #maxFrames: number;
  /** The batch: `[`, then the frames separated by commas (the closing bracket is added when sent). */
  #buf: Buffer | undefined;
  /** Bytes of `#buf` used. */
  #at = 0;
  #count = 0;
  /** Size to give the next batch's buffer: enough for one like the last. */
  #capacity = MIN_BUFFER_BYTES;
  #callbacks: Array<(err?: Error) => void> = [];
  #scheduled: NodeJS.Immediate | undefined;

  constructor(socket: FrameSocket, options: { maxBatchBytes?: number; maxBatchFrames?: number } = {}) {
    this.#socket = socket;
    this.#maxBytes = options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
    this.#maxFrames = options.maxBatchFrames ?? DEFAULT_MAX_BATCH_FRAMES;
  }

  /** Frames written and not yet handed to the socket, in bytes (for backpressure decisions). */
  get pendingBytes(): number {
    // A lone frame goes out without its brackets; a batch gains its closing one.
    return this.#count === 0 ? 0 : this.#count === 1 ? this.#at - 1 : this.#at + 1;
  }

  /** Bytes the socket holds, written or waiting to be. */
  get bufferedAmount(): number {
    return this.#socket.bufferedAmount + this.pendingBytes;
  }

  /** Lowers (or raises) the batch size cap, e.g. to the peer's announced frame limit. */
  set maxBatchBytes(bytes: number) {
    this.#maxBytes = bytes;
  }

  /** Queues one encoded frame; `onWritten` runs once its batch reached the socket (with an error if it failed). */
  write(frame: string, onWritten?: (err?: Error) => void): void {
    // At most 3 bytes per UTF-16 unit; the exact size is counted only when that bound could pass the cap.
    const most = frame.length * 3;
    if (this.#count > 0) {
      const full = this.#count >= this.#maxFrames || (this.#at + most + 2 > this.#maxBytes && this.#at + Buffer.byteLength(frame) + 2 > this.#maxBytes);
      if (full) this.flush();
    }
    // Room for a separator, the frame and the closing bracket (a big frame counted exactly, not at 3 bytes a unit).
    let buf = this.#buf;
    if (buf === undefined || this.#at + most + 2 > buf.length) buf = this.#grow((most > 65_536 ? Buffer.byteLength(frame) : most) + 2);
    buf[this.#at] = this.#count === 0 ? OPEN_BRACKET : COMMA;
    this.#at += 1 + buf.write(frame, this.#at + 1);
    this.#count++;
    if (onWritten) this.#callbacks.push(onWritten);
    this.#scheduled ??= setImmediate(() => {
      this.#scheduled = undefined;
      this.flush();
    });
  }

  /** Sends what is queued now. */
  flush(): void {
    if (this.#scheduled !== undefined) {
      clearImmediate(this.#scheduled);
      this.#scheduled = undefined;
    }
    const buf = this.#buf;
    if (this.#count === 0 || buf === undefined) return;
    let data: Buffer;
    if (this.#count === 1) {
      data = buf.subarray(1, this.#at);
    } else {
      buf[this.#at] = CLOSE_BRACKET;
      data = buf.subarray(0, this.#at + 1);
    }
    const callbacks = this.#callbacks;
    // The socket may hold on to the buffer until it is written: the next batch gets a new one.
    this.#capacity = MIN_BUFFER_BYTES;
    while (this.#capacity < this.#at + 2) this.#capacity *= 2;
    this.#buf = undefined;
    this.#at = 0;
    this.#count = 0;
    this.#callbacks = [];
    this.#socket.send(
      data,
      TEXT,
      callbacks.length === 0
        ? undefined
        : (err) => {
            for (const cb of callbacks) cb(err ?? undefined);
          },
    );
  }

  /** Drops what is queued (the socket is gone); their callbacks are not called. */
  discard(): void {
    if (this.#scheduled !== undefined) clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
    this.#buf = undefined;
    this.#at = 0;
    this.#count = 0;
    this.#callbacks = [];
  }

  /** A buffer with room for `bytes` more, holding the batch so far. */
  #grow(bytes: number): Buffer {
    const old = this.#buf;
    const needed = this.#at + bytes;
    let size = this.#capacity;
    while (size < needed) size *= 2;
    const buf = Buffer.allocUnsafe(size);
    if (old !== undefined) old.copy(buf, 0, 0, this.#at);
    this.#buf = buf;
    return buf;
  }
}

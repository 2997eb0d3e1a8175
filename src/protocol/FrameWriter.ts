/** The part of a `ws` WebSocket a {@link FrameWriter} writes to. */
export interface FrameSocket {
  send(data: string, cb?: (err?: Error) => void): void;
  readonly bufferedAmount: number;
}

/** Default cap of one batch: far below any sane `maxFrameBytes`, big enough to amortise a write. */
export const DEFAULT_MAX_BATCH_BYTES = 64 * 1024;
/** Most frames in one batch (the receiving side refuses more, see `MAX_BATCH_FRAMES`). */
export const DEFAULT_MAX_BATCH_FRAMES = 1024;

/**
 * Writes encoded frames to a WebSocket in batches: frames written during one
 * turn of the event loop go out together, as one WebSocket message holding a
 * JSON array of frames (a single frame goes out as itself), in the order they
 * were written. One write and one WebSocket header per batch instead of per
 * frame is what lets a durable exchange keep up with a raw relay.
 *
 * A batch is sent early when it reaches `maxBatchBytes` or `maxBatchFrames`;
 * `flush()` sends at once (before closing the socket, so a last error frame
 * is not lost). Each frame's callback runs when its batch was written.
 */
export class FrameWriter {
  readonly #socket: FrameSocket;
  #maxBytes: number;
  readonly #maxFrames: number;
  #frames: string[] = [];
  #bytes = 0;
  #callbacks: Array<(err?: Error) => void> = [];
  #scheduled: NodeJS.Immediate | undefined;

  constructor(socket: FrameSocket, options: { maxBatchBytes?: number; maxBatchFrames?: number } = {}) {
    this.#socket = socket;
    this.#maxBytes = options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
    this.#maxFrames = options.maxBatchFrames ?? DEFAULT_MAX_BATCH_FRAMES;
  }

  /** Frames written and not yet handed to the socket, in bytes (for backpressure decisions). */
  get pendingBytes(): number {
    return this.#bytes;
  }

  /** Bytes the socket holds, written or waiting to be. */
  get bufferedAmount(): number {
    return this.#socket.bufferedAmount + this.#bytes;
  }

  /** Lowers (or raises) the batch size cap, e.g. to the peer's announced frame limit. */
  set maxBatchBytes(bytes: number) {
    this.#maxBytes = bytes;
  }

  /** Queues one encoded frame; `onWritten` runs once its batch reached the socket (with an error if it failed). */
  write(frame: string, onWritten?: (err?: Error) => void): void {
    // Each frame adds its bytes and a comma or bracket; the batch's closing bracket is the `+ 1`.
    const bytes = Buffer.byteLength(frame) + 1;
    if (this.#frames.length > 0 && (this.#bytes + bytes + 1 > this.#maxBytes || this.#frames.length >= this.#maxFrames)) this.flush();
    this.#frames.push(frame);
    this.#bytes += bytes;
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
    const frames = this.#frames;
    if (frames.length === 0) return;
    const callbacks = this.#callbacks;
    this.#frames = [];
    this.#bytes = 0;
    this.#callbacks = [];
    const data = frames.length === 1 ? frames[0]! : `[${frames.join(',')}]`;
    this.#socket.send(
      data,
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
    this.#frames = [];
    this.#bytes = 0;
    this.#callbacks = [];
  }
}

import type { WebSocket } from 'ws';
import { encodeFrame, type ClientFrame } from '../../protocol/frames.js';
import { DEFAULT_MAX_BATCH_BYTES, FrameWriter } from '../../protocol/FrameWriter.js';

/**
 * The current WebSocket, shared by the parts of the client that write frames
 * (outbox, inbox, connection). The socket actor attaches a socket once it is
 * open and detaches it when it closes; `generation` counts sockets, so a
 * reply meant for one connection is never sent on the next.
 */
export class Link {
  #ws: WebSocket | undefined;
  #writer: FrameWriter | undefined;
  #generation = 0;
  #maxBatchBytes = DEFAULT_MAX_BATCH_BYTES;

  /** Number of the current (or last) socket. */
  get generation(): number {
    return this.#generation;
  }

  get isOpen(): boolean {
    return this.#ws !== undefined && this.#ws.readyState === this.#ws.OPEN;
  }

  /** Bytes queued on the socket (or batched for it) and not yet written. */
  get bufferedAmount(): number {
    return this.#writer?.bufferedAmount ?? 0;
  }

  /** Keeps batches within the server's announced frame limit (from `welcome`). */
  limitFrames(maxFrameBytes: number): void {
    this.#maxBatchBytes = Math.max(1024, Math.min(DEFAULT_MAX_BATCH_BYTES, Math.floor(maxFrameBytes / 2)));
    if (this.#writer) this.#writer.maxBatchBytes = this.#maxBatchBytes;
  }

  attach(ws: WebSocket): number {
    this.#ws = ws;
    this.#writer = new FrameWriter(ws, { maxBatchBytes: this.#maxBatchBytes });
    return ++this.#generation;
  }

  /** Forgets a socket that closed (frames still batched for it are dropped). */
  detach(ws: WebSocket): void {
    if (this.#ws !== ws) return;
    this.#writer?.discard();
    this.#ws = undefined;
    this.#writer = undefined;
  }

  /** Writes what is batched for the current socket now (before closing it). */
  flush(): void {
    if (this.isOpen) this.#writer?.flush();
  }

  /**
   * Drops a socket because writing to it failed, if it is still the current
   * one: its close event then takes the connection out of `online` like any
   * other loss.
   */
  fail(ws: WebSocket | undefined = this.#ws): void {
    if (ws && ws === this.#ws) ws.terminate();
  }

  /**
   * Writes a frame (batched with the others of this turn of the event loop);
   * `onWritten` runs once it reached the socket (with an error if the socket
   * failed). Returns false, without calling `onWritten`, when there is no
   * open socket.
   */
  send(frame: ClientFrame | string, onWritten?: (err?: Error) => void): boolean {
    const ws = this.#ws;
    if (!ws || ws.readyState !== ws.OPEN || !this.#writer) return false;
    this.#writer.write(typeof frame === 'string' ? frame : encodeFrame(frame), onWritten);
    return true;
  }

  /** Writes a frame and drops the socket if the write fails. */
  sendOrFail(frame: ClientFrame | string, onWritten: () => void): boolean {
    const ws = this.#ws;
    return this.send(frame, (err) => (err ? this.fail(ws) : onWritten()));
  }
}

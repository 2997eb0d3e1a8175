import type { WebSocket } from 'ws';
import { encodeFrame, type ClientFrame } from '../../protocol/frames.js';

/**
 * The current WebSocket, shared by the parts of the client that write frames
 * (outbox, inbox, connection). The socket actor attaches a socket once it is
 * open and detaches it when it closes; `generation` counts sockets, so a
 * reply meant for one connection is never sent on the next.
 */
export class Link {
  #ws: WebSocket | undefined;
  #generation = 0;

  /** Number of the current (or last) socket. */
  get generation(): number {
    return this.#generation;
  }

  get isOpen(): boolean {
    return this.#ws !== undefined && this.#ws.readyState === this.#ws.OPEN;
  }

  /** Bytes queued on the socket and not yet written. */
  get bufferedAmount(): number {
    return this.#ws?.bufferedAmount ?? 0;
  }

  attach(ws: WebSocket): number {
    this.#ws = ws;
    return ++this.#generation;
  }

  detach(ws: WebSocket): void {
    if (this.#ws === ws) this.#ws = undefined;
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
   * Writes a frame; `onWritten` runs once it reached the socket (with an
   * error if the socket failed). Returns false, without calling `onWritten`,
   * when there is no open socket.
   */
  send(frame: ClientFrame | string, onWritten?: (err?: Error) => void): boolean {
    const ws = this.#ws;
    if (!ws || ws.readyState !== ws.OPEN) return false;
    ws.send(typeof frame === 'string' ? frame : encodeFrame(frame), onWritten && ((err) => (err ? onWritten(err) : onWritten())));
    return true;
  }

  /** Writes a frame and drops the socket if the write fails. */
  sendOrFail(frame: ClientFrame | string, onWritten: () => void): boolean {
    const ws = this.#ws;
    return this.send(frame, (err) => (err ? this.fail(ws) : onWritten()));
  }
}

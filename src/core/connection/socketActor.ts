import WebSocket from 'ws';
import { fromCallback } from 'xstate';
import type { ConnectionEvent } from '../../../machines/connection.js';
import type { AckFrame, NackFrame } from '../../protocol/send.js';
import type { DeliverFrame, ReceiptFrame } from '../../protocol/delivery.js';
import { decodeServerMessage, type ServerFrame } from '../../protocol/frames.js';
import type { WelcomeFrame } from '../../protocol/handshake.js';
import type { Link } from './Link.js';

/** Where the frames that are not about the connection itself go. */
export interface FrameHandlers {
  onWelcome(frame: WelcomeFrame, generation: number): void;
  onAck(frame: AckFrame): void;
  onNack(frame: NackFrame): void;
  onDeliver(frame: DeliverFrame, generation: number): void;
  onReceipt(frame: ReceiptFrame, generation: number): void;
  /** A frame from the server that breaks the protocol. */
  onProtocolError(message: string): void;
  /** Every frame of one WebSocket message (one frame or a batch) was handed over. */
  onMessageEnd?(): void;
}

/** What the socket actor needs. */
export interface SocketDeps {
  /** `ws://` or `wss://` URL of the server's endpoint. */
  url: string;
  link: Link;
  handlers: FrameHandlers;
}

/**
 * The `socket` actor of the connection machine: opens one WebSocket, attaches
 * it to the link once open, reports connection events to the machine and
 * hands every other frame to the handlers. Stopping the actor closes the
 * socket (gracefully when open), so leaving the machine's `session` state
 * always ends the connection.
 */
export function createSocketActor(deps: SocketDeps) {
  return fromCallback<ConnectionEvent>(({ sendBack }) => {
    const ws = new WebSocket(deps.url, { perMessageDeflate: false });
    let generation = 0;
    let stopped = false;
    ws.on('open', () => {
      generation = deps.link.attach(ws);
      sendBack({ type: 'SOCKET_OPEN' });
    });
    const onFrame = (frame: ServerFrame) => {
      switch (frame.type) {
        case 'welcome':
          deps.handlers.onWelcome(frame, generation);
          return sendBack({ type: 'WELCOME', sessionId: frame.sessionId, heartbeatMs: frame.heartbeatMs });
        case 'pong':
          return sendBack({ type: 'PONG' });
        case 'error':
          return sendBack({ type: 'SERVER_ERROR', code: frame.code, message: frame.message });
        case 'ack':
          return deps.handlers.onAck(frame);
        case 'nack':
          return deps.handlers.onNack(frame);
        case 'deliver':
          return deps.handlers.onDeliver(frame, generation);
        case 'receipt':
          return deps.handlers.onReceipt(frame, generation);
      }
    };
    ws.on('message', (data, isBinary) => {
      if (stopped) return;
      if (isBinary) return deps.handlers.onProtocolError('the server sent a binary frame');
      // One frame or a batch of them, in order.
      try {
        for (const decoded of decodeServerMessage(data.toString())) {
          if (stopped) return;
          if (decoded.ok) onFrame(decoded.frame);
          else deps.handlers.onProtocolError(`the server sent a bad frame: ${decoded.message}`);
        }
      } finally {
        deps.handlers.onMessageEnd?.();
      }
    });
    ws.on('close', (code, reason) => {
      deps.link.detach(ws);
      if (!stopped) sendBack({ type: 'SOCKET_CLOSED', code, reason: reason.toString() });
    });
    // 'error' is always followed by 'close', which carries what the machine needs.
    ws.on('error', () => {});
    return () => {
      stopped = true;
      // Frames batched for this socket (a last deliver_ack) go out before it closes.
      if (deps.link.generation === generation) deps.link.flush();
      deps.link.detach(ws);
      if (ws.readyState === WebSocket.OPEN) {
        ws.close(1000, 'client leaving');
        // A dead link (the reason we may be leaving) never completes the close handshake.
        setTimeout(() => ws.terminate(), 1000).unref();
      } else {
        ws.terminate();
      }
    };
  });
}

import WebSocket from 'ws';
import { now } from '../lib/stats.js';
import { bodyOf, indexOf, type Peer } from './Peer.js';

/** A raw `ws` client of the baseline relay: JSON frames, acks, no persistence. */
export class RelayPeer implements Peer {
  readonly #url: string;
  readonly #window: number;
  #socket: WebSocket | undefined;
  #onAck: ((id: string) => void) | undefined;
  #onReceive: ((index: number, at: number) => void) | undefined;
  /** Fails the burst or send under way: a relay that goes away fails the run instead of hanging it. */
  #onClose: ((err: Error) => void) | undefined;

  constructor(url: string, agentId: string, window: number) {
    this.#url = `${url}/?id=${agentId}`;
    this.#window = window;
  }

  async connect(): Promise<void> {
    const socket = new WebSocket(this.#url);
    socket.on('message', (data) => {
      const frame = JSON.parse(String(data)) as { type: string; id: string; text: string };
      if (frame.type === 'ack') this.#onAck?.(frame.id);
      else if (frame.type === 'deliver') this.#onReceive?.(indexOf(frame.text), now());
    });
    socket.on('close', () => this.#onClose?.(new Error('the relay closed the connection')));
    await new Promise<void>((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    this.#socket = socket;
  }

  burst(to: string, count: number): Promise<{ startedAt: number; ackedAt: number }> {
    const socket = this.#socket!;
    const startedAt = now();
    let sent = 0;
    let acked = 0;
    return new Promise((resolve, reject) => {
      this.#onClose = reject;
      const fill = () => {
        while (sent < count && sent - acked < this.#window) {
          socket.send(JSON.stringify({ type: 'send', id: `m${sent}`, to, text: bodyOf(sent) }));
          sent++;
        }
      };
      this.#onAck = () => {
        acked++;
        if (acked === count) resolve({ startedAt, ackedAt: now() });
        else fill();
      };
      fill();
    });
  }

  sendOne(to: string, index: number): Promise<{ sentAt: number; ackedAt: number }> {
    return new Promise((resolve, reject) => {
      this.#onClose = reject;
      const sentAt = now();
      this.#onAck = () => resolve({ sentAt, ackedAt: now() });
      this.#socket!.send(JSON.stringify({ type: 'send', id: `p${index}`, to, text: bodyOf(index) }));
    });
  }

  onReceive(listener: (index: number, at: number) => void): void {
    this.#onReceive = listener;
  }

  async close(): Promise<void> {
    const socket = this.#socket;
    this.#socket = undefined;
    if (!socket || socket.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      socket.close();
    });
  }
}

import { IMClient, type IMClientOptions } from '../../src/index.js';
import { now } from '../lib/stats.js';
import { bodyOf, indexOf, type Peer } from './Peer.js';

/** An IMClient with its own workspace: everything durable, as in production. */
export class ImPeer implements Peer {
  readonly client: IMClient;
  readonly #window: number;
  #acked = 0;
  readonly #ackWaiters = new Set<{ total: number; resolve: (at: number) => void }>();

  constructor(options: IMClientOptions & { window: number }) {
    this.client = new IMClient(options);
    this.#window = options.window;
    this.client.on('status', (update) => {
      if (update.status !== 'acked') return;
      this.#acked++;
      for (const w of this.#ackWaiters) {
        if (this.#acked < w.total) continue;
        this.#ackWaiters.delete(w);
        w.resolve(now());
      }
    });
  }

  async connect(): Promise<void> {
    await this.client.connect({ timeoutMs: 30_000 });
  }

  /**
   * Queues `count` messages with at most a window of `sendMessage` calls
   * unresolved (each resolves once durable in the outbox); the client's own
   * window bounds the messages awaiting their ack.
   */
  async burst(to: string, count: number): Promise<{ startedAt: number; ackedAt: number }> {
    const allAcked = this.acked(this.#acked + count);
    const startedAt = now();
    await this.queue(to, count);
    return { startedAt, ackedAt: await allAcked };
  }

  /** Resolves with the time at which `total` messages (since start) had been acked. */
  acked(total: number): Promise<number> {
    if (this.#acked >= total) return Promise.resolve(now());
    return new Promise((resolve) => this.#ackWaiters.add({ total, resolve }));
  }

  /**
   * Makes `count` messages durable in the outbox (online or not), with at most
   * a window of `sendMessage` calls unresolved: a counter, as the relay peer
   * keeps its window, so the harness costs the same per message for both.
   */
  queue(to: string, count: number, first = 0): Promise<void> {
    const end = first + count;
    let next = first;
    let unresolved = 0;
    return new Promise((resolve, reject) => {
      const settled = () => {
        unresolved--;
        if (next === end && unresolved === 0) resolve();
        else fill();
      };
      const fill = () => {
        while (next < end && unresolved < this.#window) {
          unresolved++;
          this.client.sendMessage({ to, text: bodyOf(next++) }).then(settled, reject);
        }
      };
      if (count === 0) resolve();
      else fill();
    });
  }

  async sendOne(to: string, index: number): Promise<{ sentAt: number; ackedAt: number }> {
    const sentAt = now();
    await this.client.sendMessage({ to, text: bodyOf(index), waitFor: 'acked' });
    return { sentAt, ackedAt: now() };
  }

  onReceive(listener: (index: number, at: number) => void): void {
    this.client.onMessage((m) => listener(indexOf(m.text), now()));
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

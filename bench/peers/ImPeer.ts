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

  /** Makes `count` messages durable in the outbox (online or not), a window of calls at a time. */
  async queue(to: string, count: number, first = 0): Promise<void> {
    const inProgress = new Set<Promise<unknown>>();
    for (let i = first; i < first + count; i++) {
      const p = this.client.sendMessage({ to, text: bodyOf(i) }).finally(() => inProgress.delete(p));
      inProgress.add(p);
      if (inProgress.size >= this.#window) await Promise.race(inProgress);
    }
    await Promise.all(inProgress);
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

/** One side of a benchmark conversation, over the raw relay or as an IMClient. */
export interface Peer {
  /** Connects; resolves once it can send and receive. */
  connect(): Promise<void>;
  /**
   * Sends `count` messages to `to` as fast as the window of unacked messages
   * allows; resolves with when the first was sent and when the last was acked.
   */
  burst(to: string, count: number): Promise<{ startedAt: number; ackedAt: number }>;
  /** Sends one message and resolves once the server acked it. */
  sendOne(to: string, index: number): Promise<{ sentAt: number; ackedAt: number }>;
  /** Calls `listener` with the index and arrival time of every message received. */
  onReceive(listener: (index: number, at: number) => void): void;
  close(): Promise<void>;
}

/** The benchmark's message body: about 60 bytes, starting with its index. */
export function bodyOf(index: number): string {
  const head = `${index}:`;
  return head + 'lorem ipsum dolor sit amet consectetur adipiscing elit sed do'.slice(0, 60 - head.length);
}

export function indexOf(text: string): number {
  return Number.parseInt(text, 10);
}

import { z } from 'zod';
import { atomicWriteFile } from '../../fs/atomicWriteFile.js';
import { JsonlWriter } from '../../fs/JsonlWriter.js';
import { readJsonl } from '../../fs/readJsonl.js';
import type { WarningListener } from '../../fs/StorageWarning.js';
import { FifoMap } from '../../util/FifoMap.js';
import type { AcceptedMessage } from './InboxStore.js';

/** A line of `dedupe.jsonl`. */
const DedupeRecord = z.object({
  from: z.string(),
  id: z.string(),
  to: z.string(),
  seq: z.int().positive(),
  at: z.string(),
  digest: z.string(),
});
type DedupeRecord = z.infer<typeof DedupeRecord>;

interface Remembered extends AcceptedMessage {
  /** Epoch milliseconds after which the entry is forgotten. */
  expires: number;
}

/**
 * Remembers accepted messages by (sender, id) so a resend gets the same ack
 * instead of a second delivery. Entries live `windowMs` and at most
 * `maxEntries` are kept (the oldest go first). While a message sits in an
 * inbox segment the segment itself remembers it; when a segment is trimmed,
 * the entries still inside the window move to `dedupe.jsonl`.
 */
export class DedupeIndex {
  readonly #path: string;
  readonly #windowMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  readonly #map = new FifoMap<string, Remembered>();
  #writer: JsonlWriter | undefined;

  constructor(path: string, options: { windowMs: number; maxEntries: number; now?: () => number }) {
    this.#path = path;
    this.#windowMs = options.windowMs;
    this.#maxEntries = options.maxEntries;
    this.#now = options.now ?? Date.now;
  }

  /** Loads `dedupe.jsonl`, keeping what is still inside the window, and rewrites it without the rest. */
  async load(onWarning?: WarningListener): Promise<void> {
    let lines = 0;
    for await (const { value } of readJsonl(this.#path, DedupeRecord, { onWarning })) {
      lines++;
      this.remember(value.from, value.id, value);
    }
    const kept = this.#records();
    if (lines > kept.length) {
      await atomicWriteFile(this.#path, kept.map((r) => `${JSON.stringify(r)}\n`).join(''));
    }
    this.#writer = await JsonlWriter.open(this.#path);
  }

  get size(): number {
    return this.#map.size;
  }

  get(from: string, id: string): AcceptedMessage | undefined {
    const hit = this.#map.get(key(from, id));
    if (!hit) return undefined;
    if (hit.expires <= this.#now()) {
      this.#map.delete(key(from, id));
      return undefined;
    }
    return { to: hit.to, seq: hit.seq, at: hit.at, digest: hit.digest };
  }

  /** Remembers an accepted message (in memory; durable through its segment or {@link persist}). */
  remember(from: string, id: string, accepted: AcceptedMessage): void {
    const expires = Date.parse(accepted.at) + this.#windowMs;
    if (!(expires > this.#now())) return;
    const k = key(from, id);
    this.#map.set(k, { to: accepted.to, seq: accepted.seq, at: accepted.at, digest: accepted.digest, expires });
    this.#evict();
  }

  /** Writes entries still inside the window to `dedupe.jsonl` (before the segment holding them is deleted). */
  async persist(messages: Iterable<{ from: string; id: string }>): Promise<void> {
    const lines: string[] = [];
    for (const { from, id } of messages) {
      const hit = this.get(from, id);
      if (hit) lines.push(JSON.stringify({ from, id, to: hit.to, seq: hit.seq, at: hit.at, digest: hit.digest } satisfies DedupeRecord));
    }
    if (lines.length > 0 && this.#writer) await this.#writer.append(lines);
  }

  async close(): Promise<void> {
    await this.#writer?.close();
  }

  #evict(): void {
    const now = this.#now();
    for (let oldest = this.#map.oldest(); oldest; oldest = this.#map.oldest()) {
      if (this.#map.size <= this.#maxEntries && oldest[1].expires > now) break;
      this.#map.shift();
    }
  }

  #records(): DedupeRecord[] {
    const out: DedupeRecord[] = [];
    for (const [k, v] of this.#map.entries()) {
      const [from, id] = k.split('\n') as [string, string];
      out.push({ from, id, to: v.to, seq: v.seq, at: v.at, digest: v.digest });
    }
    return out;
  }
}

function key(from: string, id: string): string {
  // Neither agent ids nor message ids can contain a newline.
  return `${from}\n${id}`;
}

import { rename } from 'node:fs/promises';
import type { AnyActorRef, InspectionEvent } from 'xstate';
import { JsonlWriter } from '../fs/JsonlWriter.js';

/** One line of the flight record: an actor moved from one state to another. */
export interface FlightRecord {
  /** When, ISO 8601. */
  t: string;
  /** The actor's id: `connection`, `outbox`, `inbox`, `message:{id}`, `pending:{from}/{id}`... */
  actor: string;
  /** The state before (null when the actor starts). */
  from: string | null;
  /** The event that caused the transition. */
  event: string;
  /** The state after (`done` when the actor finished). */
  to: string;
}

/** Rotate to `flight.1.jsonl` beyond this size, keeping one previous file. */
const ROTATE_BYTES = 16 * 1024 * 1024;

/**
 * Appends every state change of every actor the client runs to a JSONL file
 * in the workspace, so an operator can replay what a client did before a
 * failure (`npm run timeline`). Fed by the same inspection events as the
 * `inspect` option. Lines are written without fsync: they survive a killed
 * process, not a power cut, and cost little.
 */
export class FlightRecorder {
  readonly path: string;
  #writer: JsonlWriter;
  readonly #last = new Map<string, string>();
  #rotating: Promise<void> | undefined;
  readonly #rotateBytes: number;

  private constructor(path: string, writer: JsonlWriter, rotateBytes: number) {
    this.path = path;
    this.#writer = writer;
    this.#rotateBytes = rotateBytes;
  }

  /** Opens (appending to) the record at `path`; it rotates beyond `rotateBytes` (16 MiB). */
  static async open(path: string, options: { rotateBytes?: number } = {}): Promise<FlightRecorder> {
    return new FlightRecorder(path, await JsonlWriter.open(path, { durable: false }), options.rotateBytes ?? ROTATE_BYTES);
  }

  /** An inspection observer: pass it events and it records state changes. */
  readonly observe = (event: InspectionEvent): void => {
    // The first snapshot of an actor (event xstate.init) is its start.
    if (event.type !== '@xstate.snapshot') return;
    const ref = event.actorRef as AnyActorRef;
    const snapshot = event.snapshot as { value?: unknown; status?: string };
    if (snapshot.value === undefined) return;
    const to = snapshot.status === 'done' ? `${flatten(snapshot.value)} (done)` : flatten(snapshot.value);
    const from = this.#last.get(ref.sessionId) ?? null;
    if (from === to) return;
    this.#last.set(ref.sessionId, to);
    if (snapshot.status === 'done' || snapshot.status === 'stopped') this.#last.delete(ref.sessionId);
    const record: FlightRecord = {
      t: new Date().toISOString(),
      actor: ref.id,
      from,
      event: event.event.type === 'xstate.init' ? 'start' : event.event.type,
      to,
    };
    void this.#append(JSON.stringify(record));
  };

  async close(): Promise<void> {
    await this.#rotating?.catch(() => {});
    await this.#writer.close();
  }

  async #append(line: string): Promise<void> {
    // A rotation that failed is tried again at the next line past the size; records are never worth an error.
    if (this.#rotating) await this.#rotating.catch(() => {});
    await this.#writer.append(line).catch(() => {});
    if (this.#writer.length > this.#rotateBytes && !this.#rotating) {
      this.#rotating = this.#rotate().finally(() => (this.#rotating = undefined));
    }
  }

  async #rotate(): Promise<void> {
    const old = this.#writer;
    // Not open either way once close has settled: its error is no reason to stop rotating.
    await old.close().catch(() => {});
    await rename(this.path, this.path.replace(/\.jsonl$/, '.1.jsonl')).catch(() => {});
    this.#writer = await JsonlWriter.open(this.path, { durable: false });
  }
}

/** A state value as a dotted path: `session.online.waiting`. */
export function flatten(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    return Object.entries(value)
      .map(([k, v]) => `${k}.${flatten(v)}`)
      .join(',');
  }
  return String(value);
}

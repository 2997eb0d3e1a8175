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
/** After a rotation failed, the next is tried no sooner than this. */
const ROTATE_RETRY_MS = 10_000;

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
  /** A rotation under way; it never rejects. */
  #rotating: Promise<unknown> | undefined;
  readonly #rotateBytes: number;
  /** No rotation is tried before this time (one failed). */
  #retryAt = 0;
  #closed = false;

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

  /**
   * Writes what was recorded and closes the file. Never rejects: the record
   * is a debugging aid written without fsync, and its failures are no reason
   * for a client's close to fail. Lines recorded from now on are dropped.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#rotating;
    await this.#writer.close().catch(() => {});
  }

  async #append(line: string): Promise<void> {
    if (this.#rotating) await this.#rotating;
    if (this.#closed) return;
    // Records are never worth an error: a line that cannot be written is dropped.
    await this.#writer.append(line).catch(() => {});
    if (this.#closed || this.#rotating || this.#writer.length <= this.#rotateBytes || Date.now() < this.#retryAt) return;
    this.#rotating = this.#rotate()
      // Tried again a while later, not at every line (each try opens and renames files).
      .catch(() => (this.#retryAt = Date.now() + ROTATE_RETRY_MS))
      .then(() => (this.#rotating = undefined));
  }

  /** Moves the file to `.1.jsonl` and starts a new one; throws (after reopening what it can) if either step failed. */
  async #rotate(): Promise<void> {
    const old = this.#writer;
    // Not open either way once close has settled: its error is no reason to stop rotating.
    await old.close().catch(() => {});
    let failed: unknown;
    // A file already moved by a rotation that failed later is not there to move: that is no failure.
    await rename(this.path, this.path.replace(/\.jsonl$/, '.1.jsonl')).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') failed = err;
    });
    this.#writer = await JsonlWriter.open(this.path, { durable: false });
    if (failed) throw failed;
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

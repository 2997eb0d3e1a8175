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

  private constructor(path: string, writer: JsonlWriter) {
    this.path = path;
    this.#writer = writer;
  }

  static async open(path: string): Promise<FlightRecorder> {
    return new FlightRecorder(path, await JsonlWriter.open(path, { durable: false }));
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
    await this.#rotating;
    await this.#writer.close();
  }

  async #append(line: string): Promise<void> {
    if (this.#rotating) await this.#rotating;
    await this.#writer.append(line).catch(() => {});
    if (this.#writer.length > ROTATE_BYTES && !this.#rotating) {
      this.#rotating = this.#rotate().finally(() => (this.#rotating = undefined));
    }
  }

  async #rotate(): Promise<void> {
    const old = this.#writer;
    await old.close();
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

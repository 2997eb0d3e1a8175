import type { z } from 'zod';
import { IMClientError } from '../errors.js';
import { unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { storageIoError } from '../errors.js';
import { fsyncDir } from './fsyncDir.js';
import { JsonFile } from './JsonFile.js';
import { JsonlWriter } from './JsonlWriter.js';
import { readJsonl } from './readJsonl.js';
import type { WarningListener } from './StorageWarning.js';

/** Fold the log into the JSON file after this many writes. */
const DEFAULT_COMPACT_EVERY = 1024;

/**
 * A JSON document that changes often (the inbox cursor, twice per batch of
 * incoming messages): `{name}.json` holds a snapshot and `{name}.log.jsonl`
 * one line per later value, the last valid line being the current value.
 * A write is one appended line and one fdatasync, group-committed with the
 * writes around it, instead of an atomic replacement (temp file, fsync,
 * rename, directory fsync) each time. The log is folded into the JSON file
 * on open, on close and every `compactEvery` writes, and then deleted: the
 * log exists only while there are changes the JSON file does not have.
 *
 * A torn last line (a crash mid-append) is a write that never resolved: the
 * line before it is the durable value. A crash while folding leaves the log
 * beside a JSON file that already holds its last value, so replaying it
 * changes nothing.
 */
export class LoggedJsonFile<S extends z.ZodType> {
  readonly path: string;
  readonly logPath: string;
  readonly #snapshot: JsonFile<S>;
  readonly #compactEvery: number;
  #value: z.infer<S> | undefined;
  /** The last value whose line is durable (or the value opened with): what a failed write leaves, and what a fold writes. */
  #durable: z.infer<S> | undefined;
  /** Writes are numbered in call order: which one `#value` and `#durable` come from. */
  #writes = 0;
  #valueWrite = 0;
  #durableWrite = 0;
  /** Settles once the last write has handed its line to the log (or given up): lines go in call order. */
  #turn: Promise<void> = Promise.resolve();
  /** A line may be in the log that the JSON file lacks (set when a log is opened, cleared by a fold). */
  #logged = false;
  /** Opened on the first write after a fold; every write of that log awaits the same opening, so lines keep their order. */
  #log: Promise<JsonlWriter> | undefined;
  #lines: number;
  #compacting: Promise<void> | undefined;
  #closed = false;

  private constructor(snapshot: JsonFile<S>, logPath: string, value: z.infer<S> | undefined, lines: number, compactEvery: number) {
    this.path = snapshot.path;
    this.logPath = logPath;
    this.#snapshot = snapshot;
    this.#value = value;
    this.#durable = value;
    this.#lines = lines;
    this.#compactEvery = compactEvery;
  }

  /**
   * The current value (the snapshot, or the last valid line of the log), or
   * `undefined` when neither file has one. Throws `StorageCorruptError` for
   * an invalid snapshot; invalid log lines are skipped with a warning.
   */
  static async read<S extends z.ZodType>(path: string, logPath: string, schema: S, onWarning?: WarningListener): Promise<z.infer<S> | undefined> {
    return (await load(path, logPath, schema, onWarning)).value;
  }

  /** Opens the document, folding any log left by the last run into the JSON file. */
  static async open<S extends z.ZodType>(
    path: string,
    logPath: string,
    schema: S,
    options: { onWarning?: WarningListener | undefined; compactEvery?: number } = {},
  ): Promise<LoggedJsonFile<S>> {
    const { value, lines } = await load(path, logPath, schema, options.onWarning);
    const file = new LoggedJsonFile(new JsonFile(path, schema), logPath, value, lines, options.compactEvery ?? DEFAULT_COMPACT_EVERY);
    if (lines > 0) await file.#compact();
    return file;
  }

  /** The current value (kept in memory: no disk read). */
  async read(): Promise<z.infer<S> | undefined> {
    return this.#value;
  }

  /**
   * Makes `value` the current value; resolves once it is durable. Lines are
   * appended in call order (a write made while another waits for a fold
   * goes after it). If a line cannot be written, the current value is again
   * the last durable one, unless a later write has been made meanwhile:
   * nothing reads, or folds into the JSON file, a value the caller was told
   * was not written.
   */
  async write(value: z.infer<S>): Promise<void> {
    if (this.#closed) throw new IMClientError('CLOSED', `${this.path} is closed`);
    const write = ++this.#writes;
    this.#value = value;
    this.#valueWrite = write;
    const before = this.#turn;
    let handedOver!: () => void;
    this.#turn = new Promise<void>((resolve) => (handedOver = resolve));
    let appended: Promise<void>;
    try {
      await before;
      while (this.#compacting) await this.#compacting;
      if (this.#closed) throw new IMClientError('CLOSED', `${this.path} is closed`);
      this.#log ??= JsonlWriter.open(this.logPath);
      const log = this.#log;
      log.catch(() => {
        if (this.#log === log) this.#log = undefined;
      });
      const writer = await log;
      this.#logged = true;
      // Recorded as the line becomes durable, before anything waiting on the log (a fold) resumes.
      appended = writer.append(JSON.stringify(value)).then(() => {
        if (write > this.#durableWrite) {
          this.#durable = value;
          this.#durableWrite = write;
        }
        // A later write undone before this one landed (refused by close) took the value back past it.
        if (write > this.#valueWrite) {
          this.#value = value;
          this.#valueWrite = write;
        }
      });
    } catch (err) {
      handedOver();
      this.#undo(write);
      throw err;
    }
    handedOver();
    try {
      await appended;
    } catch (err) {
      this.#undo(write);
      throw err;
    }
    // In the background; if it fails the log simply stays in use, and close() tries again.
    if (++this.#lines >= this.#compactEvery) this.#compacting ??= this.#compact().catch(() => {});
  }

  /** A write failed: the current value is the last durable one again, unless a later write was made. */
  #undo(write: number): void {
    if (this.#valueWrite !== write) return;
    this.#value = this.#durable;
    this.#valueWrite = this.#durableWrite;
  }

  /** Folds the log into the JSON file and closes it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    while (this.#compacting) await this.#compacting;
    // Waits for the writes made before: their lines go in, or they fail, before the fold.
    await this.#turn;
    // Folded whenever a log was opened since the last fold: even a failed line may have stayed in it.
    try {
      if (this.#lines > 0 || this.#logged) await (this.#compacting = this.#compact());
    } finally {
      // Closed even when the fold failed (the log stays, to be folded on the next open).
      await (await this.#log?.catch(() => undefined))?.close();
    }
  }

  /**
   * Writes the current value to the JSON file, then deletes the log. A
   * failure before the deletion leaves the log in use (and still right); the
   * error goes to whoever is writing or closing.
   */
  async #compact(): Promise<void> {
    try {
      const log = await this.#log;
      await log?.flush();
      // What is durable, not a value a write made meanwhile is still waiting to append.
      if (this.#durable !== undefined) await this.#snapshot.write(this.#durable);
      this.#log = undefined;
      await log?.close();
      try {
        await unlink(this.logPath);
        await fsyncDir(dirname(this.logPath));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw storageIoError(this.logPath, err);
      }
      this.#lines = 0;
      this.#logged = false;
    } finally {
      this.#compacting = undefined;
    }
  }
}

async function load<S extends z.ZodType>(path: string, logPath: string, schema: S, onWarning?: WarningListener): Promise<{ value: z.infer<S> | undefined; lines: number }> {
  let value: z.infer<S> | undefined = await new JsonFile(path, schema).read();
  let lines = 0;
  for await (const record of readJsonl(logPath, schema, { onWarning })) {
    value = record.value as z.infer<S>;
    lines++;
  }
  return { value, lines };
}

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
  /** The last value whose line is durable (or the value opened with): what a failed write leaves. */
  #durable: z.infer<S> | undefined;
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
   * Makes `value` the current value; resolves once it is durable. If it
   * cannot be written, the current value is again the last durable one
   * (unless a later write has been made meanwhile): nothing reads, or folds
   * into the JSON file, a value the caller was told was not written.
   */
  async write(value: z.infer<S>): Promise<void> {
    if (this.#closed) throw new IMClientError('CLOSED', `${this.path} is closed`);
    this.#value = value;
    try {
      while (this.#compacting) await this.#compacting;
      if (this.#closed) throw new IMClientError('CLOSED', `${this.path} is closed`);
      this.#log ??= JsonlWriter.open(this.logPath);
      const log = this.#log;
      log.catch(() => {
        if (this.#log === log) this.#log = undefined;
      });
      await (await log).append(JSON.stringify(value));
    } catch (err) {
      if (this.#value === value) this.#value = this.#durable;
      throw err;
    }
    this.#durable = value;
    // In the background; if it fails the log simply stays in use, and close() tries again.
    if (++this.#lines >= this.#compactEvery) this.#compacting ??= this.#compact().catch(() => {});
  }

  /** Folds the log into the JSON file and closes it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    while (this.#compacting) await this.#compacting;
    if (this.#lines > 0) await (this.#compacting = this.#compact());
    await (await this.#log?.catch(() => undefined))?.close();
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
      if (this.#value !== undefined) await this.#snapshot.write(this.#value);
      this.#log = undefined;
      await log?.close();
      try {
        await unlink(this.logPath);
        await fsyncDir(dirname(this.logPath));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw storageIoError(this.logPath, err);
      }
      this.#lines = 0;
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

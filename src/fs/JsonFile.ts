import { readFile } from 'node:fs/promises';
import type { z } from 'zod';
import { StorageCorruptError, storageIoError } from '../errors.js';
import { summarizeIssues } from '../validation.js';
import { atomicWriteFile } from './atomicWriteFile.js';

/**
 * One JSON document on disk, validated on read and replaced atomically on
 * write. Writes are coalesced: while one write is on its way to disk, later
 * values replace each other and only the newest is written next, so a value
 * that changes on every message (a cursor) costs one fsync per batch.
 *
 * @example
 * ```ts
 * const cursor = new JsonFile(path, Cursor);
 * const current = await cursor.read(); // undefined when the file does not exist
 * await cursor.write({ epoch, ackedUpTo: 42 });
 * ```
 */
export class JsonFile<S extends z.ZodType> {
  readonly path: string;
  readonly #schema: S;
  #running: Promise<void> | undefined;
  #next: { data: string; waiters: Array<{ resolve: () => void; reject: (e: unknown) => void }> } | undefined;

  constructor(path: string, schema: S) {
    this.path = path;
    this.#schema = schema;
  }

  /**
   * The validated content, or `undefined` when the file does not exist.
   * Throws {@link StorageCorruptError} when it exists but is not valid; the
   * file is left as it is so nothing is lost.
   */
  async read(): Promise<z.infer<S> | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw storageIoError(this.path, err);
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new StorageCorruptError(this.path, 'not valid JSON', { cause: err });
    }
    const parsed = this.#schema.safeParse(value);
    if (!parsed.success) {
      const version = (value as { version?: unknown } | null)?.version;
      const hint = typeof version === 'number' && version > 1 ? ` (format version ${version}: written by a newer im-client?)` : '';
      throw new StorageCorruptError(this.path, `${summarizeIssues(parsed.error)}${hint}`);
    }
    return parsed.data;
  }

  /** Replaces the file with `value` (pretty-printed); resolves once it is durable. */
  write(value: z.infer<S>): Promise<void> {
    const data = `${JSON.stringify(value, null, 2)}\n`;
    return new Promise((resolve, reject) => {
      if (this.#next) this.#next.data = data;
      else this.#next = { data, waiters: [] };
      this.#next.waiters.push({ resolve, reject });
      this.#running ??= this.#drain();
    });
  }

  async #drain(): Promise<void> {
    while (this.#next) {
      const { data, waiters } = this.#next;
      this.#next = undefined;
      try {
        await atomicWriteFile(this.path, data);
        for (const w of waiters) w.resolve();
      } catch (err) {
        for (const w of waiters) w.reject(err);
      }
    }
    this.#running = undefined;
  }
}

import { createReadStream } from 'node:fs';
import type { z } from 'zod';
import { storageIoError } from '../errors.js';
import { summarizeIssues } from '../validation.js';
import type { WarningListener } from './StorageWarning.js';

/** One valid record read from a JSONL file. */
export interface JsonlRecord<T> {
  value: T;
  /** 1-based line number (counted from `start` when one is given). */
  line: number;
  /** Byte offset of the line's first byte. */
  offset: number;
  /** Byte offset just past the line's newline: where the next line starts. */
  end: number;
}

/** Options of {@link readJsonl}. */
export interface ReadJsonlOptions {
  /** Receives a warning for each line skipped. */
  onWarning?: WarningListener | undefined;
  /** Byte offset to start at; must be the start of a line. @default 0 */
  start?: number | undefined;
  /**
   * For lines this process wrote itself (validated before they were
   * written): a parsed line this cheap check accepts is yielded as parsed,
   * without the schema's validation and copy; any other line still goes
   * through the schema.
   */
  trusted?: ((value: unknown) => boolean) | undefined;
  /**
   * Picks lines by their raw text before they are parsed: a line it refuses
   * is skipped unparsed and unreported (a caller that knows which lines it
   * needs spares parsing the others).
   */
  select?: ((text: string) => boolean) | undefined;
}

/**
 * Reads a JSONL file front to back, yielding each line that parses and
 * validates against `schema`. A line that does not (a torn last line after a
 * crash, a hand edit) is reported to `onWarning` with file and line and
 * skipped; the lines around it are still read. A missing file reads as empty.
 *
 * @example
 * ```ts
 * for await (const { value } of readJsonl(file, ConversationRecord, { onWarning: console.warn })) {
 *   fold(value);
 * }
 * ```
 */
export async function* readJsonl<S extends z.ZodType>(
  file: string,
  schema: S,
  options: ReadJsonlOptions = {},
): AsyncGenerator<JsonlRecord<z.infer<S>>> {
  for await (const batch of readJsonlBatches(file, schema, options)) yield* batch;
}

/**
 * {@link readJsonl} a chunk of the file at a time: each step yields the
 * valid records of up to 256 KiB of lines, which spares a promise per line
 * where a caller reads many lines in a row (reading back a long queue).
 */
export async function* readJsonlBatches<S extends z.ZodType>(
  file: string,
  schema: S,
  options: ReadJsonlOptions = {},
): AsyncGenerator<Array<JsonlRecord<z.infer<S>>>> {
  for await (const lines of readLines(file, options.start ?? 0)) {
    const batch: Array<JsonlRecord<z.infer<S>>> = [];
    for (const raw of lines) {
      if (options.select && !options.select(raw.text)) continue;
      const result = parseLine(raw.text, schema, options.trusted);
      if (result.ok) {
        batch.push({ value: result.value, line: raw.line, offset: raw.offset, end: raw.end });
      } else {
        const reason = raw.last && !raw.terminated ? `torn last line (incomplete write): ${result.reason}` : result.reason;
        options.onWarning?.({ file, line: raw.line, offset: raw.offset, reason });
      }
    }
    // The raw text is not needed once parsed: let it go now, not once the next chunk is in
    // (a long read-back under load would otherwise carry every chunk's text past a collection).
    lines.length = 0;
    if (batch.length > 0) yield batch;
  }
}

/** The outcome of {@link parseLine}. */
export type ParsedLine<T> = { ok: true; value: T } | { ok: false; reason: string };

/** Parses one JSONL line and validates it against `schema`. */
export function parseLine<S extends z.ZodType>(text: string, schema: S, trusted?: (value: unknown) => boolean): ParsedLine<z.infer<S>> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'not valid JSON' };
  }
  if (trusted?.(json)) return { ok: true, value: json as z.infer<S> };
  const parsed = schema.safeParse(json);
  return parsed.success ? { ok: true, value: parsed.data } : { ok: false, reason: `invalid record: ${summarizeIssues(parsed.error)}` };
}

/** A non-empty line of a file, as read by {@link readLines}. */
export interface RawLine {
  text: string;
  line: number;
  offset: number;
  end: number;
  /** Whether the line ended with a newline. */
  terminated: boolean;
  last: boolean;
}

/**
 * The non-empty lines of the file from `start`, a chunk's worth at a time,
 * never the whole file as one string; nothing for a missing file.
 */
export async function* readLines(file: string, start = 0): AsyncGenerator<RawLine[]> {
  const stream = createReadStream(file, { start, highWaterMark: 256 * 1024 });
  // The bytes of an unfinished line, kept as the chunks' tails they came in and joined once
  // its newline arrives: gluing them to each next chunk would copy and re-scan a long line
  // once per chunk (a 100 MB line: 400 chunks of 256 KiB, 20 GB copied).
  let parts: Buffer[] = [];
  let partsLength = 0;
  let offset = start;
  let line = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const lines: RawLine[] = [];
      let from = 0;
      let nl = chunk.indexOf(0x0a);
      while (nl !== -1) {
        line++;
        const length = partsLength + nl - from;
        if (length > 0) {
          const text = partsLength === 0 ? chunk.toString('utf8', from, nl) : joined(parts, chunk.subarray(from, nl), length);
          lines.push({ text, line, offset, end: offset + length + 1, terminated: true, last: false });
        }
        if (partsLength > 0) {
          parts = [];
          partsLength = 0;
        }
        offset += length + 1;
        from = nl + 1;
        nl = chunk.indexOf(0x0a, from);
      }
      if (from < chunk.length) {
        parts.push(chunk.subarray(from));
        partsLength += chunk.length - from;
      }
      if (lines.length > 0) yield lines;
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw storageIoError(file, err);
  }
  if (partsLength > 0) {
    line++;
    yield [{ text: Buffer.concat(parts, partsLength).toString('utf8'), line, offset, end: offset + partsLength, terminated: false, last: true }];
  }
}

/** The text of a line whose bytes arrived in several chunks. */
function joined(parts: Buffer[], tail: Buffer, length: number): string {
  parts.push(tail);
  return Buffer.concat(parts, length).toString('utf8');
}

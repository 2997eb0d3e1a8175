import { access } from 'node:fs/promises';
import { StorageCorruptError } from '../../errors.js';
import { atomicWriteFile } from '../../fs/atomicWriteFile.js';
import { JsonFile } from '../../fs/JsonFile.js';
import { readLines } from '../../fs/readJsonl.js';
import { summarizeIssues } from '../../validation.js';
import { PendingFile, PendingItem } from './records.js';

/** The first line of `pending.json` as written here; the last is {@link TAIL}. */
const HEAD = '{"version":1,"items":[';
const TAIL = ']}';
/** Items' JSON gathered into one string before it is written: a part of the file, not all of it. */
const PART_CHARS = 1 << 20;

/**
 * `queue/pending.json`, written and read an item at a time. The file is the
 * seed's JSON document (`{ "version": 1, "items": [...] }`), laid out with
 * one item per line:
 *
 * ```text
 * {"version":1,"items":[
 * {"message":{...},"enqueuedAt":"...","attempts":0},
 * {"message":{...},"enqueuedAt":"...","attempts":1,"claimSeq":3}
 * ]}
 * ```
 *
 * so that a long queue is never one string: V8 caps a string at about 512
 * million characters, and a queue of a few hundred thousand messages written
 * as one would fail to be written (or read) at all. A file in any other
 * layout (an earlier version's indented JSON, a hand edit) is read whole,
 * as before.
 */
export const PendingSnapshot = {
  /** The items, oldest first, or `undefined` when the file does not exist. Throws `StorageCorruptError` if invalid. */
  async read(path: string): Promise<PendingItem[] | undefined> {
    let items: PendingItem[] = [];
    const layout = await PendingSnapshot.each(
      path,
      (item) => items.push(item),
      () => (items = []),
    );
    return layout === 'missing' ? undefined : items;
  },

  /**
   * Hands each item to `visit`, oldest first, with the byte offset of its
   * line (or -1 when the file is in another layout, read whole: its items
   * cannot be found again by offset). A file that turns out part-way to be
   * in another layout is then read whole: `reset` is called first, to forget
   * the items visited so far. Resolves with the layout found, or `'missing'`.
   * Throws `StorageCorruptError` if the file is invalid.
   */
  async each(path: string, visit: (item: PendingItem, offset: number) => void, reset: () => void): Promise<'lines' | 'whole' | 'missing'> {
    let visited = 0;
    let first = true;
    let closed = false;
    /** Whether the last item line ended with the comma that must separate it from the next. */
    let comma = false;
    const whole = async () => {
      if (visited > 0) reset();
      const items = await readWhole(path);
      if (items === undefined) return 'missing';
      for (const item of items) visit(item, -1);
      return 'whole';
    };
    for await (const lines of readLines(path)) {
      for (const raw of lines) {
        // Line endings and spaces around the layout are allowed (CRLF after an edit on Windows).
        const text = raw.text.trim();
        if (text === '') continue;
        if (first) {
          first = false;
          if (text !== HEAD) return whole();
          continue;
        }
        if (closed) throw new StorageCorruptError(path, `line ${raw.line}: text after the closing ${TAIL}`);
        if (text === TAIL) {
          // A comma after the last item is not JSON: the whole file decides (and refuses it).
          if (comma) return whole();
          closed = true;
          continue;
        }
        // Anything but one item a line, commas between, is another layout: read whole, as JSON.
        if (visited > 0 && !comma) return whole();
        comma = text.endsWith(',');
        let json: unknown;
        try {
          json = JSON.parse(comma ? text.slice(0, -1) : text);
        } catch {
          return whole();
        }
        const parsed = PendingItem.safeParse(json);
        if (!parsed.success) throw new StorageCorruptError(path, `line ${raw.line}: invalid item: ${summarizeIssues(parsed.error)}`);
        visit(parsed.data, raw.offset);
        visited++;
      }
    }
    if (first) return (await exists(path)) ? whole() : 'missing';
    if (!closed) throw new StorageCorruptError(path, `no closing ${TAIL}: the file is cut short`);
    return 'lines';
  },

  /**
   * Replaces the file (atomically) with these items, a part at a time. The
   * caller hands over items that no longer change (a moment's queue, copied)
   * and may make them as the file is written (read from elsewhere); an item
   * may come as its JSON, copied from a line of these files. `onLine` learns
   * the byte offset of each item's line, in order.
   */
  write(path: string, items: Iterable<PendingItem | string> | AsyncIterable<PendingItem | string>, onLine?: (offset: number) => void): Promise<void> {
    return atomicWriteFile(path, parts(items, onLine));
  },

};

async function* parts(items: Iterable<PendingItem | string> | AsyncIterable<PendingItem | string>, onLine?: (offset: number) => void): AsyncGenerator<string> {
  let part = `${HEAD}\n`;
  let offset = Buffer.byteLength(part);
  /** The line of the item before, written once it is known whether another follows (the comma). */
  let held: string | undefined;
  for await (const item of items) {
    if (held !== undefined) {
      part += `${held},\n`;
      offset += Buffer.byteLength(held) + 2;
    }
    onLine?.(offset);
    held = typeof item === 'string' ? item : JSON.stringify(item);
    if (part.length >= PART_CHARS) {
      yield part;
      part = '';
    }
  }
  if (held !== undefined) part += `${held}\n`;
  yield `${part}${TAIL}\n`;
}

async function readWhole(path: string): Promise<PendingItem[] | undefined> {
  return (await new JsonFile(path, PendingFile).read())?.items;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

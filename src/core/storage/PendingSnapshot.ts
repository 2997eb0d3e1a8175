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
    const items: PendingItem[] = [];
    let first = true;
    let closed = false;
    /** Whether the last item line ended with the comma that must separate it from the next. */
    let comma = false;
    for await (const lines of readLines(path)) {
      for (const raw of lines) {
        // Line endings and spaces around the layout are allowed (CRLF after an edit on Windows).
        const text = raw.text.trim();
        if (text === '') continue;
        if (first) {
          first = false;
          if (text !== HEAD) return readWhole(path);
          continue;
        }
        if (closed) throw new StorageCorruptError(path, `line ${raw.line}: text after the closing ${TAIL}`);
        if (text === TAIL) {
          // A comma after the last item is not JSON: the whole file decides (and refuses it).
          if (comma) return readWhole(path);
          closed = true;
          continue;
        }
        // Anything but one item a line, commas between, is another layout: read whole, as JSON.
        if (items.length > 0 && !comma) return readWhole(path);
        comma = text.endsWith(',');
        let json: unknown;
        try {
          json = JSON.parse(comma ? text.slice(0, -1) : text);
        } catch {
          return readWhole(path);
        }
        const parsed = PendingItem.safeParse(json);
        if (!parsed.success) throw new StorageCorruptError(path, `line ${raw.line}: invalid item: ${summarizeIssues(parsed.error)}`);
        items.push(parsed.data);
      }
    }
    if (first) return (await exists(path)) ? readWhole(path) : undefined;
    if (!closed) throw new StorageCorruptError(path, `no closing ${TAIL}: the file is cut short`);
    return items;
  },

  /**
   * Replaces the file (atomically) with these items as they are now, a part
   * at a time (each item is copied here: items change in place while the
   * parts are written, and the file must hold one moment's queue).
   */
  write(path: string, items: Iterable<PendingItem>): Promise<void> {
    const now = Array.from(items, (item) => ({ ...item }));
    return atomicWriteFile(path, parts(now));
  },
};

function* parts(items: readonly PendingItem[]): Generator<string> {
  let part = `${HEAD}\n`;
  for (let i = 0; i < items.length; i++) {
    part += `${JSON.stringify(items[i])}${i === items.length - 1 ? '' : ','}\n`;
    if (part.length >= PART_CHARS) {
      yield part;
      part = '';
    }
  }
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

import { randomBytes } from 'node:crypto';
import { open, readdir, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { IMClientError, storageIoError } from '../errors.js';
import { fsyncDir } from './fsyncDir.js';

const TMP_SUFFIX = '.tmp';

/**
 * Replaces `file` with `data` so that a crash at any instant leaves either the
 * old or the new content, never a mix: write a temp file beside it, fsync it,
 * rename it over the target, fsync the directory. `data` may be strings made
 * one after another, at once or as they are read from elsewhere (a large
 * document written a part at a time, never held as one string).
 *
 * @example
 * ```ts
 * await atomicWriteFile('/ws/im_client/contacts.json', JSON.stringify(doc));
 * ```
 */
export async function atomicWriteFile(file: string, data: string | Uint8Array | Iterable<string> | AsyncIterable<string>): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}${TMP_SUFFIX}`);
  let renamed = false;
  try {
    const fh = await open(tmp, 'w', 0o644);
    try {
      if (typeof data === 'string' || data instanceof Uint8Array) await fh.writeFile(data);
      // Each part goes on from where the last ended (writeFile writes at the handle's position, in full).
      else for await (const part of data) await fh.writeFile(part);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
    renamed = true;
    await fsyncDir(dirname(file));
  } catch (err) {
    if (!renamed) await unlink(tmp).catch(() => {});
    // A part that could not be made (a bug in the caller's data, a source file that failed or is
    // corrupt) is not an error of this file: it is thrown as it is.
    const error = typeof (err as NodeJS.ErrnoException).code === 'string' && !(err instanceof IMClientError) ? storageIoError(file, err) : err;
    if (renamed && typeof error === 'object' && error !== null) replacedAnyway.add(error);
    throw error;
  }
}

/** Errors of writes that failed after the new content had replaced the file. */
const replacedAnyway = new WeakSet<object>();

/**
 * Whether `atomicWriteFile` failed after its rename (the directory's fsync):
 * the file holds the new content, though a crash may still bring the old
 * back. A caller writing on to the file it replaced must stop: that inode
 * is no longer the file.
 */
export function replacedDespite(err: unknown): boolean {
  return typeof err === 'object' && err !== null && replacedAnyway.has(err);
}

/**
 * Deletes temp files (`.{name}.{pid}.{hex}.tmp`) that a process left in
 * `dir` when it died between writing and renaming them; files of processes
 * still alive are theirs and are left alone. Returns the names removed.
 */
export async function removeStaleTempFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw storageIoError(dir, err);
  }
  const stale = names.filter((n) => n.startsWith('.') && n.endsWith(TMP_SUFFIX) && !ownerAlive(n));
  await Promise.all(stale.map((n) => unlink(join(dir, n)).catch(() => {})));
  return stale;
}

/** Whether the process that named a temp file `.{name}.{pid}.{hex}.tmp` is still running (not us). */
function ownerAlive(name: string): boolean {
  const pid = Number(/\.(\d+)\.[0-9a-f]+\.tmp$/.exec(name)?.[1]);
  if (!Number.isInteger(pid) || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

import { randomBytes } from 'node:crypto';
import { open, readdir, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { storageIoError } from '../errors.js';
import { fsyncDir } from './fsyncDir.js';

const TMP_SUFFIX = '.tmp';

/**
 * Replaces `file` with `data` so that a crash at any instant leaves either the
 * old or the new content, never a mix: write a temp file beside it, fsync it,
 * rename it over the target, fsync the directory.
 *
 * @example
 * ```ts
 * await atomicWriteFile('/ws/im_client/contacts.json', JSON.stringify(doc));
 * ```
 */
export async function atomicWriteFile(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}${TMP_SUFFIX}`);
  try {
    const fh = await open(tmp, 'w', 0o644);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
    await fsyncDir(dirname(file));
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw storageIoError(file, err);
  }
}

/**
 * Deletes temp files that {@link atomicWriteFile} left in `dir` when a process
 * died between writing and renaming them. Returns the names removed.
 */
export async function removeStaleTempFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw storageIoError(dir, err);
  }
  const stale = names.filter((n) => n.startsWith('.') && n.endsWith(TMP_SUFFIX));
  await Promise.all(stale.map((n) => unlink(join(dir, n)).catch(() => {})));
  return stale;
}

import { open } from 'node:fs/promises';

/**
 * Makes a directory's entries durable (a file created or renamed inside it).
 * Platforms that cannot open a directory for sync (Windows) are skipped: their
 * file systems order the rename themselves.
 */
export async function fsyncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EBADF') throw err;
  } finally {
    await fh?.close();
  }
}

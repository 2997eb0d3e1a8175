import { readdir, readlink } from 'node:fs/promises';

/** How many files this process holds open under `dir` (Linux: /proc/self/fd). */
export async function openFilesUnder(dir: string): Promise<number> {
  let n = 0;
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target.startsWith(dir)) n++;
  }
  return n;
}

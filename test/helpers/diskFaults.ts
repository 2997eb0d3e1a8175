import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { vi } from 'vitest';
import { tempDir } from './tmp.js';

/**
 * Disk faults, injected under the code at the file handle: the bytes that
 * "reach the disk" before a fault are really written to the real file, so
 * what a restart would read back is what the test reads. Undo with
 * `vi.restoreAllMocks()` (or the returned spy's `mockRestore()`).
 */
export async function fileHandlePrototype(): Promise<FileHandle> {
  const fh = await open(join(await tempDir('proto-'), 'x'), 'w');
  await fh.close();
  return Object.getPrototypeOf(fh) as FileHandle;
}

export function ioError(code: string): Error {
  return Object.assign(new Error(`${code}: injected fault, write`), { code });
}

type Write = (...args: unknown[]) => Promise<unknown>;

/**
 * Makes every write of a buffer containing `marker` write `part(length)` of
 * its bytes for real, wait for `before` if given, then fail with `code`: a
 * short write before ENOSPC, or (with the whole length) a write that landed
 * and then reported an error.
 */
export async function failWritesOf(marker: string, part: (length: number) => number, code = 'ENOSPC', before?: Promise<void>) {
  const proto = await fileHandlePrototype();
  const real = proto.write as unknown as Write;
  return vi.spyOn(proto, 'write').mockImplementation(async function (this: FileHandle, ...args: unknown[]) {
    const [buf, off = 0, len] = args as [Buffer, number?, number?];
    if (!Buffer.isBuffer(buf) || !buf.includes(marker)) return real.apply(this, args);
    const n = part(len ?? buf.length - off);
    if (n > 0) await real.call(this, buf, off, n);
    await before;
    throw ioError(code);
  } as typeof proto.write);
}

/**
 * Fails the `nth` `FileHandle.sync` from now on (a file's, or a directory's:
 * `fsyncDir` syncs a handle too) with `code`; the others sync for real.
 * Returns how many syncs there have been so far.
 */
export async function failNthSync(nth: number, code = 'EIO'): Promise<() => number> {
  const proto = await fileHandlePrototype();
  const sync = proto.sync;
  let calls = 0;
  vi.spyOn(proto, 'sync').mockImplementation(async function (this: FileHandle) {
    if (++calls === nth) throw ioError(code);
    return sync.call(this);
  });
  return () => calls;
}

/**
 * Runs `action` as the first `FileHandle.writeFile` from now on begins (a
 * change landing while a file is being written a part at a time); every
 * call writes for real. Returns how many calls there have been so far.
 */
export async function onFirstWriteFile(action: () => void): Promise<() => number> {
  const proto = await fileHandlePrototype();
  const writeFile = proto.writeFile;
  let calls = 0;
  vi.spyOn(proto, 'writeFile').mockImplementation(async function (this: FileHandle, ...args: Parameters<FileHandle['writeFile']>) {
    if (calls++ === 0) action();
    return writeFile.apply(this, args);
  });
  return () => calls;
}

/**
 * Holds the first write of a buffer containing `marker` until `gate` (a slow
 * disk under one write), then writes it for real; `entered` resolves as it is
 * held. Every other write goes through.
 */
export async function holdWriteOf(marker: string, gate: Promise<void>) {
  const proto = await fileHandlePrototype();
  const real = proto.write as unknown as Write;
  let held = false;
  let enter: () => void = () => {};
  const entered = new Promise<void>((resolve) => (enter = resolve));
  const spy = vi.spyOn(proto, 'write').mockImplementation(async function (this: FileHandle, ...args: unknown[]) {
    const [buf] = args as [Buffer];
    if (!held && Buffer.isBuffer(buf) && buf.includes(marker)) {
      held = true;
      enter();
      await gate;
    }
    return real.apply(this, args);
  } as typeof proto.write);
  return { spy, entered };
}

import { randomBytes } from 'node:crypto';
import { readFileSync, unlinkSync } from 'node:fs';
import { link, open, readFile, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import { IMClientError, WorkspaceLockedError, storageIoError, type LockHolder } from '../errors.js';
import { fsyncDir } from './fsyncDir.js';

const LockRecord = z.object({
  pid: z.int(),
  hostname: z.string(),
  since: z.string(),
  owner: z.string().optional(),
  /** Start time of the holder process (Linux clock ticks since boot), to tell a reused pid apart. */
  processStart: z.string().optional(),
  token: z.string(),
});
type LockRecord = z.infer<typeof LockRecord>;

/** Lock files this process holds, by path, released on exit. */
const held = new Map<string, string>();
let exitHookInstalled = false;

/**
 * An exclusive, cross-process lock held as a file that names its holder
 * (`pid`, `hostname`, `since`, `owner`). A second taker gets
 * {@link WorkspaceLockedError} naming the holder; a lock left behind by a dead
 * process on this host is taken over. Released on {@link FileLock.release} and,
 * best effort, when the process exits.
 *
 * @example
 * ```ts
 * const lock = await FileLock.acquire('/ws/im_client/client.lock', 'agent_001');
 * try { ... } finally { await lock.release(); }
 * ```
 */
export class FileLock {
  readonly path: string;
  readonly #token: string;
  #released = false;

  private constructor(path: string, token: string) {
    this.path = path;
    this.#token = token;
  }

  /** Takes the lock at `path`; `owner` is a label shown to whoever finds it held. */
  static async acquire(path: string, owner?: string): Promise<FileLock> {
    const record: LockRecord = {
      pid: process.pid,
      hostname: hostname(),
      since: new Date().toISOString(),
      ...(owner === undefined ? {} : { owner }),
      ...(processStart(process.pid) === undefined ? {} : { processStart: processStart(process.pid) }),
      token: randomBytes(12).toString('hex'),
    };
    const content = `${JSON.stringify(record)}\n`;
    for (let round = 0; round < 200; round++) {
      if (await tryCreate(path, content)) {
        held.set(path, record.token);
        installExitHook();
        return new FileLock(path, record.token);
      }
      const existing = await readLock(path);
      if (existing === 'missing') continue;
      if (existing.record && isAlive(existing.record, path)) throw new WorkspaceLockedError(path, toHolder(existing.record));
      await removeStale(path, existing.text, content);
    }
    throw new IMClientError('WORKSPACE_LOCKED', `${path}: could not take the lock; other processes keep racing for it`);
  }

  /** Whether this lock is still held by this instance. */
  get held(): boolean {
    return !this.#released;
  }

  /** Releases the lock if this instance still holds it. */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    held.delete(this.path);
    const current = await readLock(this.path);
    if (current !== 'missing' && current.record?.token === this.#token) {
      await unlink(this.path).catch(() => {});
    }
  }
}

async function tryCreate(path: string, content: string): Promise<boolean> {
  // Write the full record under a private name, then hard-link it into place: link() fails if the
  // lock exists, and readers never see a half-written lock file.
  // Named like atomicWriteFile's temp files, so removeStaleTempFiles cleans them up after a crash.
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(content);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await link(tmp, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
    await fsyncDir(dirname(path));
    return true;
  } catch (err) {
    throw storageIoError(path, err);
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

interface LockFile {
  text: string;
  /** The parsed record, or undefined when the file is not a valid lock record. */
  record: LockRecord | undefined;
}

async function readLock(path: string): Promise<LockFile | 'missing'> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw storageIoError(path, err);
  }
  try {
    const parsed = LockRecord.safeParse(JSON.parse(text));
    return { text, record: parsed.success ? parsed.data : undefined };
  } catch {
    return { text, record: undefined };
  }
}

function isAlive(lock: LockRecord, path: string): boolean {
  // Another host's process cannot be checked from here: treat its lock as held.
  if (lock.hostname !== hostname()) return true;
  if (lock.pid === process.pid) {
    // Our own pid: held only if this process took it (a restarted container reuses pid 1).
    return held.get(path) === lock.token;
  }
  try {
    process.kill(lock.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  // The pid is alive; on Linux make sure it is the same process and not a reused pid.
  const start = processStart(lock.pid);
  return lock.processStart === undefined || start === undefined || start === lock.processStart;
}

/**
 * Removes a stale lock. Checking a lock and deleting it cannot be one atomic
 * step, so takers first take a guard file (created exclusively, like the lock
 * itself): only the guard holder deletes, and only if the lock still holds
 * exactly the stale content it judged. Everyone else waits a moment and
 * starts over, and then finds the new lock held.
 */
async function removeStale(path: string, staleText: string, ourContent: string): Promise<void> {
  const guard = `${path}.takeover`;
  if (await tryCreate(guard, ourContent)) {
    try {
      const current = await readLock(path);
      if (current !== 'missing' && current.text === staleText) await unlink(path).catch(() => {});
    } finally {
      await unlink(guard).catch(() => {});
    }
    return;
  }
  // A taker that died while holding the guard leaves it behind: clear it once it is clearly abandoned.
  const holder = await readLock(guard);
  if (holder !== 'missing' && (!holder.record || !isAlive(holder.record, guard))) {
    const age = Date.now() - Date.parse(holder.record?.since ?? '1970-01-01T00:00:00Z');
    if (age > 2000) await unlink(guard).catch(() => {});
  }
  await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
}

function toHolder(lock: LockRecord): LockHolder {
  return { pid: lock.pid, hostname: lock.hostname, since: lock.since, owner: lock.owner };
}

/** The start time of a process from /proc (Linux), or undefined elsewhere. */
function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime) comes after the parenthesised command name, which may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const [path, token] of held) {
      try {
        const current = JSON.parse(readFileSync(path, 'utf8')) as { token?: string };
        if (current.token === token) unlinkSync(path);
      } catch {
        // Best effort: a lock left behind is taken over by the next process anyway.
      }
    }
  });
}

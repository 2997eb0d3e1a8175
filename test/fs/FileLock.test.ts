import { access, readFile, readdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WorkspaceLockedError } from '../../src/errors.js';
import { FileLock } from '../../src/fs/FileLock.js';
import { WorkspaceStorage } from '../../src/core/storage/WorkspaceStorage.js';
import { runFixture } from '../helpers/child.js';
import { tempDir } from '../helpers/tmp.js';

describe('FileLock', () => {
  it('refuses a second holder in the same process, naming the holder', async () => {
    const path = join(await tempDir(), 'x.lock');
    const lock = await FileLock.acquire(path, 'first');
    const err = await FileLock.acquire(path, 'second').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkspaceLockedError);
    expect((err as WorkspaceLockedError).holder).toMatchObject({ pid: process.pid, hostname: hostname(), owner: 'first' });
    expect((err as Error).message).toContain(`pid ${process.pid}`);
    await lock.release();
    const again = await FileLock.acquire(path, 'second');
    await again.release();
  });

  it('takes over a lock left by a dead process', async () => {
    const path = join(await tempDir(), 'x.lock');
    // pid 2^22+1 is above Linux's default pid_max, so no process has it.
    await writeFile(path, JSON.stringify({ pid: 4194305, hostname: hostname(), since: '2020-01-01T00:00:00.000Z', token: 'old' }));
    const lock = await FileLock.acquire(path, 'new owner');
    expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({ pid: process.pid, owner: 'new owner' });
    await lock.release();
  });

  it('takes over a lock naming our own pid that this process never took (a restarted container)', async () => {
    const path = join(await tempDir(), 'x.lock');
    await writeFile(path, JSON.stringify({ pid: process.pid, hostname: hostname(), since: '2020-01-01T00:00:00.000Z', token: 'previous-life' }));
    const lock = await FileLock.acquire(path);
    await lock.release();
  });

  it('leaves no temp files behind in the lock directory', async () => {
    const dir = await tempDir();
    const lock = await FileLock.acquire(join(dir, 'x.lock'));
    expect(await readdir(dir)).toEqual(['x.lock']);
    await lock.release();
    expect(await readdir(dir)).toEqual([]);
  });

  it('takes over an unreadable lock file', async () => {
    const path = join(await tempDir(), 'x.lock');
    await writeFile(path, 'garbage');
    const lock = await FileLock.acquire(path);
    await lock.release();
  });

  it('treats a lock from another host as held', async () => {
    const path = join(await tempDir(), 'x.lock');
    await writeFile(path, JSON.stringify({ pid: 1, hostname: 'some-other-host', since: '2020-01-01T00:00:00.000Z', token: 't' }));
    await expect(FileLock.acquire(path)).rejects.toBeInstanceOf(WorkspaceLockedError);
  });

  it('lets exactly one of many concurrent takers win', async () => {
    const path = join(await tempDir(), 'x.lock');
    await writeFile(path, JSON.stringify({ pid: 4194305, hostname: hostname(), since: '2020-01-01T00:00:00.000Z', token: 'stale' }));
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => FileLock.acquire(path)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) if (r.status === 'fulfilled') await r.value.release();
  });
});

describe('workspace lock across processes', () => {
  it('fails a second client on the same workspace with the holder named, then takes over once the holder is SIGKILLed', async () => {
    const workspacePath = await tempDir('ws-');
    const child = runFixture('holdWorkspace.ts', [workspacePath, 'agent_001']);
    const [, pid] = await child.waitFor(/holding (\d+)/);
    const err = await WorkspaceStorage.open({ workspacePath, agentId: 'agent_001' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkspaceLockedError);
    expect((err as WorkspaceLockedError).code).toBe('WORKSPACE_LOCKED');
    expect((err as WorkspaceLockedError).holder).toMatchObject({ pid: Number(pid), owner: 'agent_001' });

    child.process.kill('SIGKILL');
    await child.exited;
    const storage = await WorkspaceStorage.open({ workspacePath, agentId: 'agent_001' });
    await storage.close();
  });

  it('removes the lock file when the holder process exits without closing', async () => {
    const workspacePath = await tempDir('ws-');
    const child = runFixture('holdWorkspace.ts', [workspacePath, 'agent_001']);
    await child.waitFor(/holding/);
    child.process.kill('SIGTERM');
    expect((await child.exited).code).toBe(0);
    await expect(access(join(workspacePath, 'im_client', 'client.lock'))).rejects.toThrow();
    const storage = await WorkspaceStorage.open({ workspacePath, agentId: 'agent_001' });
    await storage.close();
  });
});

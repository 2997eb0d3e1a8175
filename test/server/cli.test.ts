import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ServerProcess } from '../../src/testing/ServerProcess.js';
import { runFixture } from '../helpers/child.js';
import { RawClient } from '../helpers/RawClient.js';
import { tempDir } from '../helpers/tmp.js';

const cli = fileURLToPath(new URL('../../src/server/cli.ts', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', cli, ...args], { encoding: 'utf8', timeout: 20_000 });

describe('npm run server', () => {
  it('prints usage with --help, naming every flag and the defaults', () => {
    const r = run('--help');
    expect(r.status).toBe(0);
    for (const flag of ['--host', '--port', '--data-dir', '--tokens', '--max-frame-bytes', '--max-message-bytes', '--rate-limit']) {
      expect(r.stdout).toContain(flag);
    }
    expect(r.stdout).toContain('127.0.0.1');
    expect(r.stdout).toContain('8080');
    expect(r.stdout).toContain('~/.gateway/im_server');
  });

  it('exits 2 on an unknown flag or a bad number', () => {
    expect(run('--bogus').status).toBe(2);
    const r = run('--port', 'eighty');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--port');
  });

  it('exits 1 with a clear message when asked to bind a public interface without tokens', async () => {
    const r = run('--host', '0.0.0.0', '--port', '0', '--data-dir', await tempDir());
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/open mode.*--tokens/s);
  });

  it('starts with flags, serves /healthz and speaks the protocol', async () => {
    const server = await ServerProcess.start({ dataDir: await tempDir(), args: ['--heartbeat-ms', '4321', '--max-inflight', '7'] });
    onTestFinished(() => server.kill('SIGKILL').then(() => {}));
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    const c = await RawClient.login(server.url, 'agent_001');
    expect(c.welcome).toMatchObject({ heartbeatMs: 4321, limits: { maxInflightDeliveries: 7 } });
    c.close();
  });

  it('shuts down gracefully when the process that started it is SIGKILLed, leaving no server behind', async () => {
    const parent = runFixture('serverParent.ts', [await tempDir()]);
    const [, pid, url] = await parent.waitFor(/server (\d+) (\S+)\n/);
    onTestFinished(() => {
      if (isAlive(Number(pid))) process.kill(Number(pid), 'SIGKILL');
    });
    const client = await RawClient.login(url!, 'agent_001');
    parent.process.kill('SIGKILL');
    await parent.exited;
    // The server reads end-of-file on the stdin it was given and shuts down as on SIGTERM, though
    // the stdout and stderr it logs to are gone with the parent: sessions are closed with 1001.
    expect((await client.closed).code).toBe(1001);
    while (isAlive(Number(pid))) await new Promise((resolve) => setTimeout(resolve, 20));
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  });

  it('shuts down cleanly when its standard input closes with --stop-on-stdin-close', async () => {
    const server = await ServerProcess.start({ dataDir: await tempDir() });
    onTestFinished(() => server.kill('SIGKILL').then(() => {}));
    server.child.stdin!.end();
    expect(await server.exited).toEqual({ code: 0, signal: null });
    expect(server.output.join('')).toContain('stdin closed: shutting down');
  });
});

/** Whether `pid` still runs: an exited process nobody has reaped yet (a zombie) does not. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return process.platform !== 'linux';
  }
}

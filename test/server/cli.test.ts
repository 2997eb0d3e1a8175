import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ServerProcess } from '../../src/testing/ServerProcess.js';
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
});

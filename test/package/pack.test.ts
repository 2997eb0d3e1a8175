import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CLIENT_VERSION } from '../../src/constants.js';
import { tempDir } from '../helpers/tmp.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const npm = (args: string[], cwd: string) =>
  execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });

describe('the published package', () => {
  it('keeps CLIENT_VERSION equal to package.json', async () => {
    expect(JSON.parse(await readFile(join(root, 'package.json'), 'utf8')).version).toBe(CLIENT_VERSION);
  });

  it('installs from npm pack and works from plain JavaScript', { timeout: 180_000 }, async () => {
    const out = await tempDir('pack-');
    const tarball = npm(['pack', '--silent', '--pack-destination', out], root).trim().split('\n').pop()!;
    const app = await tempDir('app-');
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    npm(['install', '--prefer-offline', '--no-audit', '--no-fund', join(out, tarball)], app);
    await writeFile(
      join(app, 'main.mjs'),
      `import { IMClient, connectionMachine, IMClientError } from 'im-client';
       import { IMServer } from 'im-client/server';
       import { ServerProcess, FaultProxy, startTestServer } from 'im-client/testing';
       import { mkdtempSync } from 'node:fs';
       import { tmpdir } from 'node:os';
       import { join } from 'node:path';
       const dir = mkdtempSync(join(tmpdir(), 'pack-run-'));
       const server = await IMServer.start({ port: 0, dataDir: join(dir, 'server') });
       const a = new IMClient({ workspacePath: join(dir, 'a'), imServerUrl: server.url, agentId: 'agent_001' });
       const b = new IMClient({ workspacePath: join(dir, 'b'), imServerUrl: server.url, agentId: 'agent_002' });
       const got = new Promise((resolve) => b.onMessage(resolve));
       await a.connect(); await b.connect();
       await a.sendMessage({ to: 'agent_002', text: 'from the tarball' });
       const m = await got;
       await a.close(); await b.close(); await server.close();
       // The testing harness works from the package too: a server child process, a proxy, an in-process server.
       const child = await ServerProcess.start({ dataDir: join(dir, 'child') });
       const proxy = await FaultProxy.start({ target: child.url });
       const health = await fetch(proxy.url + '/healthz');
       await proxy.close(); await child.kill('SIGTERM');
       const test = await startTestServer(); await test.close();
       console.log(JSON.stringify({ text: m.text, machine: connectionMachine.id, error: typeof IMClientError, health: health.status }));`,
    );
    const result = execFileSync(process.execPath, ['main.mjs'], { cwd: app, encoding: 'utf8', timeout: 30_000 });
    expect(JSON.parse(result.trim())).toEqual({ text: 'from the tarball', machine: 'connection', error: 'function', health: 200 });
    // The command-line tools are installed as bins.
    const help = execFileSync(join(app, 'node_modules', '.bin', 'im-server'), ['--help'], { encoding: 'utf8' });
    expect(help).toContain('--data-dir');
    // Type declarations ship with it.
    const pkg = JSON.parse(await readFile(join(app, 'node_modules', 'im-client', 'package.json'), 'utf8'));
    await readFile(join(app, 'node_modules', 'im-client', pkg.exports['.'].types), 'utf8');
  });
});

import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createWebSocketReceiver } from '@statelyai/inspect';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { InspectionEvent } from 'xstate';
import { collect, eventually, makeClient } from '../helpers/clients.js';
import { startServer } from '../helpers/server.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

describe('inspection', () => {
  it('never shows message text to an inspector, while showing every actor', async () => {
    const server = await startServer();
    const events: InspectionEvent[] = [];
    const a = await makeClient(server.url, 'agent_001', { inspect: (e) => events.push(e) });
    const b = await makeClient(server.url, 'agent_002', { mode: 'queue', inspect: (e) => events.push(e) });
    const got = collect(b);
    await Promise.all([a.connect(), b.connect()]);
    const secret = 'the launch code is 0000';
    await a.sendMessage({ to: 'agent_002', text: secret, meta: { note: secret }, waitFor: 'delivered', timeoutMs: 5000 });
    await eventually(() => got.length === 1);
    const [job] = await b.claimPendingMessages({ max: 1 });
    await b.ackPendingMessages([job!.id]);
    const ids = new Set(events.map((e) => (e.actorRef as unknown as { id: string }).id.split(':')[0]));
    expect([...ids]).toEqual(expect.arrayContaining(['connection', 'outbox', 'inbox', 'message', 'pending']));
    const seen = JSON.stringify(events.map((e) => ({ type: e.type, snapshot: 'snapshot' in e ? e.snapshot : undefined, event: 'event' in e ? e.event : undefined })));
    expect(seen).not.toContain('launch code');
  });

  it('runs the documented inspector example: events reach the inspector server', { timeout: 30_000 }, async () => {
    const port = await freePort();
    const child = spawn(process.execPath, ['--import', 'tsx', 'examples/inspect.ts', '--port', String(port), '--no-open', '--seconds', '4'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    onTestFinished(() => void child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    await eventually(() => out.includes('inspector on'), 15_000, `the example to start: ${out}`);
    const actors = new Set<string>();
    const receiver = createWebSocketReceiver({ server: `ws://localhost:${port}` });
    receiver.subscribe((e: { type: string; sessionId?: string; name?: string; actorRef?: unknown }) => {
      if (e.type === '@xstate.actor' || e.type === '@xstate.snapshot') actors.add(String(e.name ?? e.sessionId ?? ''));
    });
    await eventually(() => actors.size >= 3, 10_000, 'inspection events from the example');
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    expect(code).toBe(0);
  });

  it('records a flight log that the timeline command prints', async () => {
    const server = await startServer();
    const a = await makeClient(server.url, 'agent_001', { flightRecorder: true });
    const b = await makeClient(server.url, 'agent_002');
    await Promise.all([a.connect(), b.connect()]);
    const m = await a.sendMessage({ to: 'agent_002', text: 'hello', waitFor: 'delivered', timeoutMs: 5000 });
    await a.close();
    const run = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/timeline.ts', ...args], { cwd: root, encoding: 'utf8' });
    const all = run(a.workspacePath);
    expect(all.status).toBe(0);
    expect(all.stdout).toMatch(/connection\s+disconnected --CONNECT--> session\.connecting/);
    expect(all.stdout).toMatch(/session\.handshaking --WELCOME--> session\.online\.waiting/);
    const mine = run(a.workspacePath, '--actor', `message:${m.id}`);
    const steps = mine.stdout.trim().split('\n').map((l) => l.replace(/^\S+\s+\S+\s+/, ''));
    expect(steps).toEqual([
      '(start) --start--> queued',
      'queued --DISPATCH--> inFlight.sending',
      'inFlight.sending --SENT--> inFlight.awaitingAck',
      'inFlight.awaitingAck --ACK--> acked',
      'acked --RECEIPT--> delivered (done)',
    ]);
    expect(run(b.workspacePath).status).toBe(1);
  });
});

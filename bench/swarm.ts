/**
 * A swarm of IMClients in one process, each with its own workspace, for the
 * reconnect storm: driven over IPC like `peer.ts`.
 */
import { IMClient } from '../src/index.js';
import { now } from './lib/stats.js';
import { removeDir, tempDir } from './lib/servers.js';
import { bodyOf } from './peers/Peer.js';

interface Member {
  client: IMClient;
  dir: string;
  received: number;
  acked: number;
  /** Times this client entered `online`, and started connecting. */
  onlineAt: number[];
  connectingAt: number[];
}

let members: Member[] = [];
const idOf = (i: number) => `swarm_${String(i).padStart(3, '0')}`;

const commands: Record<string, (args: Record<string, any>) => unknown> = {
  async init(args) {
    members = await Promise.all(
      Array.from({ length: args.count as number }, async (_, i) => {
        const dir = await tempDir('im-bench-swarm-');
        const client = new IMClient({ workspacePath: dir, imServerUrl: args.url, agentId: idOf(i) });
        const m: Member = { client, dir, received: 0, acked: 0, onlineAt: [], connectingAt: [] };
        client.onMessage(() => m.received++);
        client.on('status', (u) => {
          if (u.status === 'acked') m.acked++;
        });
        client.onConnectionStateChange((c) => {
          if (c.newState === 'online') m.onlineAt.push(now());
          if (c.newState === 'connecting') m.connectingAt.push(now());
        });
        return m;
      }),
    );
    await Promise.all(members.map((m) => m.client.connect({ timeoutMs: 30_000 })));
    return null;
  },
  /** Each member sends `perMember` messages to the next one (queued if offline). */
  async send(args) {
    await Promise.all(
      members.map(async (m, i) => {
        const to = idOf((i + 1) % members.length);
        await Promise.all(Array.from({ length: args.perMember as number }, (_, k) => m.client.sendMessage({ to, text: bodyOf(k) })));
      }),
    );
    return null;
  },
  /** Resolves once every member received and got acks for `perMember` messages since `since`, with the timeline. */
  async drained(args) {
    const want = args.perMember as number;
    while (!members.every((m) => m.received >= want && m.acked >= want)) await new Promise((r) => setTimeout(r, 5));
    const drainedAt = now();
    return {
      drainedAt,
      onlineAt: members.map((m) => m.onlineAt.find((t) => t >= args.since) ?? Number.NaN),
      attempts: members.map((m) => m.connectingAt.filter((t) => t >= args.downAt).length),
    };
  },
  states: () => members.map((m) => m.client.connectionState),
  async close() {
    await Promise.all(members.map((m) => m.client.close()));
    await Promise.all(members.map((m) => removeDir(m.dir)));
    members = [];
    return null;
  },
};

process.on('message', (call: { id: number; cmd: string; args: Record<string, any> }) => {
  void (async () => {
    try {
      process.send!({ id: call.id, result: (await commands[call.cmd]!(call.args)) ?? null });
    } catch (err) {
      process.send!({ id: call.id, error: err instanceof Error ? err.stack ?? err.message : String(err) });
    }
  })();
});

process.on('SIGTERM', () => {
  void Promise.resolve(commands.close!({})).finally(() => process.exit(0));
});

/**
 * A benchmark peer process: one relay client or one IMClient, driven by the
 * benchmark over IPC (see `lib/PeerProcess.ts`). Keeping each side of a
 * conversation in its own process, and the server in a third, splits the work
 * across processes as in real use.
 */
import { ImPeer } from './peers/ImPeer.js';
import type { Peer } from './peers/Peer.js';
import { RelayPeer } from './peers/RelayPeer.js';
import { now } from './lib/stats.js';

interface Call {
  id: number;
  cmd: string;
  args: Record<string, any>;
}

let peer: Peer | undefined;
let received = 0;
let expecting: { count: number; resolve: (at: number) => void } | undefined;
let forward = false;

function im(): ImPeer {
  if (!(peer instanceof ImPeer)) throw new Error('this command needs an IMClient peer');
  return peer;
}

function memory(): { rss: number; heapUsed: number; heapTotal: number; external: number; arrayBuffers: number } {
  (globalThis as { gc?: () => void }).gc?.();
  const { rss, heapUsed, heapTotal, external, arrayBuffers } = process.memoryUsage();
  return { rss, heapUsed, heapTotal, external, arrayBuffers };
}

const commands: Record<string, (args: Record<string, any>) => unknown> = {
  init(args) {
    peer =
      args.kind === 'relay'
        ? new RelayPeer(args.url, args.agentId, args.window)
        : new ImPeer({ workspacePath: args.workspace, imServerUrl: args.url, agentId: args.agentId, window: args.window, mode: args.mode });
    peer.onReceive((index, at) => {
      received++;
      if (forward) process.send!({ event: 'received', data: { index, at } });
      if (expecting && received >= expecting.count) {
        expecting.resolve(at);
        expecting = undefined;
      }
    });
    return null;
  },
  connect: () => peer!.connect(),
  open: () => im().client.open(),
  burst: (args) => peer!.burst(args.to, args.count),
  sendOne: (args) => peer!.sendOne(args.to, args.index),
  queue: (args) => im().queue(args.to, args.count, args.first ?? 0),
  acked: (args) => im().acked(args.total),
  forward(args) {
    forward = args.on;
    return null;
  },
  /** Resolves with the time the peer had received `count` messages in all. */
  expect: (args) =>
    received >= args.count ? now() : new Promise<number>((resolve) => (expecting = { count: args.count, resolve })),
  memory,
  /** Samples the peak RSS every 20 ms until `stopSampling`; resolves with the RSS it starts from. */
  startSampling() {
    peakRss = process.memoryUsage.rss();
    sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 20);
    return peakRss;
  },
  stopSampling() {
    clearInterval(sampler);
    return Math.max(peakRss, process.memoryUsage.rss());
  },
  history: async (args) => {
    const t0 = now();
    const page = await im().client.getConversationHistory({ contactId: args.contactId, limit: args.limit });
    return { ms: now() - t0, count: page.length, last: page.at(-1)?.text };
  },
  /** Drains the pending queue with a no-op handler; resolves with how many and how long. */
  drainPending: async (args) => {
    const t0 = now();
    const count = await im().client.drainPendingMessages(() => {}, { untilEmpty: true, ...(args.concurrency ? { concurrency: args.concurrency } : {}) });
    return { count, ms: now() - t0 };
  },
  pendingCount: async () => (await im().client.getPendingMessages()).length,
  close: () => peer?.close(),
};

let peakRss = 0;
let sampler: NodeJS.Timeout | undefined;

process.on('message', (call: Call) => {
  void (async () => {
    try {
      const result = await commands[call.cmd]!(call.args);
      process.send!({ id: call.id, result: result ?? null });
    } catch (err) {
      process.send!({ id: call.id, error: err instanceof Error ? err.stack ?? err.message : String(err) });
    }
  })();
});

process.on('SIGTERM', () => {
  void Promise.resolve(peer?.close()).finally(() => process.exit(0));
});

// The orchestrator is gone (killed by a timeout, crashed): a peer left behind would keep its
// client reconnecting forever.
process.on('disconnect', () => {
  void Promise.resolve(peer?.close()).finally(() => process.exit(0));
});

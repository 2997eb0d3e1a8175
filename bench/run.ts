/**
 * `npm run bench`: im-client end to end against a raw `ws` relay baseline,
 * measured in the same run (see docs/performance.md).
 *
 *   npm run bench                  the full run (compiled first, as in production)
 *   npm run bench -- --quick       small sizes, one round: checks the harness, not the figures
 *   npm run bench -- --rounds 5 --only throughput,latency
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, platform, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { claimBenchDirs } from './lib/servers.js';
import { median, round } from './lib/stats.js';
import { renderMarkdown, renderTargets, type CpuSplit, type Report } from './report.js';
import { conversationWorkspace, historyQuery, removeDir } from './scenarios/history.js';
import { latency, type LatencyResult } from './scenarios/latency.js';
import { offlineDrain, type OfflineResult } from './scenarios/offline.js';
import { pendingDrain, type PendingResult } from './scenarios/pending.js';
import { statechartCost } from './scenarios/statecharts.js';
import { reconnectStorm } from './scenarios/storm.js';
import { throughput, type ThroughputResult } from './scenarios/throughput.js';
import { bodyOf } from './peers/Peer.js';

const SCENARIOS = ['throughput', 'latency', 'offline', 'storm', 'history', 'pending', 'statecharts'] as const;
type Scenario = (typeof SCENARIOS)[number];

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    only: { type: 'string' },
    out: { type: 'string' },
  },
});

const quick = values.quick === true;
/** `--max-old-space-size` of the bounded-heap offline drain. */
const BOUNDED_HEAP_MB = 256;
const sizes = quick
  ? { messages: 5_000, warmup: 500, window: 1000, pings: 200, settle: 500, offline: 10_000, stormClients: 10, stormPerClient: 20, historyBig: 100_000, pendingSmall: 1_000, pendingBig: 5_000, machineCount: 5_000, machineInflight: [100, 10_000] }
  : { messages: 50_000, warmup: 2_000, window: 1000, pings: 2_000, settle: 3_000, offline: 100_000, stormClients: 50, stormPerClient: 100, historyBig: 1_000_000, pendingSmall: 10_000, pendingBig: 50_000, machineCount: 20_000, machineInflight: [100, 10_000] };
/** A command line that cannot run: said plainly, before anything starts. */
function usage(problem: string): never {
  console.error(`npm run bench: ${problem}`);
  process.exit(2);
}
const rounds = Number(values.rounds ?? (quick ? 1 : 3));
// Every figure is a median of rounds: none, or a fraction, would leave nothing to report.
if (!Number.isInteger(rounds) || rounds < 1) usage(`--rounds must be a whole number of at least 1, not "${values.rounds}"`);
const only = new Set<Scenario>(values.only ? (values.only.split(',') as Scenario[]) : SCENARIOS);
for (const s of only) if (!SCENARIOS.includes(s)) usage(`unknown scenario "${s}"; known: ${SCENARIOS.join(', ')}`);
const outDir = values.out ?? join(process.cwd(), 'bench', 'results');

/** The median CPU split of rounds that all measured it. */
function cpuMedian(rounds: ThroughputResult[]): CpuSplit {
  const of = (k: keyof CpuSplit) => median(rounds.map((r) => r.cpuUsPerMessage![k]));
  return { sender: of('sender'), server: of('server'), receiver: of('receiver') };
}

const log = (line: string) => process.stderr.write(`${line}\n`);
const started = Date.now();
// This run's directories carry its process id; those of runs killed before they cleaned up go now.
const swept = await claimBenchDirs();
if (swept > 0) log(`removed ${swept} director${swept === 1 ? 'y' : 'ies'} left by earlier runs that were killed`);

const report: Report = {
  date: new Date().toISOString(),
  machine: {
    cpu: `${cpus().length} x ${cpus()[0]?.model.trim() ?? 'unknown'}`,
    memoryGiB: round(totalmem() / 2 ** 30, 1),
    os: `${platform()} ${release()}`,
    node: process.version,
  },
  quick,
  rounds,
  sizes,
  results: {},
  durationS: 0,
};

if (only.has('throughput')) {
  const relay: ThroughputResult[] = [];
  const durable: ThroughputResult[] = [];
  const im: ThroughputResult[] = [];
  for (let r = 0; r < rounds; r++) {
    relay.push(await throughput('relay', sizes.messages, sizes.window, sizes.warmup));
    durable.push(await throughput('durable-relay', sizes.messages, sizes.window, sizes.warmup));
    im.push(await throughput('im', sizes.messages, sizes.window, sizes.warmup));
    log(`throughput round ${r + 1}: relay ${relay.at(-1)!.msgPerSec.toFixed(0)} msg/s, durable relay ${durable.at(-1)!.msgPerSec.toFixed(0)} msg/s, im-client ${im.at(-1)!.msgPerSec.toFixed(0)} msg/s`);
  }
  report.results.throughput = {
    relayMsgPerSec: median(relay.map((x) => x.msgPerSec)),
    imMsgPerSec: median(im.map((x) => x.msgPerSec)),
    ratio: median(im.map((x, i) => x.msgPerSec / relay[i]!.msgPerSec)),
    durableRelay: {
      msgPerSec: median(durable.map((x) => x.msgPerSec)),
      toRelay: median(durable.map((x, i) => x.msgPerSec / relay[i]!.msgPerSec)),
      imRatio: median(im.map((x, i) => x.msgPerSec / durable[i]!.msgPerSec)),
    },
    senderPeakRssGrowth: {
      relay: median(relay.map((x) => x.senderPeakRssGrowth)),
      im: median(im.map((x) => x.senderPeakRssGrowth)),
      ratio: median(im.map((x, i) => x.senderPeakRssGrowth / Math.max(1, relay[i]!.senderPeakRssGrowth))),
    },
    ...(relay.every((x) => x.cpuUsPerMessage) && im.every((x) => x.cpuUsPerMessage) ? { cpu: { relay: cpuMedian(relay), im: cpuMedian(im) } } : {}),
    rounds: { relay, durableRelay: durable, im },
  };
}

if (only.has('latency')) {
  const relay: LatencyResult[] = [];
  const durable: LatencyResult[] = [];
  const im: LatencyResult[] = [];
  for (let r = 0; r < rounds; r++) {
    relay.push(await latency('relay', sizes.pings, Math.ceil(sizes.pings / 10), sizes.settle));
    durable.push(await latency('durable-relay', sizes.pings, Math.ceil(sizes.pings / 10), sizes.settle));
    im.push(await latency('im', sizes.pings, Math.ceil(sizes.pings / 10), sizes.settle));
    const [a, d, b] = [relay.at(-1)!, durable.at(-1)!, im.at(-1)!];
    const p99s = (x: LatencyResult) => `${x.ackP99.toFixed(2)} / ${x.steadyAckP99.toFixed(2)}`;
    log(`latency round ${r + 1}: ack p99 (first / steady) relay ${p99s(a)} ms, durable relay ${p99s(d)} ms, im-client ${p99s(b)} ms`);
  }
  const keys = Object.keys(im[0]!) as Array<keyof LatencyResult>;
  const each = (f: (k: keyof LatencyResult) => number) => Object.fromEntries(keys.map((k) => [k, f(k)])) as unknown as LatencyResult;
  report.results.latency = {
    relay: each((k) => median(relay.map((x) => x[k]))),
    im: each((k) => median(im.map((x) => x[k]))),
    ratio: each((k) => median(im.map((x, i) => x[k] / relay[i]![k]))),
    durableRelay: each((k) => median(durable.map((x) => x[k]))),
    durableRatio: each((k) => median(im.map((x, i) => x[k] / durable[i]![k]))),
    rounds: { relay, durableRelay: durable, im },
  };
}

if (only.has('offline')) {
  // As many rounds as the others: with two, the "median" was the lower of two, kinder than a median.
  const runs: OfflineResult[] = [];
  for (let r = 0; r < rounds; r++) {
    runs.push(await offlineDrain(sizes.offline, sizes.window));
    log(`offline round ${r + 1}: ${runs.at(-1)!.drainMsgPerSec.toFixed(0)} msg/s, peak RSS +${runs.at(-1)!.peakRssPerQueued.toFixed(0)} B/message`);
  }
  // Node sizes its heap from the machine's memory: on a big machine V8 lets garbage pile up long
  // before it collects. The same drain with the heap bounded, as an embedder minding memory runs it,
  // shows what the client itself needs.
  const bounded: OfflineResult[] = [];
  for (let r = 0; r < rounds; r++) {
    bounded.push(await offlineDrain(sizes.offline, sizes.window, [`--max-old-space-size=${BOUNDED_HEAP_MB}`]));
    log(`offline round ${r + 1}, heap bounded to ${BOUNDED_HEAP_MB} MB: ${bounded.at(-1)!.drainMsgPerSec.toFixed(0)} msg/s, peak RSS +${bounded.at(-1)!.peakRssPerQueued.toFixed(0)} B/message`);
  }
  const online = report.results.throughput?.imMsgPerSec;
  const drain = median(runs.map((x) => x.drainMsgPerSec));
  report.results.offline = {
    count: sizes.offline,
    drainMsgPerSec: drain,
    onlineMsgPerSec: online ?? null,
    ratioToOnline: online ? drain / online : null,
    heapPerQueued: median(runs.map((x) => x.heapPerQueued)),
    rssPerQueued: median(runs.map((x) => x.rssPerQueued)),
    peakRssPerQueued: median(runs.map((x) => x.peakRssPerQueued)),
    queueingPeakRssPerQueued: median(runs.map((x) => x.queueingPeakRssPerQueued)),
    rounds: runs,
    bounded: {
      heapMb: BOUNDED_HEAP_MB,
      drainMsgPerSec: median(bounded.map((x) => x.drainMsgPerSec)),
      ratioToOnline: online ? median(bounded.map((x) => x.drainMsgPerSec)) / online : null,
      peakRssPerQueued: median(bounded.map((x) => x.peakRssPerQueued)),
      rounds: bounded,
    },
  };
}

if (only.has('storm')) {
  const result = await reconnectStorm(sizes.stormClients, sizes.stormPerClient, 1000);
  log(`storm: all ${result.clients} online after ${result.allOnlineMs.toFixed(0)} ms, drained after ${result.drainedMs.toFixed(0)} ms`);
  report.results.storm = result;
}

if (only.has('history')) {
  const small = await conversationWorkspace(1_000);
  const big = await conversationWorkspace(sizes.historyBig);
  try {
    const smallRuns = [];
    const bigRuns = [];
    for (let r = 0; r < rounds; r++) {
      smallRuns.push(await historyQuery(small.workspace, bodyOf(999)));
      bigRuns.push(await historyQuery(big.workspace, bodyOf(sizes.historyBig - 1)));
    }
    const cold = { small: median(smallRuns.map((x) => x.coldMs)), big: median(bigRuns.map((x) => x.coldMs)) };
    const warm = { small: median(smallRuns.map((x) => x.warmMs)), big: median(bigRuns.map((x) => x.warmMs)) };
    log(`history: last 50 of 1k ${cold.small.toFixed(2)} ms, of ${sizes.historyBig} ${cold.big.toFixed(2)} ms (cold)`);
    report.results.history = {
      bigCount: sizes.historyBig,
      bigFileBytes: big.fileBytes,
      cold,
      warm,
      ratioCold: cold.big / cold.small,
      ratioWarm: warm.big / warm.small,
      rounds: { small: smallRuns, big: bigRuns },
    };
  } finally {
    await removeDir(small.workspace);
    await removeDir(big.workspace);
  }
}

if (only.has('pending')) {
  const small: PendingResult[] = [];
  const big: PendingResult[] = [];
  for (let r = 0; r < rounds; r++) {
    small.push(await pendingDrain(sizes.pendingSmall));
    big.push(await pendingDrain(sizes.pendingBig));
    log(`pending drain round ${r + 1}: ${small.at(-1)!.usPerMessage.toFixed(1)} us/msg (${sizes.pendingSmall}), ${big.at(-1)!.usPerMessage.toFixed(1)} us/msg (${sizes.pendingBig})`);
  }
  const s = median(small.map((x) => x.usPerMessage));
  const b = median(big.map((x) => x.usPerMessage));
  const heapPerQueued = median(big.map((x) => x.heapPerQueued));
  report.results.pending = { smallCount: sizes.pendingSmall, bigCount: sizes.pendingBig, smallUsPerMessage: s, bigUsPerMessage: b, ratio: b / s, heapPerQueued, rounds: { small, big } };
}

if (only.has('statecharts')) {
  const [few, many] = sizes.machineInflight as [number, number];
  statechartCost(few, sizes.machineCount); // warm-up
  const fewRuns = [];
  const manyRuns = [];
  for (let r = 0; r < rounds; r++) {
    fewRuns.push(statechartCost(few, sizes.machineCount).usPerMessage);
    manyRuns.push(statechartCost(many, sizes.machineCount).usPerMessage);
  }
  const f = median(fewRuns);
  const m = median(manyRuns);
  log(`statecharts: ${f.toFixed(2)} us/message with ${few} in flight, ${m.toFixed(2)} with ${many}`);
  report.results.statecharts = { few, many, fewUsPerMessage: f, manyUsPerMessage: m, ratio: m / f, rounds: { few: fewRuns, many: manyRuns } };
}

report.durationS = (Date.now() - started) / 1000;
const markdown = renderMarkdown(report);
await mkdir(outDir, { recursive: true });
await writeFile(join(outDir, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
await writeFile(join(outDir, 'latest.md'), markdown);
process.stdout.write(`${markdown}\nResults: ${join(outDir, 'latest.json')} and latest.md (${report.durationS.toFixed(0)} s)\n`);
const targets = renderTargets(report);
const missed = targets.filter((t) => t.met === false);
if (!quick && missed.length > 0) {
  process.stdout.write(`\n${missed.length} target(s) missed: ${missed.map((t) => t.name).join('; ')}\n`);
  process.exitCode = 1;
}

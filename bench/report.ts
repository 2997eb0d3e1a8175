import type { LatencyResult } from './scenarios/latency.js';
import type { OfflineResult } from './scenarios/offline.js';
import type { PendingResult } from './scenarios/pending.js';
import type { StormResult } from './scenarios/storm.js';
import type { ThroughputResult } from './scenarios/throughput.js';

/** CPU microseconds per message of each process. */
export interface CpuSplit {
  sender: number;
  server: number;
  receiver: number;
}
import type { HistoryResult } from './scenarios/history.js';

type Latency = Omit<LatencyResult, never>;

/** Everything one `npm run bench` measured (written as `bench/results/latest.json`). */
export interface Report {
  date: string;
  machine: { cpu: string; memoryGiB: number; os: string; node: string };
  quick: boolean;
  rounds: number;
  sizes: Record<string, unknown>;
  durationS: number;
  results: {
    throughput?: {
      relayMsgPerSec: number;
      imMsgPerSec: number;
      ratio: number;
      /**
       * The relay that syncs each batch to a file before relaying it: its rate,
       * its ratio to the raw relay, and im-client's ratio to it (medians of the
       * rounds' ratios).
       */
      durableRelay: { msgPerSec: number; toRelay: number; imRatio: number };
      /** The sender's peak RSS growth over the burst (bytes, medians): its working set under load. */
      senderPeakRssGrowth: { relay: number; im: number; ratio: number };
      /** Median CPU microseconds per message of each process, where the platform tells. */
      cpu?: { relay: CpuSplit; im: CpuSplit };
      rounds: { relay: ThroughputResult[]; durableRelay: ThroughputResult[]; im: ThroughputResult[] };
    };
    latency?: {
      relay: Latency;
      im: Latency;
      ratio: Latency;
      /** The relay that syncs each batch before relaying it, and im-client's ratios to it. */
      durableRelay: Latency;
      durableRatio: Latency;
      rounds: { relay: LatencyResult[]; durableRelay: LatencyResult[]; im: LatencyResult[] };
    };
    offline?: {
      count: number;
      drainMsgPerSec: number;
      onlineMsgPerSec: number | null;
      ratioToOnline: number | null;
      heapPerQueued: number;
      rssPerQueued: number;
      peakRssPerQueued: number;
      queueingPeakRssPerQueued: number;
      rounds: OfflineResult[];
      /** The same drain with every process's heap bounded (`--max-old-space-size`). */
      bounded: { heapMb: number; drainMsgPerSec: number; ratioToOnline: number | null; peakRssPerQueued: number; rounds: OfflineResult[] };
    };
    storm?: StormResult;
    history?: {
      bigCount: number;
      bigFileBytes: number;
      cold: { small: number; big: number };
      warm: { small: number; big: number };
      ratioCold: number;
      ratioWarm: number;
      rounds: { small: Array<Omit<HistoryResult, 'fileBytes'>>; big: Array<Omit<HistoryResult, 'fileBytes'>> };
    };
    pending?: { smallCount: number; bigCount: number; smallUsPerMessage: number; bigUsPerMessage: number; ratio: number; heapPerQueued: number; rounds: { small: PendingResult[]; big: PendingResult[] } };
    statecharts?: { few: number; many: number; fewUsPerMessage: number; manyUsPerMessage: number; ratio: number; rounds: { few: number[]; many: number[] } };
  };
}

/** One target of the performance issue, checked against a report. */
export interface Target {
  name: string;
  value: string;
  goal: string;
  /** Undefined when the scenario did not run. */
  met: boolean | undefined;
}

const n = (v: number, digits = 0) => v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const x = (v: number) => `${v.toFixed(2)}x`;
const ms = (v: number) => `${v.toFixed(2)} ms`;
const kib = (bytes: number) => `${n(bytes)} B`;
const mib = (bytes: number) => `${n(bytes / 2 ** 20, 1)} MB`;

export function renderTargets(report: Report): Target[] {
  const { throughput, latency, offline, history, pending, statecharts } = report.results;
  return [
    { name: 'throughput vs raw relay', value: throughput ? x(throughput.ratio) : '-', goal: '>= 0.60x', met: throughput && throughput.ratio >= 0.6 },
    { name: 'ack p99 vs raw relay', value: latency ? x(latency.ratio.ackP99) : '-', goal: '<= 5x', met: latency && latency.ratio.ackP99 <= 5 },
    {
      name: 'offline drain vs online throughput',
      value: offline?.ratioToOnline != null ? x(offline.ratioToOnline) : '-',
      goal: '>= 0.50x',
      met: offline?.ratioToOnline == null ? undefined : offline.ratioToOnline >= 0.5,
    },
    { name: 'RSS growth per queued message (peak, Node defaults)', value: offline ? kib(offline.peakRssPerQueued) : '-', goal: '<= 1,024 B', met: offline && offline.peakRssPerQueued <= 1024 },
    {
      name: `RSS growth per queued message (peak, heap bounded to ${offline ? offline.bounded.heapMb : '?'} MB)`,
      value: offline ? kib(offline.bounded.peakRssPerQueued) : '-',
      goal: '<= 1,024 B, drain >= 0.50x online',
      met: offline && offline.bounded.peakRssPerQueued <= 1024 && (offline.bounded.ratioToOnline == null || offline.bounded.ratioToOnline >= 0.5),
    },
    { name: 'last-50 history, 1M vs 1k messages', value: history ? x(history.ratioCold) : '-', goal: '<= 2x', met: history && history.ratioCold <= 2 },
    { name: `pending drain cost per message, ${pending ? n(pending.bigCount) : 'big'} vs ${pending ? n(pending.smallCount) : 'small'}`, value: pending ? x(pending.ratio) : '-', goal: '<= 1.5x (linear)', met: pending && pending.ratio <= 1.5 },
    {
      name: `statechart cost per message, ${statecharts ? n(statecharts.many) : 'many'} vs ${statecharts ? n(statecharts.few) : 'few'} in flight`,
      value: statecharts ? x(statecharts.ratio) : '-',
      goal: '<= 1.5x (flat)',
      met: statecharts && statecharts.ratio <= 1.5,
    },
  ];
}

/** The short markdown summary printed at the end and written as `latest.md`. */
export function renderMarkdown(report: Report): string {
  const { throughput, latency, offline, storm, history, pending, statecharts } = report.results;
  const rows: string[][] = [];
  if (throughput) {
    rows.push([`throughput, ${n(report.sizes.messages as number)} msgs, window ${n(report.sizes.window as number)}`, `${n(throughput.relayMsgPerSec)} msg/s`, `${n(throughput.imMsgPerSec)} msg/s`, x(throughput.ratio)]);
    if (throughput.cpu) {
      const { relay, im } = throughput.cpu;
      const split = (c: CpuSplit) => `${c.sender.toFixed(1)} / ${c.server.toFixed(1)} / ${c.receiver.toFixed(1)} us`;
      const total = (c: CpuSplit) => c.sender + c.server + c.receiver;
      rows.push(['... CPU per message: sender / server / receiver', split(relay), split(im), x(total(im) / total(relay))]);
    }
    const d = throughput.durableRelay;
    rows.push([`... against a relay that syncs each batch before relaying (${x(d.toRelay)} the raw relay)`, `${n(d.msgPerSec)} msg/s`, `${n(throughput.imMsgPerSec)} msg/s`, x(d.imRatio)]);
    const rss = throughput.senderPeakRssGrowth;
    rows.push(['... sender peak RSS growth over the burst', mib(rss.relay), mib(rss.im), x(rss.ratio)]);
  }
  if (latency) {
    rows.push(['send-to-ack p50', ms(latency.relay.ackP50), ms(latency.im.ackP50), x(latency.ratio.ackP50)]);
    rows.push(['send-to-ack p99', ms(latency.relay.ackP99), ms(latency.im.ackP99), x(latency.ratio.ackP99)]);
    rows.push(['send-to-receive p50', ms(latency.relay.receiveP50), ms(latency.im.receiveP50), x(latency.ratio.receiveP50)]);
    rows.push(['send-to-receive p99', ms(latency.relay.receiveP99), ms(latency.im.receiveP99), x(latency.ratio.receiveP99)]);
    const settle = n(report.sizes.settle as number);
    rows.push([`... the same after ${settle} more sends: ack p50 / p99`, `${ms(latency.relay.steadyAckP50)} / ${ms(latency.relay.steadyAckP99)}`, `${ms(latency.im.steadyAckP50)} / ${ms(latency.im.steadyAckP99)}`, `${x(latency.ratio.steadyAckP50)} / ${x(latency.ratio.steadyAckP99)}`]);
    rows.push([`... receive p50 / p99`, `${ms(latency.relay.steadyReceiveP50)} / ${ms(latency.relay.steadyReceiveP99)}`, `${ms(latency.im.steadyReceiveP50)} / ${ms(latency.im.steadyReceiveP99)}`, `${x(latency.ratio.steadyReceiveP50)} / ${x(latency.ratio.steadyReceiveP99)}`]);
    const { durableRelay: d, durableRatio: dr } = latency;
    rows.push(['... against a relay that syncs each batch before relaying: ack p50 / p99', `${ms(d.ackP50)} / ${ms(d.ackP99)}`, `${ms(latency.im.ackP50)} / ${ms(latency.im.ackP99)}`, `${x(dr.ackP50)} / ${x(dr.ackP99)}`]);
    rows.push([`... ... after ${settle} more sends`, `${ms(d.steadyAckP50)} / ${ms(d.steadyAckP99)}`, `${ms(latency.im.steadyAckP50)} / ${ms(latency.im.steadyAckP99)}`, `${x(dr.steadyAckP50)} / ${x(dr.steadyAckP99)}`]);
  }
  if (offline) {
    rows.push([
      `offline queue of ${n(offline.count)}, drained on reconnect`,
      '',
      `${n(offline.drainMsgPerSec)} msg/s`,
      offline.ratioToOnline == null ? '' : `${x(offline.ratioToOnline)} online`,
    ]);
    rows.push([
      'memory per queued message (heap / RSS held / peak RSS while queueing / peak RSS with the drain)',
      '',
      `${kib(offline.heapPerQueued)} / ${kib(offline.rssPerQueued)} / ${kib(offline.queueingPeakRssPerQueued)} / ${kib(offline.peakRssPerQueued)}`,
      '',
    ]);
    const b = offline.bounded;
    rows.push([
      `... heap bounded to ${b.heapMb} MB: drain / peak RSS`,
      '',
      `${n(b.drainMsgPerSec)} msg/s / ${kib(b.peakRssPerQueued)}`,
      b.ratioToOnline == null ? '' : `${x(b.ratioToOnline)} online`,
    ]);
  }
  if (storm) {
    rows.push([
      `reconnect storm, ${storm.clients} clients: all online / all drained`,
      '',
      `${n(storm.allOnlineMs)} ms / ${n(storm.drainedMs)} ms`,
      '',
    ]);
    rows.push([
      'storm: back online p10 / p50 / p90, peak per 100 ms, attempts',
      '',
      `${n(storm.onlineP10)} / ${n(storm.onlineP50)} / ${n(storm.onlineP90)} ms, ${storm.peakPer100ms}, ${storm.attemptsMedian}`,
      '',
    ]);
  }
  if (history) {
    rows.push([`last-50 history, 1k vs ${n(history.bigCount)} messages (cold)`, ms(history.cold.small), ms(history.cold.big), x(history.ratioCold)]);
    rows.push(['... same, warm', ms(history.warm.small), ms(history.warm.big), x(history.ratioWarm)]);
  }
  if (pending) {
    rows.push([`pending drain, ${n(pending.smallCount)} vs ${n(pending.bigCount)} (per message)`, `${n(pending.smallUsPerMessage, 1)} us`, `${n(pending.bigUsPerMessage, 1)} us`, x(pending.ratio)]);
    rows.push([`... heap held per message waiting in the pending queue (${n(pending.bigCount)} queued)`, '', `${n(pending.heapPerQueued)} B`, '']);
  }
  if (statecharts) {
    rows.push([`statechart per message, ${n(statecharts.few)} vs ${n(statecharts.many)} in flight`, `${n(statecharts.fewUsPerMessage, 2)} us`, `${n(statecharts.manyUsPerMessage, 2)} us`, x(statecharts.ratio)]);
  }
  const table = (header: string[], body: string[][]) =>
    [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...body.map((r) => `| ${r.join(' | ')} |`)].join('\n');
  const m = report.machine;
  return [
    `im-client benchmark, ${report.date.slice(0, 10)}: ${m.cpu}, ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}; ${report.rounds} round(s)${report.quick ? ', --quick sizes' : ''}`,
    '',
    table(['scenario', 'baseline: raw ws relay (or the smaller case)', 'im-client', 'ratio'], rows),
    '',
    table(['target', 'measured', 'goal', 'met'], renderTargets(report).map((t) => [t.name, t.value, t.goal, t.met === undefined ? 'not run' : t.met ? 'yes' : '**no**'])),
    '',
  ].join('\n');
}

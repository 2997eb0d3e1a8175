#!/usr/bin/env node
/**
 * npm run timeline -- <workspacePath> [--actor PREFIX] [--last N]
 *
 * Prints a client's flight record (written with the `flightRecorder` option)
 * as a timeline: time, actor, from --event--> to.
 */
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { WorkspacePaths } from '../core/storage/paths.js';
import { readJsonl } from '../fs/readJsonl.js';
import { formatStorageWarning } from '../fs/StorageWarning.js';

const FlightLine = z.object({ t: z.string(), actor: z.string(), from: z.string().nullable(), event: z.string(), to: z.string() });

const HELP = `Usage: npm run timeline -- <workspacePath> [--actor PREFIX] [--last N]

Prints the flight record of the IM client using <workspacePath> (started with
flightRecorder: true): every state change of every actor, oldest first.
  --actor PREFIX   only actors whose id starts with PREFIX (connection, outbox, message:...)
  --last N         only the last N lines
`;

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({ allowPositionals: true, options: { actor: { type: 'string' }, last: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  } catch (err) {
    process.stderr.write(`timeline: ${(err as Error).message}\n\n${HELP}`);
    process.exit(2);
  }
  const { values, positionals } = parsed;
  if (values.help || positionals.length !== 1) {
    (values.help ? process.stdout : process.stderr).write(HELP);
    process.exit(values.help ? 0 : 2);
  }
  const last = values.last === undefined ? Infinity : Number(values.last);
  if (!(last > 0)) {
    process.stderr.write('timeline: --last expects a positive number\n');
    process.exit(2);
  }
  const paths = new WorkspacePaths(positionals[0]!);
  const lines: string[] = [];
  let found = 0;
  for (const file of [paths.flight.replace(/\.jsonl$/, '.1.jsonl'), paths.flight]) {
    for await (const { value: r } of readJsonl(file, FlightLine, { onWarning: (w) => process.stderr.write(`${formatStorageWarning(w)}\n`) })) {
      found++;
      if (values.actor && !r.actor.startsWith(values.actor)) continue;
      lines.push(`${r.t}  ${r.actor.padEnd(28)} ${r.from ?? '(start)'} --${r.event}--> ${r.to}`);
      if (lines.length > last) lines.shift();
    }
  }
  if (found === 0) {
    process.stderr.write(`timeline: no flight record in ${paths.root} (start the client with flightRecorder: true)\n`);
    process.exit(1);
  }
  process.stdout.write(lines.length ? `${lines.join('\n')}\n` : '');
}

void main();

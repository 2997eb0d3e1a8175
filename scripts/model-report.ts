/**
 * Prints the coverage the model-based tests (test/model) wrote: every state
 * and transition of every machine, with the generated paths that reached it
 * in the real implementation. `npm run test:model` runs the tests, then this.
 */
import { readFile, readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('../.model-coverage/', import.meta.url));
const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.txt')).sort();
if (files.length === 0) {
  process.stderr.write('no model coverage found: run the model tests first (npm run test:model)\n');
  process.exit(1);
}
let missing = 0;
for (const file of files) {
  const text = await readFile(dir + file, 'utf8');
  missing += (text.match(/^MISS /gm) ?? []).length;
  process.stdout.write(`${text}\n`);
}
process.stdout.write(missing ? `${missing} states or transitions were not reached\n` : 'every state and transition of every machine was reached by the real implementation\n');
process.exit(missing ? 1 : 0);

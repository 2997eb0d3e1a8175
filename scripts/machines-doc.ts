/**
 * npm run docs:machines — writes docs/machines.md from the machine definitions.
 * With --check, writes nothing and exits 1 when the committed file differs.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { machinesDoc } from './machinesDoc.js';

const file = fileURLToPath(new URL('../docs/machines.md', import.meta.url));
const generated = machinesDoc();
if (process.argv.includes('--check')) {
  const committed = await readFile(file, 'utf8').catch(() => '');
  if (committed !== generated) {
    process.stderr.write('docs/machines.md is out of date: run npm run docs:machines\n');
    process.exit(1);
  }
  process.stdout.write('docs/machines.md is up to date\n');
} else {
  await writeFile(file, generated);
  process.stdout.write(`wrote ${file}\n`);
}

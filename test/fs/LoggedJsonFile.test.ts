import { access, appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { StorageCorruptError } from '../../src/errors.js';
import { LoggedJsonFile } from '../../src/fs/LoggedJsonFile.js';
import type { StorageWarning } from '../../src/fs/StorageWarning.js';
import { tempDir } from '../helpers/tmp.js';

const Doc = z.object({ n: z.int() });

async function files() {
  const dir = await tempDir('logged-');
  return { json: join(dir, 'doc.json'), log: join(dir, 'doc.log.jsonl') };
}

describe('LoggedJsonFile', () => {
  it('appends each write to the log and folds it into the JSON file on close', async () => {
    const { json, log } = await files();
    const doc = await LoggedJsonFile.open(json, log, Doc);
    expect(await doc.read()).toBeUndefined();
    // Nothing written yet: neither file exists.
    await expect(access(json)).rejects.toThrow();
    await expect(access(log)).rejects.toThrow();
    for (let n = 1; n <= 3; n++) await doc.write({ n });
    expect((await readFile(log, 'utf8')).trim().split('\n')).toEqual(['{"n":1}', '{"n":2}', '{"n":3}']);
    await doc.close();
    expect(JSON.parse(await readFile(json, 'utf8'))).toEqual({ n: 3 });
    await expect(access(log)).rejects.toThrow();
    await expect(doc.write({ n: 4 })).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('after a crash (no close), the last durable line is the value, and opening folds the log', async () => {
    const { json, log } = await files();
    const doc = await LoggedJsonFile.open(json, log, Doc);
    await doc.write({ n: 1 });
    await doc.write({ n: 2 });
    // The process dies mid-append: a torn line that never resolved.
    await appendFile(log, '{"n":');
    const warnings: StorageWarning[] = [];
    expect(await LoggedJsonFile.read(json, log, Doc)).toEqual({ n: 2 });
    const reopened = await LoggedJsonFile.open(json, log, Doc, { onWarning: (w) => warnings.push(w) });
    expect(await reopened.read()).toEqual({ n: 2 });
    expect(warnings).toHaveLength(1);
    expect(JSON.parse(await readFile(json, 'utf8'))).toEqual({ n: 2 });
    await expect(access(log)).rejects.toThrow();
    await reopened.close();
  });

  it('keeps overlapping writes in order (the last one made is the value read back)', async () => {
    const { json, log } = await files();
    const doc = await LoggedJsonFile.open(json, log, Doc);
    await Promise.all([doc.write({ n: 1 }), doc.write({ n: 2 }), doc.write({ n: 3 })]);
    expect((await readFile(log, 'utf8')).trim().split('\n')).toEqual(['{"n":1}', '{"n":2}', '{"n":3}']);
    expect(await LoggedJsonFile.read(json, log, Doc)).toEqual({ n: 3 });
    await doc.close();
    expect(JSON.parse(await readFile(json, 'utf8'))).toEqual({ n: 3 });
  });

  it('folds the log every compactEvery writes, so it stays short', async () => {
    const { json, log } = await files();
    const doc = await LoggedJsonFile.open(json, log, Doc, { compactEvery: 3 });
    for (let n = 1; n <= 10; n++) await doc.write({ n });
    const lines = (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(Boolean);
    expect(lines.length).toBeLessThan(3);
    expect(await LoggedJsonFile.read(json, log, Doc)).toEqual({ n: 10 });
    await doc.close();
  });

  it('refuses a corrupt JSON file and leaves it untouched', async () => {
    const { json, log } = await files();
    await writeFile(json, '{"n": "three"}');
    await expect(LoggedJsonFile.open(json, log, Doc)).rejects.toBeInstanceOf(StorageCorruptError);
    expect(await readFile(json, 'utf8')).toBe('{"n": "three"}');
  });
});

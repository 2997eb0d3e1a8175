import { readFile, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createActor, createMachine } from 'xstate';
import { FlightRecorder, type FlightRecord } from '../../src/core/FlightRecorder.js';
import { JsonlWriter } from '../../src/fs/JsonlWriter.js';
import { ioError } from '../helpers/diskFaults.js';
import { sleep } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

afterEach(() => {
  vi.restoreAllMocks();
});

const toggle = createMachine({ id: 'toggle', initial: 'off', states: { off: { on: { FLIP: 'on' } }, on: { on: { FLIP: 'off' } } } });

/** Runs a toggle actor recorded by `recorder` through `count` flips, `gapMs` apart, then stops it. */
async function flip(recorder: FlightRecorder, count: number, gapMs: number): Promise<void> {
  const actor = createActor(toggle, { inspect: recorder.observe }).start();
  for (let i = 0; i < count; i++) {
    actor.send({ type: 'FLIP' });
    await sleep(gapMs);
  }
  actor.stop();
}

async function records(path: string): Promise<FlightRecord[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as FlightRecord);
}

describe('FlightRecorder', () => {
  it('records each state change, rotates past its size, and keeps recording when closing a rotated file fails', async () => {
    const path = join(await tempDir('flight-'), 'flight.jsonl');
    // The first file's close reports an error (the file is closed all the same).
    const open = JsonlWriter.open.bind(JsonlWriter);
    let opened = 0;
    vi.spyOn(JsonlWriter, 'open').mockImplementation(async (p, options) => {
      const writer = await open(p, options);
      if (opened++ === 0) {
        const close = writer.close.bind(writer);
        writer.close = async () => {
          await close();
          throw ioError('EIO');
        };
      }
      return writer;
    });
    const recorder = await FlightRecorder.open(path, { rotateBytes: 1500 });
    await flip(recorder, 60, 2);
    await recorder.close();
    // Rotated at least twice (the second after the failed close), and the newest changes are in the current file.
    expect(opened).toBeGreaterThanOrEqual(3);
    const current = await records(path);
    const previous = await records(path.replace(/\.jsonl$/, '.1.jsonl'));
    expect(previous.length).toBeGreaterThan(0);
    expect(current.length).toBeGreaterThan(0);
    const flips = [...previous, ...current].filter((r) => r.event === 'FLIP');
    // Consecutive records of the two files follow each other: none lost at a rotation.
    for (let i = 1; i < flips.length; i++) expect(flips[i]!.from).toBe(flips[i - 1]!.to);
  });

  it('survives a rotation that cannot open its new file: no error escapes, and it does not retry at every line', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (err: unknown) => unhandled.push(err);
    process.on('unhandledRejection', onUnhandled);
    try {
      const path = join(await tempDir('flight-'), 'flight.jsonl');
      const recorder = await FlightRecorder.open(path, { rotateBytes: 300 });
      const opens = vi.spyOn(JsonlWriter, 'open').mockRejectedValue(ioError('EMFILE'));
      await flip(recorder, 20, 5);
      await recorder.close();
      await sleep(20);
      expect(unhandled).toEqual([]);
      expect(opens.mock.calls.length).toBe(1);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('starts no rotation once closing, so no file is opened or moved after close', async () => {
    const path = join(await tempDir('flight-'), 'flight.jsonl');
    const recorder = await FlightRecorder.open(path, { rotateBytes: 10 });
    const open = JsonlWriter.open.bind(JsonlWriter);
    const opened: JsonlWriter[] = [];
    vi.spyOn(JsonlWriter, 'open').mockImplementation(async (p, options) => {
      const writer = await open(p, options);
      opened.push(writer);
      return writer;
    });
    // The actor's start is recorded (a line past the size) while the recorder closes.
    const actor = createActor(toggle, { inspect: recorder.observe }).start();
    await recorder.close();
    await sleep(50);
    expect(opened).toEqual([]);
    expect(await readdir(dirname(path))).toEqual(['flight.jsonl']);
    actor.stop();
  });
});

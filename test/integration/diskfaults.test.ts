import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { IMClient } from '../../src/api/client.js';
import { JsonlWriter } from '../../src/fs/JsonlWriter.js';
import { collect, eventually, makeClient } from '../helpers/clients.js';
import { failWritesOf, ioError } from '../helpers/diskFaults.js';
import { startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('a failing disk', () => {
  it('never sends a message whose send was rejected, even when its lines reached the disk before the error', async () => {
    const server = await startServer();
    const workspacePath = join(await tempDir('ws-'), 'alice');
    const alice = await makeClient(server.url, 'alice', { workspacePath });
    const bob = await makeClient(server.url, 'bob');
    const got = collect(bob);
    await Promise.all([alice.connect(), bob.connect()]);
    // Every line naming the message is written in full, then the write reports an error.
    await failWritesOf('GHOST', (len) => len, 'EIO');
    await expect(alice.sendMessage({ to: 'bob', text: 'GHOST' })).rejects.toMatchObject({ code: 'STORAGE_IO' });
    vi.restoreAllMocks();
    // (Nothing has left the outbox yet, so closing does not compact the journal: its file stays as written.)
    await alice.close();
    // After a restart nothing of it is replayed: not to the contact, not into the history.
    const again = await makeClient(server.url, 'alice', { workspacePath });
    await again.connect();
    await again.sendMessage({ to: 'bob', text: 'after', waitFor: 'delivered' });
    await eventually(() => got.some((m) => m.text === 'after'), 10_000, 'the message after');
    expect(got.map((m) => m.text)).toEqual(['after']);
    expect((await again.getConversationHistory({ contactId: 'bob' })).map((m) => m.text)).toEqual(['after']);
  });

  it('closes the workspace, freeing it for the next client, even when the flight recorder fails to close', async () => {
    const server = await startServer();
    const workspacePath = join(await tempDir('ws-'), 'alice');
    // The flight record's file is closed, and its close reports an error.
    const open = JsonlWriter.open.bind(JsonlWriter);
    vi.spyOn(JsonlWriter, 'open').mockImplementation(async (path, options) => {
      const writer = await open(path, options);
      if (path.endsWith('flight.jsonl')) {
        const close = writer.close.bind(writer);
        writer.close = async () => {
          await close();
          throw ioError('EIO');
        };
      }
      return writer;
    });
    const alice = new IMClient({ workspacePath, imServerUrl: server.url, agentId: 'alice', flightRecorder: true });
    await alice.connect();
    // The record is a debugging aid: its failure does not fail the client's close.
    await expect(alice.close()).resolves.toBeUndefined();
    vi.restoreAllMocks();
    const again = await makeClient(server.url, 'alice', { workspacePath });
    await again.connect();
    await again.sendMessage({ to: 'alice', text: 'still mine', waitFor: 'acked' });
  });
});

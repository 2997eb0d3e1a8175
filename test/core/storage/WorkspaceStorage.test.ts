import { access, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { StorageCorruptError, WorkspaceLockedError } from '../../../src/errors.js';
import { WorkspaceStorage } from '../../../src/core/storage/WorkspaceStorage.js';
import { tempDir } from '../../helpers/tmp.js';

async function open(workspacePath: string, agentId = 'agent_001'): Promise<WorkspaceStorage> {
  const s = await WorkspaceStorage.open({ workspacePath, agentId, imServerUrl: 'http://127.0.0.1:8080' });
  onTestFinished(() => s.close());
  return s;
}

describe('WorkspaceStorage', () => {
  it('lays out the seed files under {workspace}/im_client', async () => {
    const ws = await tempDir('ws-');
    const s = await open(ws);
    const now = new Date().toISOString();
    await s.contacts.put({ contactId: 'agent_002', name: '助理 Agent', description: '负责数据分析的助理', addedAt: now, updatedAt: now });
    await s.conversations.append('agent_001+agent_002', [
      { type: 'message', id: 'msg_00000001', conversationId: 'agent_001+agent_002', direction: 'out', from: 'agent_001', to: 'agent_002', text: '你好', sentAt: now, status: 'queued' },
    ]);
    await s.close();
    const root = join(ws, 'im_client');
    expect((await readdir(root)).sort()).toEqual(['config.json', 'contacts.json', 'conversations', 'outbox.jsonl', 'queue']);
    expect(await readdir(join(root, 'conversations'))).toEqual(['agent_001+agent_002.jsonl']);
    expect((await readdir(join(root, 'queue'))).sort()).toEqual(['pending.json', 'pending.log.jsonl']);
    expect(JSON.parse(await readFile(join(root, 'config.json'), 'utf8'))).toMatchObject({ version: 1, agentId: 'agent_001', imServerUrl: 'http://127.0.0.1:8080' });
    expect(JSON.parse(await readFile(join(root, 'contacts.json'), 'utf8'))).toMatchObject({
      version: 1,
      contacts: [{ contactId: 'agent_002', name: '助理 Agent', description: '负责数据分析的助理' }],
    });
    expect(JSON.parse(await readFile(join(root, 'queue', 'pending.json'), 'utf8'))).toEqual({ version: 1, items: [] });
    // The lock is released on close.
    await expect(access(join(root, 'client.lock'))).rejects.toThrow();
  });

  it('expands ~ to the home directory', async () => {
    const home = await tempDir('home-');
    const saved = process.env.HOME;
    process.env.HOME = home;
    try {
      const s = await WorkspaceStorage.open({ workspacePath: '~/.gateway/workspaces/user_001', agentId: 'agent_001' });
      expect(s.paths.root).toBe(join(home, '.gateway', 'workspaces', 'user_001', 'im_client'));
      await s.close();
      await access(join(home, '.gateway/workspaces/user_001/im_client/config.json'));
    } finally {
      process.env.HOME = saved;
    }
  });

  it('refuses a second open of the same workspace while the first is open', async () => {
    const ws = await tempDir('ws-');
    await open(ws);
    await expect(WorkspaceStorage.open({ workspacePath: ws, agentId: 'agent_001' })).rejects.toBeInstanceOf(WorkspaceLockedError);
  });

  it('refuses a workspace that belongs to another agent, and releases the lock', async () => {
    const ws = await tempDir('ws-');
    await (await open(ws, 'agent_001')).close();
    await expect(WorkspaceStorage.open({ workspacePath: ws, agentId: 'agent_002' })).rejects.toMatchObject({ code: 'WORKSPACE_MISMATCH' });
    const again = await open(ws, 'agent_001');
    expect(again.config.agentId).toBe('agent_001');
  });

  it('refuses a bad agent id before touching the disk', async () => {
    const ws = await tempDir('ws-');
    await expect(WorkspaceStorage.open({ workspacePath: ws, agentId: '../escape' })).rejects.toMatchObject({ code: 'INVALID_ID' });
    expect(await readdir(ws)).toEqual([]);
  });

  it('refuses to open over a corrupt contacts.json and leaves it untouched', async () => {
    const ws = await tempDir('ws-');
    await (await open(ws)).close();
    const file = join(ws, 'im_client', 'contacts.json');
    await writeFile(file, '{"version":1,"contacts":[{"contactId":"agent_002"');
    const err = await WorkspaceStorage.open({ workspacePath: ws, agentId: 'agent_001' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageCorruptError);
    expect((err as StorageCorruptError).file).toBe(file);
    expect(await readFile(file, 'utf8')).toBe('{"version":1,"contacts":[{"contactId":"agent_002"');
    // The failed open did not keep the lock.
    await expect(access(join(ws, 'im_client', 'client.lock'))).rejects.toThrow();
  });

  it('never resolves a conversation file outside the conversations folder', async () => {
    const s = await open(await tempDir('ws-'));
    for (const bad of ['../config', '../../etc/passwd', 'a/b', '.', '..', '']) {
      expect(() => s.paths.conversation(bad)).toThrow(expect.objectContaining({ code: 'INVALID_ID' }));
      await expect(s.conversations.append(bad, [])).rejects.toMatchObject({ code: 'INVALID_ID' });
      await expect(s.conversations.history(bad, { limit: 1 })).rejects.toMatchObject({ code: 'INVALID_ID' });
    }
  });
});

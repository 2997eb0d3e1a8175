import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IMClientError } from '../../src/errors.js';
import { CloseCode } from '../../src/protocol/codes.js';
import { IMServer } from '../../src/server/IMServer.js';
import { RawClient } from '../helpers/RawClient.js';
import { msgId, startServer } from '../helpers/server.js';
import { tempDir } from '../helpers/tmp.js';

async function tokensFile(tokens: Record<string, string>): Promise<string> {
  const file = join(await tempDir(), 'tokens.json');
  await writeFile(file, JSON.stringify(tokens));
  return file;
}

describe('auth', () => {
  it('accepts a listed agent with its token', async () => {
    const server = await startServer({ tokensFile: await tokensFile({ agent_001: 's3cret-1', agent_002: 's3cret-2' }) });
    const c = await RawClient.login(server.url, 'agent_001', { token: 's3cret-1' });
    expect(c.welcome.agentId).toBe('agent_001');
    c.close();
  });

  it.each([
    ['a wrong token', 'agent_001', 'nope'],
    ['no token', 'agent_001', undefined],
    ['an unlisted agent', 'agent_999', 's3cret-1'],
  ])('refuses %s with unauthorized and close 4001', async (_, agentId, token) => {
    const server = await startServer({ tokens: { agent_001: 's3cret-1' } });
    const c = await RawClient.open(server.url);
    c.send({ type: 'hello', protocol: 1, agentId, ...(token ? { token } : {}) });
    expect(await c.next('error')).toMatchObject({ code: 'unauthorized', fatal: true });
    expect((await c.closed).code).toBe(CloseCode.UNAUTHORIZED);
  });

  it('nacks messages to agents not in the tokens file as unknown_recipient, not retryable', async () => {
    const server = await startServer({ tokens: { agent_001: 's3cret-1', agent_002: 's3cret-2' } });
    const c = await RawClient.login(server.url, 'agent_001', { token: 's3cret-1' });
    c.send({ type: 'send', id: msgId(1), to: 'agent_404', text: 'hi' });
    expect(await c.next('nack')).toMatchObject({ id: msgId(1), code: 'unknown_recipient', retryable: false });
    c.send({ type: 'send', id: msgId(2), to: 'agent_002', text: 'hi' });
    expect(await c.next('ack')).toMatchObject({ id: msgId(2), seq: 1 });
    c.close();
  });

  it('in open mode, any valid agent id is addressable before it ever connects', async () => {
    const server = await startServer();
    const c = await RawClient.login(server.url, 'agent_001');
    c.send({ type: 'send', id: msgId(1), to: 'never_seen_agent', text: 'hi' });
    expect(await c.next('ack')).toMatchObject({ id: msgId(1), seq: 1 });
    c.close();
  });

  it('refuses to bind a non-loopback host in open mode, with a clear message', async () => {
    const dataDir = await tempDir();
    const err = await IMServer.start({ host: '0.0.0.0', port: 0, dataDir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IMClientError);
    expect((err as IMClientError).code).toBe('SERVER_ERROR');
    expect((err as Error).message).toMatch(/open mode.*--tokens/s);
  });

  it('binds a non-loopback host when tokens are given', async () => {
    const server = await startServer({ host: '0.0.0.0', tokens: { agent_001: 'x' } });
    expect(server.port).toBeGreaterThan(0);
  });

  it('rejects a malformed tokens file naming it', async () => {
    const file = await tokensFile({ '../bad': 'x' });
    const err = await IMServer.start({ port: 0, dataDir: await tempDir(), tokensFile: file }).catch((e: unknown) => e);
    expect((err as Error).message).toContain(file);
  });
});

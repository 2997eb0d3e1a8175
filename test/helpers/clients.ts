import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import { IMClient } from '../../src/api/client.js';
import type { IMClientOptions } from '../../src/api/options.js';
import type { IMMessage } from '../../src/core/IMMessage.js';
import { tempDir } from './tmp.js';

/** A client with a fresh temp workspace (or the given one), closed when the test finishes. Fast reconnects. */
export async function makeClient(imServerUrl: string, agentId: string, options: Partial<IMClientOptions> = {}): Promise<IMClient> {
  const client = new IMClient({
    workspacePath: options.workspacePath ?? join(await tempDir('ws-'), agentId),
    imServerUrl,
    agentId,
    reconnect: { baseMs: 50, maxMs: 500 },
    ...options,
  });
  onTestFinished(() => client.close());
  return client;
}

/** Polls `check` until it returns a truthy value (returned), or fails after `timeoutMs`. */
type Truthy<T> = Exclude<T, false | null | undefined | 0 | ''>;

export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 10_000, what = 'condition'): Promise<Truthy<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as Truthy<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Collects the messages a client receives. */
export function collect(client: IMClient): IMMessage[] {
  const got: IMMessage[] = [];
  client.onMessage((m) => got.push(m));
  return got;
}

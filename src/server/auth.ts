import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { IMClientError } from '../errors.js';
import { AgentId } from '../protocol/ids.js';
import { summarizeIssues } from '../validation.js';

/** A tokens file: a JSON object mapping each agent id to its secret token. */
export const TokensFile = z.record(AgentId, z.string().min(1).max(4096));
export type TokensFile = z.infer<typeof TokensFile>;

/** Reads and validates a tokens file; errors name the file and the problem. */
export async function loadTokensFile(path: string): Promise<Map<string, string>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new IMClientError('SERVER_ERROR', `cannot read tokens file ${path}: ${(err as Error).message}`, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new IMClientError('SERVER_ERROR', `tokens file ${path} is not valid JSON`);
  }
  const parsed = TokensFile.safeParse(json);
  if (!parsed.success) {
    throw new IMClientError('SERVER_ERROR', `tokens file ${path}: ${summarizeIssues(parsed.error)} (expected {"agent_id": "token", ...})`);
  }
  return new Map(Object.entries(parsed.data));
}

/**
 * Who may log in and who can be addressed. Without tokens (open mode) every
 * valid agent id may log in and receive; with tokens only the listed agents,
 * each with its own token.
 */
export class Authenticator {
  readonly #tokens: Map<string, Buffer> | undefined;

  constructor(tokens: Map<string, string> | undefined) {
    this.#tokens = tokens && new Map([...tokens].map(([agent, token]) => [agent, digest(token)]));
  }

  get openMode(): boolean {
    return this.#tokens === undefined;
  }

  /** Whether `agentId` may log in with `token`. Compares in constant time. */
  verify(agentId: string, token: string | undefined): boolean {
    if (!this.#tokens) return true;
    const expected = this.#tokens.get(agentId);
    if (!expected || token === undefined) return false;
    return timingSafeEqual(expected, digest(token));
  }

  /** Whether messages can be sent to `agentId`. */
  isAddressable(agentId: string): boolean {
    return !this.#tokens || this.#tokens.has(agentId);
  }
}

function digest(token: string): Buffer {
  // Hashing first gives equal-length buffers, as timingSafeEqual requires.
  return createHash('sha256').update(token).digest();
}

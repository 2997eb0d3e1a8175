import { homedir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { InvalidOptionError } from '../errors.js';

/**
 * Resolves a path as a user writes it: a leading `~` is the home directory
 * (the seed's `~/.gateway/workspaces/user_001`), a relative path is taken
 * from the current directory. `option` names the option in errors.
 *
 * @example
 * ```ts
 * resolveUserPath('~/.gateway/workspaces/user_001', 'workspacePath'); // '/home/me/.gateway/workspaces/user_001'
 * ```
 */
export function resolveUserPath(path: string, option: string): string {
  if (typeof path !== 'string' || path.trim() === '') {
    throw new InvalidOptionError(option, 'expected a non-empty path');
  }
  if (path === '~') return homedir();
  if (path.startsWith('~/') || path.startsWith(`~${sep}`)) return join(homedir(), path.slice(2));
  return resolve(path);
}

import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

interface Reply {
  id?: number;
  result?: unknown;
  error?: string;
  event?: string;
  data?: unknown;
}

/**
 * A benchmark process (`bench/peer.ts`, `bench/swarm.ts`) driven over IPC, driven over IPC:
 * `call` runs one of its commands and resolves with the result; `on` receives
 * the events it reports (received messages, state changes).
 */
export class PeerProcess {
  readonly #child: ChildProcess;
  readonly #calls = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly #listeners = new Map<string, (data: never) => void>();
  #next = 0;
  readonly exited: Promise<void>;

  private constructor(child: ChildProcess) {
    this.#child = child;
    child.on('message', (message: Reply) => {
      if (message.event !== undefined) {
        this.#listeners.get(message.event)?.(message.data as never);
        return;
      }
      const call = this.#calls.get(message.id!);
      if (!call) return;
      this.#calls.delete(message.id!);
      if (message.error !== undefined) call.reject(new Error(message.error));
      else call.resolve(message.result);
    });
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        for (const call of this.#calls.values()) call.reject(new Error(`peer exited (${code ?? signal})`));
        this.#calls.clear();
        resolve();
      }),
    );
  }

  /** Forks `bench/{script}.ts` (a peer by default); `nodeArgs` go to node (e.g. `--expose-gc`). */
  static start(nodeArgs: string[] = [], script = 'peer'): PeerProcess {
    const { path, execArgv } = benchScript(`../${script}`);
    return new PeerProcess(fork(path, [], { execArgv: [...execArgv, ...nodeArgs], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  }

  /** The peer's process id, to account its CPU time. */
  get pid(): number | undefined {
    return this.#child.pid;
  }

  call<T = unknown>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.#next;
    return new Promise<T>((resolve, reject) => {
      this.#calls.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#child.send({ id, cmd, args });
    });
  }

  on<T>(event: string, listener: (data: T) => void): void {
    this.#listeners.set(event, listener as (data: never) => void);
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGTERM');
    await this.exited;
  }
}

/**
 * A script of the benchmark next to this file: compiled JavaScript when the
 * benchmark runs compiled (`npm run bench`, as in production), TypeScript
 * through tsx when it runs from source.
 */
export function benchScript(relative: string): { path: string; execArgv: string[] } {
  const compiled = import.meta.url.endsWith('.js');
  return {
    path: fileURLToPath(new URL(`${relative}.${compiled ? 'js' : 'ts'}`, import.meta.url)),
    execArgv: compiled ? [] : ['--import', 'tsx'],
  };
}

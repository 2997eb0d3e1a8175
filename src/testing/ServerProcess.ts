import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { IMClientError } from '../errors.js';

/** Options of {@link ServerProcess.start}. */
export interface ServerProcessOptions {
  /** Data directory of the server (required: a test owns its data). */
  dataDir: string;
  /** Port to bind; 0 picks a free one. Pass the previous port to restart "the same" server. @default 0 */
  port?: number;
  /** Extra command-line flags, e.g. `['--heartbeat-ms', '500']`. */
  args?: string[];
  /** Flags for node itself, e.g. `['--cpu-prof']` to profile the server. */
  nodeArgs?: string[];
  /** How long to wait for "listening on". @default 15000 */
  startTimeoutMs?: number;
}

/**
 * The reference server in a child process, as in production: tests can
 * SIGKILL it mid-stream and start it again over the same data directory.
 * It stops when the process that started it exits, however that exits
 * (`--stop-on-stdin-close`), so a killed test run leaves no server behind.
 *
 * @example
 * ```ts
 * const server = await ServerProcess.start({ dataDir });
 * // ... clients use server.url ...
 * server.kill('SIGKILL');
 * const again = await ServerProcess.start({ dataDir, port: server.port });
 * ```
 */
export class ServerProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly port: number;
  /** Everything the server wrote, for diagnostics. */
  readonly output: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(child: ChildProcess, url: string, output: string[], exited: ServerProcess['exited']) {
    this.child = child;
    this.url = url;
    this.port = Number(new URL(url).port);
    this.output = output;
    this.exited = exited;
  }

  static async start(options: ServerProcessOptions): Promise<ServerProcess> {
    const { command, args } = cliCommand();
    // The server's stdin is a pipe from this process it never reads data from: when this process
    // goes, even SIGKILLed, the pipe closes and the server shuts down instead of living on.
    const child = spawn(
      command,
      [...(options.nodeArgs ?? []), ...args, '--port', String(options.port ?? 0), '--data-dir', options.dataDir, '--stop-on-stdin-close', ...(options.args ?? [])],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    const output: string[] = [];
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new IMClientError('TIMEOUT', `server did not start within ${options.startTimeoutMs ?? 15000} ms:\n${output.join('')}`)),
        options.startTimeoutMs ?? 15000,
      );
      const onData = (chunk: Buffer) => {
        const text = chunk.toString();
        output.push(text);
        const m = /listening on (http:\/\/\S+)/.exec(output.join(''));
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', (c: Buffer) => output.push(c.toString()));
      void exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new IMClientError('SERVER_ERROR', `server exited (${code ?? signal}) before listening:\n${output.join('')}`));
      });
    });
    return new ServerProcess(child, url, output, exited);
  }

  /** Sends a signal and waits for the process to exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}

/** How to run the server CLI: from source through tsx in development, compiled JS when installed. */
function cliCommand(): { command: string; args: string[] } {
  const self = fileURLToPath(import.meta.url);
  if (self.endsWith('.ts')) {
    return { command: process.execPath, args: ['--import', 'tsx', fileURLToPath(new URL('../server/cli.ts', import.meta.url))] };
  }
  return { command: process.execPath, args: [fileURLToPath(new URL('../server/cli.js', import.meta.url))] };
}

import { createActor, type Actor, type InspectionEvent } from 'xstate';
import type { Clock } from '../Clock.js';
import type { BackoffPolicy } from '../../../machines/backoff.js';
import { connectionMachine, type ConnectionProblem } from '../../../machines/connection.js';
import { PROTOCOL_VERSION } from '../../protocol/codes.js';
import type { HelloFrame, ResumeCursor } from '../../protocol/handshake.js';
import type { Link } from './Link.js';
import { createSocketActor, type FrameHandlers } from './socketActor.js';

/** Where the connection is; the states of the connection statechart, flattened. */
export type ConnectionState = 'disconnected' | 'connecting' | 'handshaking' | 'online' | 'backoff' | 'failed' | 'closed';

/** A change of {@link ConnectionState}. */
export interface ConnectionStateChange {
  oldState: ConnectionState;
  newState: ConnectionState;
  /** Why the connection left `online` or could not reach it, when known. */
  problem: ConnectionProblem | null;
  /** In `backoff`: when the next attempt starts, epoch ms. */
  retryAt: number | null;
}

/** What the connection manager needs. */
export interface ConnectionManagerOptions {
  url: string;
  agentId: string;
  token?: string | undefined;
  link: Link;
  handlers: FrameHandlers;
  /** The resume cursor to put in `hello`, read at each handshake. */
  resume: () => ResumeCursor | undefined;
  backoff?: Partial<BackoffPolicy> | undefined;
  connectTimeoutMs?: number | undefined;
  handshakeTimeoutMs?: number | undefined;
  pongTimeoutMs?: number | undefined;
  /** Ping at most this far apart, even if the server allows longer. */
  heartbeatMs?: number | undefined;
  stableAfterMs?: number | undefined;
  inspect?: ((event: InspectionEvent) => void) | undefined;
  clock?: Clock | undefined;
  clientVersion: string;
}

/**
 * The Connection Manager of the seed (connect, heartbeat, reconnect): the
 * connection statechart run as an actor, with the socket actor and the frame
 * writes provided. Its snapshot is the only truth about the connection.
 */
export class ConnectionManager {
  readonly actor: Actor<typeof connectionMachine>;
  readonly #listeners = new Set<(change: ConnectionStateChange) => void>();
  #state: ConnectionState = 'disconnected';

  constructor(o: ConnectionManagerOptions) {
    const machine = connectionMachine.provide({
      actors: { socket: createSocketActor({ url: o.url, link: o.link, handlers: o.handlers }) },
      actions: {
        sendHello: () => {
          const resume = o.resume();
          const hello: HelloFrame = {
            type: 'hello',
            protocol: PROTOCOL_VERSION,
            agentId: o.agentId,
            ...(o.token === undefined ? {} : { token: o.token }),
            ...(resume === undefined ? {} : { resume }),
            client: { name: 'im-client', version: o.clientVersion },
          };
          o.link.send(hello);
        },
        sendPing: () => {
          o.link.send({ type: 'ping', t: Date.now() });
        },
      },
    });
    this.actor = createActor(machine, {
      id: 'connection',
      input: {
        backoff: o.backoff,
        connectTimeoutMs: o.connectTimeoutMs,
        handshakeTimeoutMs: o.handshakeTimeoutMs,
        pongTimeoutMs: o.pongTimeoutMs,
        heartbeatMs: o.heartbeatMs,
        stableAfterMs: o.stableAfterMs,
      },
      ...(o.inspect ? { inspect: o.inspect } : {}),
      ...(o.clock ? { clock: o.clock } : {}),
    });
    this.actor.subscribe((snapshot) => {
      const next = stateOf(snapshot.value);
      if (next === this.#state) return;
      const change: ConnectionStateChange = {
        oldState: this.#state,
        newState: next,
        problem: snapshot.context.lastProblem,
        retryAt: snapshot.context.retryAt,
      };
      this.#state = next;
      for (const l of this.#listeners) l(change);
    });
    this.actor.start();
  }

  get state(): ConnectionState {
    return this.#state;
  }

  get lastProblem(): ConnectionProblem | null {
    return this.actor.getSnapshot().context.lastProblem;
  }

  /** Subscribes to state changes; returns the unsubscribe function. */
  onChange(listener: (change: ConnectionStateChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  connect(): void {
    this.actor.send({ type: 'CONNECT' });
  }

  reconnectNow(): void {
    this.actor.send({ type: 'RECONNECT_NOW' });
  }

  close(): void {
    this.actor.send({ type: 'CLOSE' });
    this.actor.stop();
  }
}

/** Flattens the machine's state value to a {@link ConnectionState}. */
export function stateOf(value: unknown): ConnectionState {
  if (typeof value === 'string') return value as ConnectionState;
  const session = (value as { session?: unknown }).session;
  if (session === 'connecting' || session === 'handshaking') return session;
  return 'online';
}

import { assign, fromPromise, setup } from 'xstate';

/** What persisting a batch of deliveries produced. */
export interface BatchResult {
  /** Deliveries handled (written, or recognised as already written). */
  count: number;
  /** Highest inbox sequence now durable. */
  upTo: number;
  /** Deliveries still waiting in the buffer (arrived during the write). */
  remaining: number;
}

export interface InboxContext {
  /** Deliveries received and not yet persisted. */
  buffered: number;
  /** Highest inbox sequence durably stored (the cursor). */
  storedUpTo: number;
  /** Consecutive failed attempts to persist. */
  failures: number;
  lastError: string | null;
}

export type InboxEvent =
  /** Deliveries or receipts arrived from the server and wait in the buffer. */
  { type: 'DELIVERED'; count: number };

/**
 * The inbound pipeline: deliveries and receipts arrive, wait in a buffer
 * (`idle` -> `writing`), and are persisted in batches by the `persistBatch`
 * actor: written to the conversation files (and the pending queue) and the
 * cursor moved past them; only then does `acknowledge` send the cumulative
 * `deliver_ack` and hand the messages to callbacks. A failed write
 * (`retrying`) acknowledges nothing and puts the batch back in the buffer;
 * the pipeline tries again after a pause.
 */
export const inboxMachine = setup({
  types: {
    context: {} as InboxContext,
    events: {} as InboxEvent,
    input: {} as { storedUpTo: number },
  },
  actors: {
    /** Persists everything buffered; src provides it. */
    persistBatch: fromPromise<BatchResult>(async () => ({ count: 0, upTo: 0, remaining: 0 })),
  },
  actions: {
    acknowledge: (_, _params: { upTo: number }) => {},
    addBuffered: assign(({ context, event }) => ({ buffered: context.buffered + event.count })),
    recordBatch: assign(({ context }, params: BatchResult) => ({
      buffered: params.remaining,
      storedUpTo: Math.max(context.storedUpTo, params.upTo),
      failures: 0,
      lastError: null,
    })),
    recordFailure: assign(({ context }, params: { error: unknown }) => ({
      failures: context.failures + 1,
      lastError: params.error instanceof Error ? params.error.message : String(params.error),
    })),
  },
  guards: {
    // The buffer's own count, not a tally of events: it cannot drift into an endless loop.
    moreBuffered: (_, params: BatchResult) => params.remaining > 0,
  },
  delays: {
    // 100 ms, doubling per consecutive failure, at most 5 s.
    retryDelay: ({ context }) => Math.min(5000, 100 * 2 ** Math.max(0, context.failures - 1)),
  },
}).createMachine({
  id: 'inbox',
  description:
    'The inbound pipeline: deliveries and receipts are buffered and persisted in batches (conversation files, pending queue, cursor) before the cumulative `deliver_ack` and the callbacks; a failed write keeps the batch and retries after a growing pause.',
  initial: 'idle',
  context: ({ input }) => ({ buffered: 0, storedUpTo: input.storedUpTo, failures: 0, lastError: null }),
  states: {
    idle: {
      on: { DELIVERED: { target: 'writing', actions: 'addBuffered' } },
    },
    writing: {
      on: { DELIVERED: { actions: 'addBuffered' } },
      invoke: {
        id: 'persistBatch',
        src: 'persistBatch',
        onDone: [
          {
            guard: { type: 'moreBuffered', params: ({ event }) => event.output },
            target: 'writing',
            reenter: true,
            actions: [
              { type: 'recordBatch', params: ({ event }) => event.output },
              { type: 'acknowledge', params: ({ event }) => ({ upTo: event.output.upTo }) },
            ],
          },
          {
            target: 'idle',
            actions: [
              { type: 'recordBatch', params: ({ event }) => event.output },
              { type: 'acknowledge', params: ({ event }) => ({ upTo: event.output.upTo }) },
            ],
          },
        ],
        onError: { target: 'retrying', actions: { type: 'recordFailure', params: ({ event }) => ({ error: event.error }) } },
      },
    },
    retrying: {
      on: { DELIVERED: { actions: 'addBuffered' } },
      after: { retryDelay: 'writing' },
    },
  },
});

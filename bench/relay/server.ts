/**
 * The baseline: a minimal WebSocket relay with JSON acks.
 * `ws://host:port/?id=agent` registers a peer; a `{"type":"send","id","to","text"}`
 * frame is forwarded to `to` as `{"type":"deliver","id","from","text"}` and
 * acked to the sender with `{"type":"ack","id"}`. Nothing is redelivered.
 *
 * `server.js PORT` stores nothing: the floor of what any messaging layer costs
 * on loopback. `server.js PORT FILE` is the simplest durable relay: the sends
 * that arrive while a write is under way are appended to FILE as JSON lines
 * with one synced write (group commit), and only then forwarded and acked. As
 * im-client's files, FILE is opened with `O_DSYNC` on Linux (one trip to the
 * thread pool per batch), elsewhere written and then `fdatasync`ed. No client
 * persists anything in either mode.
 *
 * Run as a child process: prints `listening on ws://127.0.0.1:PORT`.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { WebSocketServer, type WebSocket } from 'ws';

interface Send {
  from: string;
  socket: WebSocket;
  frame: { type: string; id: string; to: string; text: string };
}

const peers = new Map<string, WebSocket>();
const synced = process.platform === 'linux' && typeof constants.O_DSYNC === 'number' && constants.O_DSYNC !== 0;
const flags = synced ? constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_DSYNC : 'a';
const file: FileHandle | undefined = process.argv[3] ? await open(process.argv[3], flags, 0o644) : undefined;
let batch: Send[] = [];
let writing = false;

function relay(send: Send): void {
  peers.get(send.frame.to)?.send(JSON.stringify({ type: 'deliver', id: send.frame.id, from: send.from, text: send.frame.text }));
  send.socket.send(JSON.stringify({ type: 'ack', id: send.frame.id }));
}

/** Writes and syncs what has arrived, relays it, and goes on while more came meanwhile. */
async function commit(handle: FileHandle): Promise<void> {
  writing = true;
  while (batch.length > 0) {
    const sends = batch;
    batch = [];
    // appendFile writes until all is written (a short write goes on where it stopped).
    await handle.appendFile(sends.map((s) => `${JSON.stringify({ from: s.from, ...s.frame })}\n`).join(''));
    if (!synced) await handle.datasync();
    for (const s of sends) relay(s);
  }
  writing = false;
}

const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.argv[2] ?? 0) });

wss.on('connection', (socket, request) => {
  const id = new URL(request.url ?? '/', 'ws://x').searchParams.get('id') ?? '';
  peers.set(id, socket);
  socket.on('message', (data) => {
    const frame = JSON.parse(String(data)) as Send['frame'];
    if (frame.type !== 'send') return;
    if (!file) return relay({ from: id, socket, frame });
    batch.push({ from: id, socket, frame });
    if (!writing) {
      commit(file).catch((err: unknown) => {
        // A relay that cannot store fails the run loudly rather than leave its peers waiting.
        console.error('relay: write failed:', err);
        process.exit(1);
      });
    }
  });
  socket.on('close', () => {
    if (peers.get(id) === socket) peers.delete(id);
  });
});

wss.on('listening', () => {
  const address = wss.address();
  if (address && typeof address === 'object') console.log(`listening on ws://127.0.0.1:${address.port}`);
});

process.on('SIGTERM', () => wss.close(() => process.exit(0)));
// Started with stdin piped from the orchestrator: when it goes, even SIGKILLed, so does the relay.
process.stdin.on('close', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();

/**
 * The baseline: a minimal WebSocket relay with JSON acks and no persistence.
 * `ws://host:port/?id=agent` registers a peer; a `{"type":"send","id","to","text"}`
 * frame is forwarded to `to` as `{"type":"deliver","id","from","text"}` and
 * acked to the sender with `{"type":"ack","id"}`. Nothing is stored, nothing
 * redelivered: it is the floor of what any messaging layer costs on loopback.
 *
 * Run as a child process: prints `listening on ws://127.0.0.1:PORT`.
 */
import { WebSocketServer, type WebSocket } from 'ws';

const peers = new Map<string, WebSocket>();
const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.argv[2] ?? 0) });

wss.on('connection', (socket, request) => {
  const id = new URL(request.url ?? '/', 'ws://x').searchParams.get('id') ?? '';
  peers.set(id, socket);
  socket.on('message', (data) => {
    const frame = JSON.parse(String(data)) as { type: string; id: string; to: string; text: string };
    if (frame.type !== 'send') return;
    peers.get(frame.to)?.send(JSON.stringify({ type: 'deliver', id: frame.id, from: id, text: frame.text }));
    socket.send(JSON.stringify({ type: 'ack', id: frame.id }));
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

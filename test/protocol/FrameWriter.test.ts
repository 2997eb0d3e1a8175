import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { FrameWriter } from '../../src/protocol/FrameWriter.js';

/** A real WebSocket pair on loopback; `received` collects what the server side got, message by message. */
async function pair() {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  const received: string[] = [];
  const binary: boolean[] = [];
  server.on('connection', (s) =>
    s.on('message', (d, isBinary) => {
      received.push(d.toString());
      binary.push(isBinary);
    }),
  );
  const { port } = server.address() as { port: number };
  const socket = new WebSocket(`ws://127.0.0.1:${port}`);
  await once(socket, 'open');
  cleanups.push(async () => {
    socket.terminate();
    await new Promise((r) => server.close(r));
  });
  const until = async (n: number) => {
    const deadline = Date.now() + 2000;
    while (received.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    return received;
  };
  return { socket, received, binary, until };
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

describe('FrameWriter', () => {
  it('sends the frames of one turn of the event loop as one batch, in order, and a lone frame as itself', async () => {
    const { socket, until } = await pair();
    const writer = new FrameWriter(socket);
    const written: number[] = [];
    writer.write('{"type":"ping","t":1}', () => written.push(1));
    writer.write('{"type":"ping","t":2}');
    writer.write('{"type":"ping","t":3}', () => written.push(3));
    await new Promise((r) => setTimeout(r, 20));
    writer.write('{"type":"ping","t":4}');
    const got = await until(2);
    expect(got).toEqual(['[{"type":"ping","t":1},{"type":"ping","t":2},{"type":"ping","t":3}]', '{"type":"ping","t":4}']);
    expect(written).toEqual([1, 3]);
  });

  it('starts a new batch before one would pass its byte or frame cap', async () => {
    const frame = (i: number) => JSON.stringify({ type: 'ping', t: i, pad: 'x'.repeat(20) }); // 50 bytes
    const sizes = (messages: string[]) => messages.map((m) => JSON.parse(m) as unknown).map((b) => (Array.isArray(b) ? b.length : 1));
    // Two frames make a 103-byte batch: the byte cap of 103 takes two, not three.
    const bytes = await pair();
    const byBytes = new FrameWriter(bytes.socket, { maxBatchBytes: 103 });
    for (let i = 0; i < 7; i++) byBytes.write(frame(i));
    const got = await bytes.until(4);
    expect(sizes(got)).toEqual([2, 2, 2, 1]);
    expect(got.flatMap((m) => [JSON.parse(m)].flat()).map((f) => (f as { t: number }).t)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    for (const m of got) expect(Buffer.byteLength(m)).toBeLessThanOrEqual(103);
    const frames = await pair();
    const byFrames = new FrameWriter(frames.socket, { maxBatchFrames: 3 });
    for (let i = 0; i < 7; i++) byFrames.write(frame(i));
    expect(sizes(await frames.until(3))).toEqual([3, 3, 1]);
  });

  it('sends text messages, UTF-8 encoded, a frame bigger than the cap alone, and batches of any size', async () => {
    const { socket, binary, until } = await pair();
    const writer = new FrameWriter(socket, { maxBatchBytes: 4096 });
    const frames = [
      JSON.stringify({ type: 'ping', t: '你好，我需要你的帮助 🙂' }),
      JSON.stringify({ type: 'ping', t: 'é'.repeat(3000) }), // 6 KB: bigger than the cap
      ...Array.from({ length: 300 }, (_, i) => JSON.stringify({ type: 'ping', t: `${i} ${'🙂'.repeat(i % 7)}` })),
    ];
    for (const f of frames) writer.write(f);
    await new Promise((r) => setTimeout(r, 20));
    writer.write(frames[0]!);
    const expected = [...frames, frames[0]!];
    const deadline = Date.now() + 2000;
    let got: string[] = [];
    while (Date.now() < deadline) {
      got = (await until(1)).flatMap((m) => [JSON.parse(m) as unknown].flat()).map((f) => JSON.stringify(f));
      if (got.length >= expected.length) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(got).toEqual(expected);
    expect(binary.every((b) => !b)).toBe(true);
    const sizes = (await until(1)).map((m) => Buffer.byteLength(m));
    // Only the one frame over the cap makes a bigger message; it goes alone.
    expect(sizes.filter((n) => n > 4096)).toEqual([Buffer.byteLength(frames[1]!)]);
  });

  it('flush() sends at once, so a frame written just before closing is not lost', async () => {
    const { socket, until } = await pair();
    const writer = new FrameWriter(socket);
    writer.write('{"type":"error","code":"x","message":"bye","fatal":true}');
    expect(writer.pendingBytes).toBeGreaterThan(0);
    writer.flush();
    expect(writer.pendingBytes).toBe(0);
    socket.close(1000);
    expect(await until(1)).toEqual(['{"type":"error","code":"x","message":"bye","fatal":true}']);
  });
});

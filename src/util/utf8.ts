/**
 * The UTF-8 byte length of `text` when it could exceed `limit`; otherwise
 * `text.length`, which is then at most `limit` too. UTF-8 takes at most 3
 * bytes per UTF-16 unit, so a short text needs no exact count: size checks on
 * every message (the client's before a send, the server's on each `send`)
 * skip the encoding pass for all but long texts.
 */
export function utf8LengthIfOver(text: string, limit: number): number {
  return text.length * 3 <= limit ? text.length : Buffer.byteLength(text);
}

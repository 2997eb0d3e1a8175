/**
 * Formats epoch milliseconds as an ISO 8601 string, remembering the last one:
 * a burst of messages within the same millisecond formats it once. Each
 * formatter has its own memory, so two series of times (sent, expires) do
 * not evict each other.
 */
export function isoFormatter(): (ms: number) => string {
  let lastMs = Number.NaN;
  let lastIso = '';
  return (ms) => {
    if (ms !== lastMs) {
      lastMs = ms;
      lastIso = new Date(ms).toISOString();
    }
    return lastIso;
  };
}

/** Copies a context that has exactly the keys it was made for; undefined for any other. */
export type ContextCopier = (context: object) => object | undefined;

const copiers = new Map<string, ContextCopier>();
const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/**
 * A copier for plain-object contexts with exactly these keys: a function
 * with the object literal `{ a: c.a, b: c.b, ... }` written out, which V8
 * builds about ten times faster than the spread `{ ...c }` (measured: 0.13
 * against 0.016 us for the 13 keys of a message's context, checks included),
 * and with fewer bytes. Assigns copy the context on every transition that
 * changes it, so this is on the path of every message.
 *
 * The copier checks what it copies, and answers undefined for anything the
 * literal would not copy the same as the spread (a different set of keys, a
 * prototype other than Object's), so the caller falls back to the spread.
 * Key order follows `keys` (the first context the machine copied). Undefined
 * when a key is not a plain identifier (the literal would need quoting; not
 * worth it for contexts no machine here has).
 */
export function contextCopier(keys: readonly string[]): ContextCopier | undefined {
  if (keys.length === 0 || !keys.every((k) => IDENTIFIER.test(k))) return undefined;
  const id = keys.join(',');
  let copier = copiers.get(id);
  if (!copier) {
    const checks = keys.map((k) => `!(${JSON.stringify(k)} in c)`).join(' || ');
    const literal = keys.map((k) => `${k}: c.${k}`).join(', ');
    // Generated from identifiers only (checked above), never from data.
    copier = new Function(
      'c',
      `if (Object.getPrototypeOf(c) !== Object.prototype) return undefined;
       let n = 0;
       for (const k in c) n++;
       if (n !== ${keys.length} || ${checks}) return undefined;
       return { ${literal} };`,
    ) as ContextCopier;
    copiers.set(id, copier);
  }
  return copier;
}

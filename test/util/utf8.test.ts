import { describe, expect, it } from 'vitest';
import { utf8LengthIfOver } from '../../src/util/utf8.js';

describe('utf8LengthIfOver', () => {
  it('counts exactly whenever the text could be over the limit, and never answers under a limit it exceeds', () => {
    for (const text of ['', 'abc', 'café', '漢字漢字', '😀😀', 'x'.repeat(40)]) {
      const exact = Buffer.byteLength(text);
      for (let limit = 0; limit <= 130; limit++) {
        const n = utf8LengthIfOver(text, limit);
        expect(n > limit).toBe(exact > limit);
        if (text.length * 3 > limit) expect(n).toBe(exact);
      }
    }
  });
});

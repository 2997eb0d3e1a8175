import type { z } from 'zod';

/**
 * One line naming each failing field of a zod error, for error messages and
 * warnings, e.g. `to: agent id: 1-96 of [...]; text: expected string`.
 */
export function summarizeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message))
    .join('; ');
}

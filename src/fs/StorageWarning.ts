/**
 * A problem found while reading a storage file that was skipped rather than
 * thrown: a torn last line after a crash, a hand-edited line that is not valid
 * JSON or not a valid record. The valid lines around it are still read.
 */
export interface StorageWarning {
  /** Absolute path of the file. */
  file: string;
  /** 1-based line number, when the reader knows it (forward reads do). */
  line?: number | undefined;
  /** Byte offset of the start of the line. */
  offset: number;
  /** What was wrong, e.g. `torn last line (incomplete write)`. */
  reason: string;
}

/** Receives storage warnings. */
export type WarningListener = (warning: StorageWarning) => void;

/** Formats a warning as one log line naming file and line. */
export function formatStorageWarning(w: StorageWarning): string {
  const where = w.line !== undefined ? `line ${w.line}` : `byte ${w.offset}`;
  return `${w.file}:${where}: skipped: ${w.reason}`;
}

import { isAbsolute, join, relative, sep } from 'node:path';
import { InvalidIdError } from '../../errors.js';
import { resolveUserPath } from '../../fs/resolveUserPath.js';
import { assertId } from '../../protocol/ids.js';

/**
 * The file layout of one workspace (the seed's, plus the files documented in
 * docs/storage.md). Every path that embeds an id validates the id first, so no
 * id can name a file outside `{workspace}/im_client/`.
 */
export class WorkspacePaths {
  /** `{workspace}` */
  readonly workspace: string;
  /** `{workspace}/im_client` */
  readonly root: string;
  readonly config: string;
  readonly contacts: string;
  readonly conversations: string;
  readonly queue: string;
  readonly pending: string;
  readonly pendingLog: string;
  readonly outbox: string;
  readonly cursor: string;
  /** Changes to the cursor since `cursor.json` was last written (see LoggedJsonFile). */
  readonly cursorLog: string;
  readonly lock: string;
  /** The flight record (only with the client's `flightRecorder` option). */
  readonly flight: string;

  constructor(workspacePath: string) {
    this.workspace = resolveUserPath(workspacePath, 'workspacePath');
    this.root = join(this.workspace, 'im_client');
    this.config = join(this.root, 'config.json');
    this.contacts = join(this.root, 'contacts.json');
    this.conversations = join(this.root, 'conversations');
    this.queue = join(this.root, 'queue');
    this.pending = join(this.queue, 'pending.json');
    this.pendingLog = join(this.queue, 'pending.log.jsonl');
    this.outbox = join(this.root, 'outbox.jsonl');
    this.cursor = join(this.root, 'cursor.json');
    this.cursorLog = join(this.root, 'cursor.log.jsonl');
    this.lock = join(this.root, 'client.lock');
    this.flight = join(this.root, 'flight.jsonl');
  }

  /** `conversations/{conversationId}.jsonl`; throws InvalidIdError for a bad id. */
  conversation(conversationId: string): string {
    assertId('conversationId', conversationId);
    const file = join(this.conversations, `${conversationId}.jsonl`);
    // The id rules already exclude separators; this is the belt to those braces.
    const rel = relative(this.conversations, file);
    if (rel.startsWith('..') || isAbsolute(rel) || rel.includes(sep)) {
      throw new InvalidIdError('conversationId', conversationId, 'resolves outside the conversations folder');
    }
    return file;
  }
}

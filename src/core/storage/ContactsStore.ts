import { IMClientError } from '../../errors.js';
import { JsonFile } from '../../fs/JsonFile.js';
import { summarizeIssues } from '../../validation.js';
import { Contact, ContactsFile } from './records.js';

/**
 * `contacts.json`: the agent's contact list, held in memory and replaced
 * atomically on every change.
 */
export class ContactsStore {
  readonly #file: JsonFile<typeof ContactsFile>;
  readonly #contacts: Map<string, Contact>;

  private constructor(file: JsonFile<typeof ContactsFile>, contacts: Contact[]) {
    this.#file = file;
    this.#contacts = new Map(contacts.map((c) => [c.contactId, c]));
  }

  /** Loads the file; a corrupt file throws StorageCorruptError and is left untouched. */
  static async open(path: string): Promise<ContactsStore> {
    const file = new JsonFile(path, ContactsFile);
    return new ContactsStore(file, (await file.read())?.contacts ?? []);
  }

  list(): Contact[] {
    return [...this.#contacts.values()];
  }

  get(contactId: string): Contact | undefined {
    return this.#contacts.get(contactId);
  }

  /** Inserts or replaces a contact; resolves once the file is durable. Throws INVALID_OPTION for an invalid contact. */
  async put(contact: Contact): Promise<void> {
    const parsed = Contact.safeParse(contact);
    if (!parsed.success) throw new IMClientError('INVALID_OPTION', `invalid contact: ${summarizeIssues(parsed.error)}`);
    this.#contacts.set(contact.contactId, parsed.data);
    await this.#save();
  }

  /** Removes a contact; resolves to whether it existed. */
  async remove(contactId: string): Promise<boolean> {
    if (!this.#contacts.delete(contactId)) return false;
    await this.#save();
    return true;
  }

  #save(): Promise<void> {
    return this.#file.write({ version: 1, contacts: this.list() });
  }
}

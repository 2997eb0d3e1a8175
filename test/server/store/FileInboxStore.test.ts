import { join } from 'node:path';
import { FileInboxStore } from '../../../src/server/store/FileInboxStore.js';
import { tempDir } from '../../helpers/tmp.js';
import { inboxStoreContract } from './contract.js';

const dirs = new Map<string, string>();
inboxStoreContract(
  'FileInboxStore',
  async (key) => {
    if (!dirs.has(key)) dirs.set(key, join(await tempDir('store-'), 'data'));
    return new FileInboxStore({ dataDir: dirs.get(key)!, segmentBytes: 512 });
  },
  { durable: true },
);

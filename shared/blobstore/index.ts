import type { BlobStore } from './blob-store.ts';
import { FilesystemBlobStore } from './filesystem.ts';
import { S3BlobStore, type S3BlobStoreOptions } from './s3.ts';

export * from './blob-store.ts';
export { FilesystemBlobStore } from './filesystem.ts';
export { S3BlobStore } from './s3.ts';

export type BlobStoreConfig = { kind: 'filesystem'; root: string } | ({ kind: 's3' } & S3BlobStoreOptions);

export async function openBlobStore(config: BlobStoreConfig): Promise<BlobStore> {
  if (config.kind === 'filesystem') return new FilesystemBlobStore(config.root);
  const store = new S3BlobStore(config);
  await store.ensureBucket();
  return store;
}

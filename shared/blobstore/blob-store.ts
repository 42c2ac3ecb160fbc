// Where blob bytes live. Blobs are content-addressed and immutable; uploads are append-only sessions
// written chunk by chunk (one chunk per PATCH) and moved into place once their digest is verified.
import type { Readable, Writable } from 'node:stream';
import type { Digest } from '../digest.ts';

/** Inclusive byte range, as in HTTP `Range: bytes=start-end`. */
export interface ByteRange {
  start: number;
  end: number;
}

/** A blob as the store lists it. */
export interface StoredBlob {
  digest: Digest;
  size: number;
  /** When its bytes were written (the file's mtime, the object's LastModified). */
  modified: Date;
}

/** Start offsets of the chunks an upload received, in order; stores that keep chunks apart need them. */
export type UploadChunks = number[];

export interface BlobStore {
  readonly kind: 'filesystem' | 's3';
  /** The blob's size, or undefined when the store does not have it. */
  stat(digest: Digest): Promise<number | undefined>;
  /** A stream of the blob's bytes (or of a range of them). Throws BlobNotFoundError when absent. */
  read(digest: Digest, range?: ByteRange): Promise<Readable>;
  /**
   * Optional fast path for serving: opens the blob (throwing BlobNotFoundError when absent) for
   * writing to a destination through a few recycled buffers, with no allocation per chunk.
   */
  open?(digest: Digest, range?: ByteRange): Promise<OpenedBlob>;
  /** The blob's file, for stores that keep blobs as local files (workers then read it directly). */
  localPath?(digest: Digest): string;
  delete(digest: Digest): Promise<void>;
  /** The location a blob has in this store, recorded as image_blobs.storage_path. */
  pathOf(digest: Digest): string;
  /**
   * Every blob the store holds, streamed (a directory walk, S3 list pages; never the whole listing in
   * memory), in no particular order. A blob written or deleted meanwhile may or may not be listed; files
   * whose names are not digests are left out. Garbage collection looks for blobs without a row with it.
   */
  list(): AsyncIterable<StoredBlob>;

  createUpload(uploadId: string): Promise<void>;
  /**
   * Writes `source` as the chunk starting at `offset` and resolves to its length. When the source
   * fails midway nothing of the chunk remains, so the upload can resume at `offset`. `observe` sees
   * every chunk of the source, in order (the registry hashes uploads with it).
   */
  writeChunk(
    uploadId: string,
    offset: number,
    source: Readable,
    observe?: (chunk: Buffer) => void,
  ): Promise<number>;
  /**
   * Writes `source` as the part of an upload starting at `offset`, for uploads whose parts arrive in
   * any order (the REST chunked flow); parts never overlap and their offsets are fixed in advance.
   * Resolves to its length. The caller drops a part it does not keep (a failed write, a checksum
   * mismatch) with dropPart; until rewritten, its range holds nothing the caller counts as uploaded.
   */
  writePart(
    uploadId: string,
    offset: number,
    source: Readable,
    observe?: (chunk: Buffer) => void,
  ): Promise<number>;
  /** Forgets the part written at `offset` (see writePart). */
  dropPart(uploadId: string, offset: number): Promise<void>;
  /** All bytes uploaded so far, in order. */
  readUpload(uploadId: string, chunks: UploadChunks, size: number): Promise<Readable>;
  /** Moves a verified upload into place as `digest`; when the blob exists already the upload is dropped. */
  commitUpload(uploadId: string, chunks: UploadChunks, size: number, digest: Digest): Promise<void>;
  deleteUpload(uploadId: string, chunks: UploadChunks): Promise<void>;
  /** Ids of the uploads in the store whose last chunk was written before `before` (abandoned ones, usually). */
  staleUploads(before: Date): Promise<string[]>;
  /** Deletes whatever the store holds of an upload, without knowing its chunks. */
  purgeUpload(uploadId: string): Promise<void>;
  close(): Promise<void>;
}

export interface OpenedBlob {
  /** Writes the bytes to `sink` (without ending it); rejects if the sink closes first. Closes the blob. */
  writeTo(sink: Writable): Promise<void>;
  close(): Promise<void>;
}

export class BlobNotFoundError extends Error {
  constructor(digest: string) {
    super(`blob ${digest} not found in store`);
    this.name = 'BlobNotFoundError';
  }
}

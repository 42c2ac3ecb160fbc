// The production BlobStore: an S3 bucket on Ceph RGW. Blobs at blobs/<alg>/<hex>; each upload chunk is
// its own object under uploads/<id>/ until commit assembles them (server-side where part sizes allow).

import { PassThrough, Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { type Digest, isDigest, parseDigest } from '../digest.ts';
import {
  BlobNotFoundError,
  type BlobStore,
  type ByteRange,
  type StoredBlob,
  type UploadChunks,
} from './blob-store.ts';

export interface S3BlobStoreOptions {
  endpoint?: string | undefined;
  region: string;
  bucket: string;
  accessKeyId?: string | undefined;
  secretAccessKey?: string | undefined;
  /** Multipart part size for streamed writes. */
  partSize: number;
  /** Parts uploaded in parallel per stream. */
  queueSize: number;
  /** Keys per ListObjectsV2 page when listing blobs (S3's most, 1000, when unset). */
  listPageSize?: number | undefined;
}

// S3's rules for multipart uploads: every part but the last at least 5 MiB, a copy of at most 5 GiB.
const MIN_PART_SIZE = 5 * 1024 * 1024;
const MAX_COPY_SIZE = 5 * 1024 * 1024 * 1024;

export class S3BlobStore implements BlobStore {
  readonly kind = 's3';
  private readonly client: S3Client;
  private readonly bucket: string;

  constructor(private readonly options: S3BlobStoreOptions) {
    this.bucket = options.bucket;
    this.client = new S3Client({
      region: options.region,
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      forcePathStyle: true,
      // RGW rejects the SDK's default streaming checksums (411 MissingContentLength).
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      ...(options.accessKeyId && options.secretAccessKey
        ? { credentials: { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey } }
        : {}),
    });
  }

  /** Creates the bucket when it does not exist yet. */
  async ensureBucket(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch {
      await this.client.send(new CreateBucketCommand({ Bucket: this.bucket })).catch((error) => {
        if (error?.name !== 'BucketAlreadyOwnedByYou') throw error;
      });
    }
  }

  pathOf(digest: Digest): string {
    const { algorithm, hex } = parseDigest(digest);
    return `blobs/${algorithm}/${hex}`;
  }

  async stat(digest: Digest): Promise<number | undefined> {
    return this.headSize(this.pathOf(digest));
  }

  async read(digest: Digest, range?: ByteRange): Promise<Readable> {
    try {
      const response = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.pathOf(digest),
          ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
        }),
      );
      return response.Body as Readable;
    } catch (error) {
      if (isMissing(error)) throw new BlobNotFoundError(digest);
      throw error;
    }
  }

  async delete(digest: Digest): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.pathOf(digest) }));
  }

  async *list(): AsyncIterable<StoredBlob> {
    let token: string | undefined;
    do {
      // One page at a time: the next is asked for when this one has been consumed.
      const page = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: 'blobs/',
          ContinuationToken: token,
          MaxKeys: this.options.listPageSize,
        }),
      );
      for (const object of page.Contents ?? []) {
        const [, algorithm, hex] = object.Key!.split('/');
        const digest = `${algorithm}:${hex}`;
        if (!isDigest(digest) || this.pathOf(digest as Digest) !== object.Key) continue;
        // An object of unknown age counts as just written (so a collection keeps it).
        yield {
          digest: digest as Digest,
          size: object.Size ?? 0,
          modified: object.LastModified ?? new Date(),
        };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async createUpload(): Promise<void> {
    // Chunks are separate objects: nothing to prepare.
  }

  async writeChunk(
    uploadId: string,
    offset: number,
    source: Readable,
    observe?: (chunk: Buffer) => void,
  ): Promise<number> {
    let length = 0;
    const counted = new PassThrough({ highWaterMark: 1024 * 1024 });
    source.on('error', (error) => counted.destroy(error));
    source.pipe(counted);
    source.on('data', (chunk: Buffer) => {
      length += chunk.length;
      observe?.(chunk);
    });
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: chunkKey(uploadId, offset), Body: counted },
      partSize: this.options.partSize,
      queueSize: this.options.queueSize,
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } catch (error) {
      await this.deleteKeys([chunkKey(uploadId, offset)]).catch(() => {});
      throw error;
    }
    return length;
  }

  writePart(
    uploadId: string,
    offset: number,
    source: Readable,
    observe?: (chunk: Buffer) => void,
  ): Promise<number> {
    // Every chunk is its own object already, whatever order they come in.
    return this.writeChunk(uploadId, offset, source, observe);
  }

  async dropPart(uploadId: string, offset: number): Promise<void> {
    await this.deleteKeys([chunkKey(uploadId, offset)]);
  }

  async readUpload(uploadId: string, chunks: UploadChunks, size: number): Promise<Readable> {
    const keys = chunks.map((offset) => chunkKey(uploadId, offset));
    const client = this.client;
    const bucket = this.bucket;
    async function* concatenated() {
      for (const key of keys) {
        const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        for await (const piece of response.Body as Readable) yield piece as Buffer;
      }
    }
    return size === 0 ? Readable.from([]) : Readable.from(concatenated());
  }

  async commitUpload(uploadId: string, chunks: UploadChunks, size: number, digest: Digest): Promise<void> {
    const target = this.pathOf(digest);
    if ((await this.headSize(target)) !== size) await this.assemble(uploadId, chunks, size, target);
    await this.deleteUpload(uploadId, chunks);
  }

  async deleteUpload(uploadId: string, chunks: UploadChunks): Promise<void> {
    await this.deleteKeys(chunks.map((offset) => chunkKey(uploadId, offset)));
  }

  async staleUploads(before: Date): Promise<string[]> {
    const newest = await this.uploadObjects();
    return [...newest.entries()].filter(([, entry]) => entry.modified < before).map(([id]) => id);
  }

  async purgeUpload(uploadId: string): Promise<void> {
    const entry = (await this.uploadObjects(uploadId)).get(uploadId);
    if (entry) await this.deleteKeys(entry.keys);
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  /** The chunk objects under uploads/ (of one upload, or all), grouped by upload with their newest write. */
  private async uploadObjects(uploadId?: string): Promise<Map<string, { modified: Date; keys: string[] }>> {
    const uploads = new Map<string, { modified: Date; keys: string[] }>();
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: uploadId ? `uploads/${uploadId}/` : 'uploads/',
          ContinuationToken: token,
        }),
      );
      for (const object of page.Contents ?? []) {
        const id = object.Key!.split('/')[1]!;
        const entry = uploads.get(id) ?? { modified: new Date(0), keys: [] };
        entry.keys.push(object.Key!);
        if (object.LastModified && object.LastModified > entry.modified) entry.modified = object.LastModified;
        uploads.set(id, entry);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return uploads;
  }

  private async assemble(
    uploadId: string,
    chunks: UploadChunks,
    size: number,
    target: string,
  ): Promise<void> {
    const lengths = chunks.map((offset, index) => (chunks[index + 1] ?? size) - offset);
    if (chunks.length === 0) {
      await new Upload({
        client: this.client,
        params: { Bucket: this.bucket, Key: target, Body: Buffer.alloc(0) },
      }).done();
      return;
    }
    if (chunks.length === 1 && size <= MAX_COPY_SIZE) {
      await this.client.send(
        new CopyObjectCommand({
          Bucket: this.bucket,
          Key: target,
          CopySource: `${this.bucket}/${chunkKey(uploadId, chunks[0]!)}`,
        }),
      );
      return;
    }
    const copyable = lengths.every(
      (length, index) => (index === lengths.length - 1 || length >= MIN_PART_SIZE) && length <= MAX_COPY_SIZE,
    );
    if (!copyable) {
      // Small chunks cannot be multipart parts: stream them into the target instead.
      const body = await this.readUpload(uploadId, chunks, size);
      await new Upload({
        client: this.client,
        params: { Bucket: this.bucket, Key: target, Body: body },
        partSize: this.options.partSize,
        queueSize: this.options.queueSize,
      }).done();
      return;
    }
    const { UploadId } = await this.client.send(
      new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: target }),
    );
    try {
      const parts = [];
      for (const [index, offset] of chunks.entries()) {
        const result = await this.client.send(
          new UploadPartCopyCommand({
            Bucket: this.bucket,
            Key: target,
            UploadId,
            PartNumber: index + 1,
            CopySource: `${this.bucket}/${chunkKey(uploadId, offset)}`,
          }),
        );
        parts.push({ PartNumber: index + 1, ETag: result.CopyPartResult?.ETag });
      }
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: target,
          UploadId,
          MultipartUpload: { Parts: parts },
        }),
      );
    } catch (error) {
      await this.client
        .send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: target, UploadId }))
        .catch(() => {});
      throw error;
    }
  }

  private async headSize(key: string): Promise<number | undefined> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return head.ContentLength;
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  private async deleteKeys(keys: string[]): Promise<void> {
    for (let index = 0; index < keys.length; index += 1000) {
      const batch = keys.slice(index, index + 1000);
      if (batch.length === 1) {
        await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: batch[0] }));
      } else if (batch.length > 1) {
        await this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
          }),
        );
      }
    }
  }
}

function chunkKey(uploadId: string, offset: number): string {
  return `uploads/${uploadId}/${String(offset).padStart(16, '0')}`;
}

function isMissing(error: unknown): boolean {
  const candidate = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return (
    candidate?.name === 'NoSuchKey' ||
    candidate?.name === 'NotFound' ||
    candidate?.$metadata?.httpStatusCode === 404
  );
}

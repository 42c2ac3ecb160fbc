// The REST chunked upload of a VM image version (seed 4.1.3, 6.2.2): init with the total size and the
// chunk size, chunks PUT in any order (each checked against the sha256 the client names), the chunks
// present asked for after an interruption, complete (the whole upload verified and stored as one blob,
// its header checked, and a version made of it as POST /images/<id>/versions makes one: vm-images.ts's
// `vmVersion`), or abort.
// Sessions live in the state store (Redis, or files under the data dir), like /v2 upload sessions, so
// an upload survives a restart and any registry of a deployment continues it. Chunk bytes stream to
// the blob store's upload area (a file written in place, or an S3 object per chunk) and never sit in
// memory whole.
import { randomUUID } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BlobStore } from '../shared/blobstore/index.ts';
import { type Digest, newHasher } from '../shared/digest.ts';
import { ProblemError, problems } from '../shared/errors.ts';
import { VM_FORMATS, type VmFormat } from '../shared/media-types.ts';
import type { StateStore } from '../shared/state.ts';
import type { Metadata } from './metadata.ts';
import {
  checkUploadedDisk,
  EMPTY_CONFIG,
  EMPTY_CONFIG_DIGEST,
  storeVmVersion,
  vmVersion,
} from './vm-images.ts';

/** S3 multipart uploads have at most 10,000 parts: chunks are assembled as parts. */
export const MAX_CHUNKS = 10_000;
/** A chunk is at most an S3 part copy's limit. */
export const MAX_CHUNK_BYTES = 5 * 1024 * 1024 * 1024;
export const DEFAULT_CHUNK_BYTES = 10 * 1024 * 1024;

export interface ChunkedSession {
  id: string;
  imageId: string;
  imageName: string;
  /** The version (and tag) the upload becomes, if named. */
  version: string | undefined;
  format: VmFormat;
  totalSize: number;
  chunkSize: number;
  totalChunks: number;
  /** The whole upload's digest, when the client named it at init. */
  digest: string | undefined;
  /** One bit per chunk: received and verified. */
  present: Uint8Array;
  received: number;
  createdBy: string;
  startedAt: number;
  /** The last chunk's time (or the start's): the session expires a TTL after it. */
  touchedAt: number;
  /** Set while a complete runs: chunks are refused meanwhile. */
  completing: boolean;
}

export type InitRequest = Pick<
  ChunkedSession,
  'imageId' | 'imageName' | 'version' | 'format' | 'totalSize' | 'chunkSize' | 'digest' | 'createdBy'
>;

export interface ChunkResult {
  session: ChunkedSession;
  index: number;
  checksum: string;
  /** The chunk was there already (same checksum): nothing was written. */
  repeated: boolean;
}

export interface CompletedUpload {
  digest: Digest;
  size: number;
  versionId: string;
  imageId: string;
  manifestDigest: Digest;
}

export interface ChunkedUploadHooks {
  /** Refuses (throws) when `bytes` more in the image (repository `name`) would break a quota. */
  admit?(name: string, bytes: number): Promise<void>;
  /** A blob was committed. */
  onCommitted?(digest: Digest, size: number): void;
  onBytesReceived?(bytes: number): void;
}

const LOCK_TTL_MS = 10 * 60 * 1000;
const SESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class ChunkedUploads {
  constructor(
    private readonly store: BlobStore,
    private readonly state: StateStore,
    private readonly metadata: Metadata,
    private readonly sessionTtlMs: number,
    private readonly hooks: ChunkedUploadHooks = {},
  ) {}

  /** Refreshed with every chunk: a session nobody touches for this long is forgotten. */
  expiresAt(session: ChunkedSession): Date {
    return new Date(session.touchedAt + this.sessionTtlMs);
  }

  async init(request: InitRequest): Promise<ChunkedSession> {
    const totalChunks = Math.max(1, Math.ceil(request.totalSize / request.chunkSize));
    if (totalChunks > MAX_CHUNKS)
      throw problems.badRequest(
        `${request.totalSize} bytes in chunks of ${request.chunkSize} make ${totalChunks} chunks; at most ${MAX_CHUNKS}: choose larger chunks`,
      );
    await this.hooks.admit?.(
      request.imageName,
      request.totalSize + (await this.configCost(request.imageName)),
    );
    const session: ChunkedSession = {
      id: randomUUID(),
      imageId: request.imageId,
      imageName: request.imageName,
      version: request.version,
      format: request.format,
      totalSize: request.totalSize,
      chunkSize: request.chunkSize,
      totalChunks,
      digest: request.digest,
      present: new Uint8Array(Math.ceil(totalChunks / 8)),
      received: 0,
      createdBy: request.createdBy,
      startedAt: Date.now(),
      touchedAt: Date.now(),
      completing: false,
    };
    await this.store.createUpload(session.id);
    await this.save(session);
    return session;
  }

  async get(imageId: string, id: string): Promise<ChunkedSession> {
    const session = SESSION_ID.test(id) ? await this.state.get<ChunkedSession>(sessionKey(id)) : undefined;
    if (!session || session.imageId !== imageId) throw problems.notFound(`upload ${id}`);
    session.present = new Uint8Array(session.present);
    return session;
  }

  /** The length chunk `index` must have: the chunk size, the last one what is left. */
  chunkLength(session: ChunkedSession, index: number): number {
    return index < session.totalChunks - 1
      ? session.chunkSize
      : session.totalSize - session.chunkSize * (session.totalChunks - 1);
  }

  /**
   * Receives chunk `index`, streamed to the store while its sha256 is computed; `checksum` is the
   * sha256 (hex) the client says it has. A chunk of the wrong length or checksum is dropped and
   * refused; the session is as it was. A chunk received already is not written again.
   */
  async putChunk(
    imageId: string,
    id: string,
    index: number,
    body: Readable,
    checksum: string,
  ): Promise<ChunkResult> {
    let session = await this.get(imageId, id);
    if (!Number.isSafeInteger(index) || index < 0 || index >= session.totalChunks)
      throw problems.badRequest(`chunk index ${index} is outside 0..${session.totalChunks - 1}`);
    const length = this.chunkLength(session, index);
    return this.state.withLock(`chunked:${id}:${index}`, LOCK_TTL_MS, async () => {
      session = await this.get(imageId, id);
      if (session.completing) throw problems.conflict(`upload ${id} is being completed`);
      if (isPresent(session.present, index)) {
        // Read (and check) the body, but keep what is stored.
        const actual = await hashBounded(body, length, index);
        if (actual !== checksum) throw checksumMismatch(index, checksum, actual);
        const stored = await this.state.get<string>(chunkKey(id, index));
        if (stored !== checksum)
          throw problems.conflict(
            `chunk ${index} was received already with another checksum; abort the upload to send different bytes`,
          );
        return { session, index, checksum, repeated: true };
      }
      const hasher = newHasher('sha256');
      const offset = index * session.chunkSize;
      let written: number;
      try {
        written = await this.store.writePart(id, offset, bounded(body, length, index), (chunk) =>
          hasher.update(chunk),
        );
      } catch (error) {
        await this.store.dropPart(id, offset).catch(() => {});
        throw error;
      }
      this.hooks.onBytesReceived?.(written);
      const actual = hasher.digest('hex');
      if (written !== length || actual !== checksum) {
        await this.store.dropPart(id, offset);
        if (written !== length)
          throw problems.badRequest(`chunk ${index} must have ${length} bytes, it had ${written}`);
        throw checksumMismatch(index, checksum, actual);
      }
      await this.state.set(chunkKey(id, index), checksum, this.sessionTtlMs);
      session = await this.state.withLock(`chunked:${id}`, LOCK_TTL_MS, async () => {
        let current: ChunkedSession;
        try {
          current = await this.get(imageId, id);
        } catch (error) {
          // Aborted meanwhile: nothing to keep.
          await this.store.dropPart(id, offset).catch(() => {});
          throw error;
        }
        if (!isPresent(current.present, index)) {
          current.present[index >> 3]! |= 1 << (index & 7);
          current.received++;
        }
        current.touchedAt = Date.now();
        await this.save(current);
        return current;
      });
      return { session, index, checksum, repeated: false };
    });
  }

  /**
   * Assembles the chunks, checks the whole upload's digest (the one named at init or here), stores it
   * as a blob of the image, reads its header (the declared format, else 400 `disk-format`; the virtual
   * size), and makes a version of it: an OCI artifact whose one layer is the disk, tagged with the
   * session's version.
   */
  async complete(imageId: string, id: string, claimed: string | undefined): Promise<CompletedUpload> {
    const session = await this.state.withLock(`chunked:${id}`, LOCK_TTL_MS, async () => {
      const current = await this.get(imageId, id);
      if (current.completing) throw problems.conflict(`upload ${id} is being completed`);
      if (current.received < current.totalChunks) {
        const missing = missingChunks(current);
        throw problems.conflict(
          `${missing.length} of ${current.totalChunks} chunks are missing: ${missing.slice(0, 20).join(', ')}${missing.length > 20 ? ', ...' : ''}`,
        );
      }
      if (claimed && current.digest && claimed !== current.digest)
        throw problems.badRequest(`digest ${claimed} is not the ${current.digest} named at init`);
      current.completing = true;
      await this.save(current);
      return current;
    });
    const offsets = Array.from({ length: session.totalChunks }, (_, index) => index * session.chunkSize);
    let committed = false;
    try {
      const hasher = newHasher('sha256');
      const source = await this.store.readUpload(id, offsets, session.totalSize);
      for await (const chunk of source) hasher.update(chunk as Buffer);
      const digest: Digest = `sha256:${hasher.digest('hex')}`;
      const expected = claimed ?? session.digest;
      if (expected && expected !== digest)
        throw new ProblemError(
          400,
          'digest-mismatch',
          'Digest mismatch',
          `the upload's chunks make ${digest}, not ${expected}`,
        );
      const alreadyLinked = await this.metadata.findRepositoryBlob(session.imageName, digest);
      const cost = (alreadyLinked ? 0 : session.totalSize) + (await this.configCost(session.imageName));
      await this.hooks.admit?.(session.imageName, cost);
      await this.storeEmptyConfig(session.imageName);
      await this.state.withLock(`blob:${digest}`, LOCK_TTL_MS, async () => {
        await this.store.commitUpload(id, offsets, session.totalSize, digest);
        committed = true;
        await this.metadata.recordBlob(
          session.imageName,
          digest,
          session.totalSize,
          this.store.kind,
          this.store.pathOf(digest),
        );
      });
      this.hooks.onCommitted?.(digest, session.totalSize);
      const disk = await checkUploadedDisk(this.store, digest, session.totalSize, session.format);
      const version = vmVersion(disk, session.version, {});
      const { versionId } = await storeVmVersion(this.metadata, session.imageName, version, session.version);
      await this.state.delete(sessionKey(id));
      return { digest, size: session.totalSize, versionId, imageId, manifestDigest: version.digest };
    } catch (error) {
      if (committed) {
        // The chunks became the blob: the session has nothing left to complete.
        await this.state.delete(sessionKey(id));
      } else {
        await this.state.withLock(`chunked:${id}`, LOCK_TTL_MS, async () => {
          const current = await this.state.get<ChunkedSession>(sessionKey(id));
          if (current) await this.save({ ...current, completing: false });
        });
      }
      throw error;
    }
  }

  async abort(imageId: string, id: string): Promise<void> {
    await this.state.withLock(`chunked:${id}`, LOCK_TTL_MS, async () => {
      const session = await this.get(imageId, id);
      if (session.completing) throw problems.conflict(`upload ${id} is being completed`);
      const offsets = presentChunks(session).map((index) => index * session.chunkSize);
      await this.state.delete(sessionKey(id));
      await this.store.deleteUpload(id, offsets);
    });
  }

  /** Whether an upload id in the store belongs to a live chunked session (the sweeper keeps those). */
  async isLive(id: string): Promise<boolean> {
    return (await this.state.get(sessionKey(id))) !== undefined;
  }

  /** What the version's config adds to the image: nothing once the repository has it. */
  private async configCost(name: string): Promise<number> {
    return (await this.metadata.findRepositoryBlob(name, EMPTY_CONFIG_DIGEST)) ? 0 : EMPTY_CONFIG.length;
  }

  private async storeEmptyConfig(name: string): Promise<void> {
    if (await this.metadata.findRepositoryBlob(name, EMPTY_CONFIG_DIGEST)) return;
    await this.state.withLock(`blob:${EMPTY_CONFIG_DIGEST}`, LOCK_TTL_MS, async () => {
      if ((await this.store.stat(EMPTY_CONFIG_DIGEST)) !== EMPTY_CONFIG.length) {
        const id = randomUUID();
        await this.store.createUpload(id);
        await this.store.writeChunk(id, 0, Readable.from([EMPTY_CONFIG]));
        await this.store.commitUpload(id, [0], EMPTY_CONFIG.length, EMPTY_CONFIG_DIGEST);
      }
      await this.metadata.recordBlob(
        name,
        EMPTY_CONFIG_DIGEST,
        EMPTY_CONFIG.length,
        this.store.kind,
        this.store.pathOf(EMPTY_CONFIG_DIGEST),
      );
    });
  }

  private async save(session: ChunkedSession): Promise<void> {
    await this.state.set(sessionKey(session.id), session, this.sessionTtlMs);
  }
}

export function isVmFormat(value: string | null | undefined): value is VmFormat {
  return (VM_FORMATS as readonly string[]).includes(value ?? '');
}

export function presentChunks(session: ChunkedSession): number[] {
  const present: number[] = [];
  for (let index = 0; index < session.totalChunks; index++)
    if (isPresent(session.present, index)) present.push(index);
  return present;
}

export function missingChunks(session: ChunkedSession): number[] {
  const missing: number[] = [];
  for (let index = 0; index < session.totalChunks; index++)
    if (!isPresent(session.present, index)) missing.push(index);
  return missing;
}

function isPresent(bitmap: Uint8Array, index: number): boolean {
  return ((bitmap[index >> 3] ?? 0) & (1 << (index & 7))) !== 0;
}

function checksumMismatch(index: number, claimed: string, actual: string): ProblemError {
  return new ProblemError(
    400,
    'checksum-mismatch',
    'Chunk checksum mismatch',
    `chunk ${index} has sha256 ${actual}, not ${claimed}; it was not stored`,
  );
}

/** The body, failing once it exceeds `length` bytes (before any byte past it is passed on). */
function bounded(body: Readable, length: number, index: number): Readable {
  let seen = 0;
  const limiter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > length) callback(problems.badRequest(`chunk ${index} is longer than ${length} bytes`));
      else callback(null, chunk);
    },
  });
  body.on('error', (error) => limiter.destroy(error));
  return body.pipe(limiter);
}

async function hashBounded(body: Readable, length: number, index: number): Promise<string> {
  const hasher = newHasher('sha256');
  let seen = 0;
  await pipeline(bounded(body, length, index), async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) {
      seen += chunk.length;
      hasher.update(chunk);
    }
  });
  if (seen !== length) throw problems.badRequest(`chunk ${index} must have ${length} bytes, it had ${seen}`);
  return hasher.digest('hex');
}

function sessionKey(id: string): string {
  return `chunked:${id}`;
}

function chunkKey(id: string, index: number): string {
  return `chunked:${id}:chunk:${index}`;
}

// Blob uploads: sessions that receive chunks (PATCH), are hashed while they stream to the store, and
// commit once the digest the client names matches the bytes. Sessions live in the state store
// (Redis or a local file), so an upload survives a registry restart and any registry of a deployment
// can continue it.

import type { Hash } from 'node:crypto';
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { BlobStore } from '../shared/blobstore/index.ts';
import { type Digest, newHasher, parseDigest } from '../shared/digest.ts';
import { OciError } from '../shared/errors.ts';
import type { StateStore } from '../shared/state.ts';
import type { Metadata } from './metadata.ts';

export interface UploadSession {
  id: string;
  name: string;
  /** Bytes received so far: the next chunk must start here. */
  offset: number;
  /** Start offsets of the chunks received. */
  chunks: number[];
  startedAt: number;
}

interface RunningHash {
  hasher: Hash;
  offset: number;
}

export type UploadOutcome = 'committed' | 'cancelled' | 'digest_invalid';

export interface UploadEvents {
  onStarted?(): void;
  onEnded?(outcome: UploadOutcome): void;
  /** A blob was committed (newly, or again). */
  onCommitted?(digest: Digest, size: number): void;
  onBytesReceived?(bytes: number): void;
}

const LOCK_TTL_MS = 10 * 60 * 1000;

/** Checks an upload against the quotas before it is accepted (registry/quotas.ts). */
export interface UploadAdmission {
  /** Throws when `bytes` more in repository `name` would break a quota. */
  admit(name: string, bytes: number): Promise<void>;
}

export class UploadService {
  // The sha256 state of sessions this process has streamed, so that the common case (one process
  // receives every chunk) never reads the bytes back. Anything else falls back to rehashing the upload.
  private readonly runningHashes = new Map<string, RunningHash>();

  constructor(
    private readonly store: BlobStore,
    private readonly state: StateStore,
    private readonly metadata: Metadata,
    private readonly sessionTtlMs: number,
    private readonly events: UploadEvents = {},
    private readonly admission?: UploadAdmission,
  ) {}

  async start(name: string): Promise<UploadSession> {
    const session: UploadSession = { id: randomUUID(), name, offset: 0, chunks: [], startedAt: Date.now() };
    await this.store.createUpload(session.id);
    await this.save(session);
    this.runningHashes.set(session.id, { hasher: newHasher('sha256'), offset: 0 });
    this.events.onStarted?.();
    return session;
  }

  async get(name: string, id: string): Promise<UploadSession> {
    const session = /^[0-9a-f-]{36}$/.test(id)
      ? await this.state.get<UploadSession>(sessionKey(id))
      : undefined;
    if (!session || session.name !== name) throw new OciError('BLOB_UPLOAD_UNKNOWN');
    return session;
  }

  /**
   * Appends one chunk. `start`, from Content-Range, must be where the upload stands; a chunk that
   * fails midway (client gone, store error) leaves the session as it was. `length`, when the client
   * declared it, is checked against the quotas before any byte is read.
   */
  async append(
    name: string,
    id: string,
    body: Readable,
    start?: number,
    length?: number,
  ): Promise<UploadSession> {
    return this.state.withLock(`upload:${id}`, LOCK_TTL_MS, async () => {
      const session = await this.get(name, id);
      if (length !== undefined) await this.admission?.admit(name, session.offset + length);
      if (start !== undefined && start !== session.offset) {
        throw new OciError('RANGE_INVALID', `chunk starts at ${start}, upload is at ${session.offset}`, {
          headers: rangeHeaders(session),
        });
      }
      const running = this.runningHashes.get(id);
      const usable = running && running.offset === session.offset ? running : undefined;
      const before = usable?.hasher.copy();
      if (!usable) this.runningHashes.delete(id);
      const observe = usable ? (chunk: Buffer) => usable.hasher.update(chunk) : undefined;
      let written: number;
      try {
        written = await this.store.writeChunk(id, session.offset, body, observe);
      } catch (error) {
        if (usable && before) this.runningHashes.set(id, { hasher: before, offset: session.offset });
        throw error;
      }
      this.events.onBytesReceived?.(written);
      if (written > 0) session.chunks.push(session.offset);
      session.offset += written;
      if (usable) usable.offset = session.offset;
      await this.save(session);
      return session;
    });
  }

  /** Verifies the upload against `digest` and commits it; a mismatch discards the whole upload. */
  async finish(
    name: string,
    id: string,
    digestValue: string,
    body?: Readable,
    declaredLength?: number,
  ): Promise<{ digest: Digest; size: number }> {
    let session = await this.get(name, id);
    const { algorithm, digest } = parseDigest(digestValue);
    // A blob the repository has already costs nothing: its length is not held against the quotas.
    const linked = body && (await this.metadata.findRepositoryBlob(name, digest));
    if (body) session = await this.append(name, id, body, undefined, linked ? undefined : declaredLength);
    return this.state.withLock(`upload:${id}`, LOCK_TTL_MS, async () => {
      const running = this.runningHashes.get(id);
      const actual =
        algorithm === 'sha256' && running && running.offset === session.offset
          ? `sha256:${running.hasher.digest('hex')}`
          : await this.rehash(session, algorithm);
      this.runningHashes.delete(id);
      if (actual !== digest) {
        await this.discard(session);
        this.events.onEnded?.('digest_invalid');
        throw new OciError('DIGEST_INVALID', `upload has digest ${actual}, not ${digest}`);
      }
      if (!(await this.metadata.findRepositoryBlob(name, digest))) {
        try {
          await this.admission?.admit(name, session.offset);
        } catch (error) {
          await this.discard(session);
          this.events.onEnded?.('cancelled');
          throw error;
        }
      }
      await this.state.withLock(`blob:${digest}`, LOCK_TTL_MS, async () => {
        await this.store.commitUpload(id, session.chunks, session.offset, digest);
        await this.metadata.recordBlob(
          name,
          digest,
          session.offset,
          this.store.kind,
          this.store.pathOf(digest),
        );
      });
      await this.state.delete(sessionKey(id));
      this.events.onEnded?.('committed');
      this.events.onCommitted?.(digest, session.offset);
      return { digest, size: session.offset };
    });
  }

  async cancel(name: string, id: string): Promise<void> {
    const session = await this.get(name, id);
    await this.discard(session);
    this.events.onEnded?.('cancelled');
  }

  /** Cross-repository mount: links a blob of `from` into `name` without moving bytes. */
  async mount(name: string, from: string, digest: string): Promise<boolean> {
    const blob = await this.metadata.findRepositoryBlob(from, digest);
    if (!blob) return false;
    // False too when the blob is being garbage-collected: the client then uploads it.
    return this.metadata.linkBlob(name, digest);
  }

  /**
   * Deletes what abandoned uploads left in the store: uploads without a live session whose last chunk
   * is older than the session lifetime. Resolves to the number purged. `isLive` tells of uploads that
   * other sessions (the REST chunked uploads) own.
   */
  async sweep(isLive?: (id: string) => Promise<boolean>): Promise<number> {
    const stale = await this.store.staleUploads(new Date(Date.now() - this.sessionTtlMs));
    let purged = 0;
    for (const id of stale) {
      if (await this.state.get(sessionKey(id))) continue;
      if (await isLive?.(id)) continue;
      await this.store.purgeUpload(id);
      this.runningHashes.delete(id);
      purged++;
    }
    return purged;
  }

  private async rehash(session: UploadSession, algorithm: 'sha256' | 'sha512'): Promise<string> {
    const hasher = newHasher(algorithm);
    const source = await this.store.readUpload(session.id, session.chunks, session.offset);
    for await (const chunk of source) hasher.update(chunk as Buffer);
    return `${algorithm}:${hasher.digest('hex')}`;
  }

  private async discard(session: UploadSession): Promise<void> {
    this.runningHashes.delete(session.id);
    await this.store.deleteUpload(session.id, session.chunks);
    await this.state.delete(sessionKey(session.id));
  }

  private async save(session: UploadSession): Promise<void> {
    await this.state.set(sessionKey(session.id), session, this.sessionTtlMs);
  }
}

export function rangeHeaders(session: UploadSession): Record<string, string> {
  return {
    Location: `/v2/${session.name}/blobs/uploads/${session.id}`,
    Range: `0-${Math.max(0, session.offset - 1)}`,
    'Docker-Upload-UUID': session.id,
  };
}

function sessionKey(id: string): string {
  return `upload:${id}`;
}

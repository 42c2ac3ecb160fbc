// The registry's metadata in PostgreSQL: repositories are images, manifests are versions, and blobs
// are rows with reference counts (the seed's data model, section 3).

import type { Database, Queryable } from '../shared/db/database.ts';
import { SYSTEM_USER_ID } from '../shared/db/migrations/001-registry-core.ts';
import { OciError } from '../shared/errors.ts';
import { floorLevel, levelSql, type Principal, userParam } from './auth/access.ts';
import type { User } from './auth/accounts.ts';
import { versionPushed, versionRemoved } from './versions.ts';
import type { VmDisk } from './vm-images.ts';

export interface BlobRow {
  digest: string;
  size_bytes: number;
  media_type: string | null;
}

export interface VersionRow {
  id: string;
  image_id: string;
  manifest_digest: string;
  manifest_media_type: string;
  manifest_bytes: Uint8Array;
  artifact_type: string | null;
  subject_digest: string | null;
  annotations: Record<string, string> | null;
}

export interface NewVersion {
  digest: string;
  mediaType: string;
  bytes: Buffer;
  configDigest: string | undefined;
  artifactType: string | undefined;
  subjectDigest: string | undefined;
  annotations: Record<string, string> | undefined;
  layers: { digest: string; size: number; mediaType?: string | undefined }[];
  /** Blobs (config, layers) and child manifests this manifest references. */
  blobDigests: string[];
  totalSize: number;
}

export interface AuditEntry {
  operation: string;
  status: 'success' | 'failure';
  imageId?: string | undefined;
  versionId?: string | undefined;
  details?: Record<string, unknown>;
  errorMessage?: string;
  /** Who did it (none: an anonymous caller). */
  operator?: User | undefined;
  clientIp?: string;
  userAgent?: string | undefined;
}

/** What a version's layers are, checked before it is stored: a VM image's disk (see vm-images.ts). */
export type VersionInspector = (version: NewVersion) => Promise<VmDisk | undefined>;

export class Metadata {
  constructor(
    readonly db: Database,
    private readonly inspect?: VersionInspector,
  ) {}

  async findImageId(name: string, db: Queryable = this.db): Promise<string | undefined> {
    const rows = await db.query<{ id: string }>(
      'SELECT id FROM images WHERE name = $1 AND deleted_at IS NULL',
      [name],
    );
    return rows[0]?.id;
  }

  /** The image for an OCI repository, created on first push as a private image of its pusher. */
  async ensureImage(name: string, db: Queryable = this.db): Promise<string> {
    const existing = await this.findImageId(name, db);
    if (existing) return existing;
    const rows = await db.query<{ id: string }>(
      `INSERT INTO images (name, image_type, format, owner_id, status, created_by)
       VALUES ($1, 'application', 'oci', $2, 'active', $2)
       ON CONFLICT (name) WHERE deleted_at IS NULL DO NOTHING RETURNING id`,
      [name, SYSTEM_USER_ID],
    );
    return rows[0]?.id ?? (await this.findImageId(name, db))!;
  }

  async findBlob(digest: string): Promise<BlobRow | undefined> {
    const rows = await this.db.query<BlobRow>(
      'SELECT digest, size_bytes, media_type FROM image_blobs WHERE digest = $1',
      [digest],
    );
    return rows[0];
  }

  /** The blob as seen from a repository: only if that repository uploaded or mounted it. */
  async findRepositoryBlob(name: string, digest: string): Promise<BlobRow | undefined> {
    const rows = await this.db.query<BlobRow>(
      `SELECT b.digest, b.size_bytes, b.media_type FROM image_blobs b
       JOIN repository_blobs rb ON rb.digest = b.digest
       JOIN images i ON i.id = rb.image_id
       WHERE i.name = $1 AND i.deleted_at IS NULL AND b.digest = $2`,
      [name, digest],
    );
    return rows[0];
  }

  /** Records a committed blob (once, whatever number of uploads commit it) and links it to a repository. */
  async recordBlob(
    name: string,
    digest: string,
    size: number,
    backend: string,
    storagePath: string,
  ): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO image_blobs (digest, size_bytes, storage_backend, storage_path, created_by)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (digest) DO UPDATE SET status = 'active', updated_at = now()`,
        [digest, size, backend, storagePath, SYSTEM_USER_ID],
      );
      await this.linkBlob(name, digest, tx);
    });
  }

  /**
   * Links a blob into a repository (an upload's commit, a mount) and restarts its grace period against
   * garbage collection; false when the blob is gone or being collected (see gc.ts).
   */
  async linkBlob(name: string, digest: string, db: Queryable = this.db): Promise<boolean> {
    const imageId = await this.ensureImage(name, db);
    const rows = await db.query(
      `WITH touched AS (UPDATE image_blobs SET updated_at = now() WHERE digest = $2 AND status = 'active' RETURNING digest)
       INSERT INTO repository_blobs (image_id, digest) SELECT $1, digest FROM touched
       ON CONFLICT (image_id, digest) DO UPDATE SET created_at = repository_blobs.created_at RETURNING digest`,
      [imageId, digest],
    );
    return rows.length > 0;
  }

  async unlinkBlob(name: string, digest: string): Promise<boolean> {
    const rows = await this.db.query(
      `DELETE FROM repository_blobs rb USING images i
       WHERE rb.image_id = i.id AND i.name = $1 AND i.deleted_at IS NULL AND rb.digest = $2 RETURNING rb.digest`,
      [name, digest],
    );
    return rows.length > 0;
  }

  async findVersion(name: string, reference: string, byDigest: boolean): Promise<VersionRow | undefined> {
    const rows = byDigest
      ? await this.db.query<VersionRow>(
          `SELECT v.* FROM image_versions v JOIN images i ON i.id = v.image_id
           WHERE i.name = $1 AND i.deleted_at IS NULL AND v.manifest_digest = $2 AND v.deleted_at IS NULL`,
          [name, reference],
        )
      : await this.db.query<VersionRow>(
          `SELECT v.* FROM image_tags t JOIN images i ON i.id = t.image_id
           JOIN image_versions v ON v.id = t.image_version_id
           WHERE i.name = $1 AND i.deleted_at IS NULL AND t.tag_name = $2 AND v.deleted_at IS NULL`,
          [name, reference],
        );
    return rows[0];
  }

  /** Digests among `digests` that this repository cannot reference: neither its blobs nor its manifests. */
  async missingReferences(name: string, digests: string[]): Promise<string[]> {
    if (digests.length === 0) return [];
    const rows = await this.db.query<{ digest: string }>(
      `SELECT rb.digest FROM repository_blobs rb JOIN images i ON i.id = rb.image_id
       WHERE i.name = $1 AND i.deleted_at IS NULL AND rb.digest = ANY($2)
       UNION
       SELECT v.manifest_digest FROM image_versions v JOIN images i ON i.id = v.image_id
       WHERE i.name = $1 AND i.deleted_at IS NULL AND v.manifest_digest = ANY($2) AND v.deleted_at IS NULL`,
      [name, digests],
    );
    const present = new Set(rows.map((row) => row.digest));
    return digests.filter((digest) => !present.has(digest));
  }

  /**
   * Stores a manifest as a version of the image (idempotent by digest) and points `tag` at it. Blob
   * reference counts follow the version's references, in the same transaction. A VM image's disk is
   * checked first (its header read from the store): its format and virtual size are recorded, and the
   * image takes its format and the resources its annotations name.
   */
  async putVersion(
    name: string,
    version: NewVersion,
    tag: string | undefined,
  ): Promise<{ versionId: string; imageId: string }> {
    const disk = await this.inspect?.(version);
    return this.db.transaction(async (tx) => {
      const imageId = await this.ensureImage(name, tx);
      const inserted = await tx.query<{ id: string }>(
        `INSERT INTO image_versions (image_id, version, version_sequence, manifest_digest, manifest_media_type,
           manifest_bytes, config_digest, artifact_type, subject_digest, annotations, total_size_bytes, layers,
           status, created_by, disk_format, virtual_size_bytes)
         VALUES ($1, $2, (SELECT COALESCE(MAX(version_sequence), 0) + 1 FROM image_versions WHERE image_id = $1),
           $2, $3, $4, $5, $6, $7, $8, $9, $10, 'active', $11, $12, $13)
         ON CONFLICT (image_id, manifest_digest) DO NOTHING RETURNING id`,
        [
          imageId,
          version.digest,
          version.mediaType,
          version.bytes,
          version.configDigest ?? null,
          version.artifactType ?? null,
          version.subjectDigest ?? null,
          version.annotations ? JSON.stringify(version.annotations) : null,
          version.totalSize,
          JSON.stringify(version.layers),
          SYSTEM_USER_ID,
          disk?.format ?? null,
          disk?.virtualSize ?? null,
        ],
      );
      let versionId = inserted[0]?.id;
      if (versionId) {
        // Locked in one order (concurrent pushes of shared layers never deadlock); a blob gone or being
        // garbage-collected is refused before anything references it (see gc.ts).
        const blobDigests = await tx.query<{ digest: string; status: string }>(
          'SELECT digest, status FROM image_blobs WHERE digest = ANY($1) ORDER BY digest FOR UPDATE',
          [version.blobDigests],
        );
        const usable = new Set(blobDigests.filter((row) => row.status === 'active').map((row) => row.digest));
        const gone = version.blobDigests.filter((digest) => !usable.has(digest));
        if (gone.length > 0)
          throw new OciError(
            'MANIFEST_BLOB_UNKNOWN',
            `blobs deleted meanwhile (garbage-collected): ${gone.join(', ')}; upload them again`,
            { detail: { missing: gone } },
          );
        for (const { digest } of blobDigests) {
          await tx.query(
            'INSERT INTO version_blobs (image_version_id, digest) VALUES ($1, $2) ON CONFLICT DO NOTHING',
            [versionId, digest],
          );
        }
        await refreshReferenceCounts(
          blobDigests.map((row) => row.digest),
          tx,
        );
      } else {
        const rows = await tx.query<{ id: string }>(
          'SELECT id FROM image_versions WHERE image_id = $1 AND manifest_digest = $2',
          [imageId, version.digest],
        );
        versionId = rows[0]!.id;
      }
      if (tag) {
        await tx.query(
          `INSERT INTO image_tags (image_id, image_version_id, tag_name, created_by) VALUES ($1, $2, $3, $4)
           ON CONFLICT (image_id, tag_name) DO UPDATE SET image_version_id = EXCLUDED.image_version_id, updated_at = now()`,
          [imageId, versionId, tag, SYSTEM_USER_ID],
        );
      }
      await versionPushed(tx, imageId, versionId, tag);
      await tx.query("UPDATE images SET updated_at = now(), status = 'active' WHERE id = $1", [imageId]);
      if (disk) await this.describeVmImage(tx, imageId, disk);
      return { versionId, imageId };
    });
  }

  /** Deletes a manifest (and the tags pointing at it); undefined when the repository has no such manifest. */
  async deleteVersion(
    name: string,
    digest: string,
  ): Promise<{ imageId: string; versionId: string } | undefined> {
    return this.db.transaction(async (tx) => {
      const versions = await tx.query<{ id: string; image_id: string }>(
        `SELECT v.id, v.image_id FROM image_versions v JOIN images i ON i.id = v.image_id
         WHERE i.name = $1 AND i.deleted_at IS NULL AND v.manifest_digest = $2 FOR UPDATE OF v`,
        [name, digest],
      );
      const version = versions[0];
      if (!version) return undefined;
      const referenced = await tx.query<{ digest: string }>(
        'SELECT digest FROM version_blobs WHERE image_version_id = $1',
        [version.id],
      );
      await tx.query('DELETE FROM image_versions WHERE id = $1', [version.id]);
      await versionRemoved(tx, version.image_id);
      await refreshReferenceCounts(
        referenced.map((row) => row.digest),
        tx,
      );
      return { imageId: version.image_id, versionId: version.id };
    });
  }

  async deleteTag(name: string, tag: string): Promise<{ imageId: string; versionId: string } | undefined> {
    const rows = await this.db.query<{ image_id: string; image_version_id: string }>(
      `DELETE FROM image_tags t USING images i
       WHERE t.image_id = i.id AND i.name = $1 AND i.deleted_at IS NULL AND t.tag_name = $2
       RETURNING t.image_id, t.image_version_id`,
      [name, tag],
    );
    const row = rows[0];
    return row ? { imageId: row.image_id, versionId: row.image_version_id } : undefined;
  }

  async listTags(
    name: string,
    limit: number | undefined,
    last: string | undefined,
  ): Promise<string[] | undefined> {
    const imageId = await this.findImageId(name);
    if (!imageId) return undefined;
    const rows = await this.db.query<{ tag_name: string }>(
      `SELECT tag_name FROM image_tags WHERE image_id = $1 AND ($2::text IS NULL OR tag_name > $2)
       ORDER BY tag_name LIMIT $3`,
      [imageId, last ?? null, limit ?? null],
    );
    return rows.map((row) => row.tag_name);
  }

  /** Repositories with at least one manifest that the principal may read, by name. */
  async catalog(
    principal: Principal,
    limit: number | undefined,
    last: string | undefined,
  ): Promise<string[]> {
    const rows = await this.db.query<{ name: string }>(
      `SELECT name FROM images i WHERE deleted_at IS NULL AND ($1::text IS NULL OR name > $1)
       AND EXISTS (SELECT 1 FROM image_versions v WHERE v.image_id = i.id)
       AND ($3 OR ${levelSql('$4::uuid')} >= 1)
       ORDER BY name LIMIT $2`,
      [last ?? null, limit ?? null, floorLevel(principal) >= 1, userParam(principal)],
    );
    return rows.map((row) => row.name);
  }

  async referrers(name: string, subject: string): Promise<VersionRow[]> {
    return this.db.query<VersionRow>(
      `SELECT v.* FROM image_versions v JOIN images i ON i.id = v.image_id
       WHERE i.name = $1 AND i.deleted_at IS NULL AND v.subject_digest = $2 AND v.deleted_at IS NULL
       ORDER BY v.created_at, v.manifest_digest`,
      [name, subject],
    );
  }

  async audit(entry: AuditEntry): Promise<void> {
    await this.db.query(
      `INSERT INTO image_audit_logs (image_id, image_version_id, operation, operator_id, operator_type, status,
         details, error_message, client_ip, user_agent)
       VALUES ($1, $2, $3, $4, $10, $5, $6, $7, $8, $9)`,
      [
        entry.imageId ?? null,
        entry.versionId ?? null,
        entry.operation,
        entry.operator?.id ?? SYSTEM_USER_ID,
        entry.status,
        entry.details ? JSON.stringify(entry.details) : null,
        entry.errorMessage ?? null,
        entry.clientIp ?? null,
        entry.userAgent ?? null,
        entry.operator ? (entry.operator.kind === 'host' ? 'host' : 'user') : 'anonymous',
      ],
    );
  }

  /** A VM image takes its disk's format, and the resources its version's annotations name. */
  private async describeVmImage(tx: Queryable, imageId: string, disk: VmDisk): Promise<void> {
    const params: unknown[] = [imageId, disk.format];
    const sets = ['format = $2'];
    for (const [field, value] of Object.entries(disk.resources)) {
      params.push(value);
      sets.push(`${field} = $${params.length}`);
    }
    await tx.query(`UPDATE images SET ${sets.join(', ')} WHERE id = $1`, params);
  }
}

async function refreshReferenceCounts(digests: string[], tx: Queryable): Promise<void> {
  if (digests.length === 0) return;
  await tx.query(
    `UPDATE image_blobs b SET reference_count = (SELECT count(*) FROM version_blobs vb WHERE vb.digest = b.digest),
       updated_at = now() WHERE b.digest = ANY($1)`,
    [digests],
  );
}

/**
 * Releases what a deleted image references, in the caller's transaction: its versions are marked
 * deleted (the rows stay, for the audit), their blob references and the repository's blob links go, so
 * that garbage collection may free blobs no other image references.
 */
export async function releaseImage(tx: Queryable, imageId: string): Promise<void> {
  await tx.query(
    `UPDATE image_versions SET deleted_at = now(), status = 'deleted', is_latest = FALSE
     WHERE image_id = $1 AND deleted_at IS NULL`,
    [imageId],
  );
  const released = await tx.query<{ digest: string }>(
    `DELETE FROM version_blobs vb USING image_versions v
     WHERE vb.image_version_id = v.id AND v.image_id = $1 RETURNING vb.digest`,
    [imageId],
  );
  await tx.query('DELETE FROM repository_blobs WHERE image_id = $1', [imageId]);
  await refreshReferenceCounts([...new Set(released.map((row) => row.digest))], tx);
}

// Versions and tags of an image, the one model behind /v2 and /api/v1 (seed 3.1.2, 3.1.3, 4.2, 4.3): a
// version is a manifest (pushed through /v2), named by its digest until a tag that is a semantic version
// (`1.2.3`, `v2.0.0-rc.1`) names it; `version_sequence` counts pushes; `is_latest` marks one version per
// image: the highest semantic version, or (while none has one) the newest push, until a rollback
// chooses another. Tags pushed through /v2 and tags set through the API are the same rows.
import type { Database, Queryable } from '../shared/db/database.ts';
import { problems } from '../shared/errors.ts';

const SEMVER = /^v?(\d{1,9})\.(\d{1,9})\.(\d{1,9})(?:-([0-9A-Za-z.-]+))?$/;

interface Semver {
  core: [number, number, number];
  pre: string | undefined;
}

function parseSemver(value: string): Semver | undefined {
  const match = SEMVER.exec(value);
  if (!match) return undefined;
  return { core: [Number(match[1]), Number(match[2]), Number(match[3])], pre: match[4] };
}

export function isSemver(value: string): boolean {
  return SEMVER.test(value);
}

/** Semantic version order: by major, minor, patch; a pre-release before its release. */
export function compareSemver(a: string, b: string): number {
  const [left, right] = [parseSemver(a), parseSemver(b)];
  if (!left || !right) throw new Error(`not semantic versions: ${a}, ${b}`);
  for (let index = 0; index < 3; index++) {
    const difference = left.core[index]! - right.core[index]!;
    if (difference !== 0) return difference;
  }
  if (left.pre === right.pre) return 0;
  if (left.pre === undefined) return 1;
  if (right.pre === undefined) return -1;
  return left.pre.localeCompare(right.pre, 'en', { numeric: true });
}

interface VersionRef {
  id: string;
  version: string;
  version_sequence: number;
}

/**
 * After a push of `versionId` (new, or tagged again with `tag`): names the version after the tag when
 * the tag is a semantic version and the version has no name yet, and makes it the image's latest when it
 * is newer than the latest (a higher semantic version; or the newest push while no version has one).
 */
export async function versionPushed(
  tx: Queryable,
  imageId: string,
  versionId: string,
  tag: string | undefined,
): Promise<void> {
  if (tag && isSemver(tag)) {
    await tx.query(
      `UPDATE image_versions SET version = $3, updated_at = now()
       WHERE id = $1 AND version = manifest_digest
         AND NOT EXISTS (SELECT 1 FROM image_versions o WHERE o.image_id = $2 AND o.version = $3)`,
      [versionId, imageId, tag],
    );
  }
  const rows = await tx.query<VersionRef & { is_latest: boolean }>(
    `SELECT id, version, version_sequence, is_latest FROM image_versions
     WHERE image_id = $1 AND (id = $2 OR is_latest) AND deleted_at IS NULL`,
    [imageId, versionId],
  );
  const candidate = rows.find((row) => row.id === versionId)!;
  const latest = rows.find((row) => row.is_latest);
  if (latest?.id === candidate.id || !isNewer(candidate, latest)) return;
  await setLatest(tx, imageId, candidate.id);
}

/** After a version was deleted: the best remaining version becomes latest if it was. */
export async function versionRemoved(tx: Queryable, imageId: string): Promise<void> {
  const rows = await tx.query<VersionRef & { is_latest: boolean }>(
    `SELECT id, version, version_sequence, is_latest FROM image_versions
     WHERE image_id = $1 AND deleted_at IS NULL AND status <> 'deprecated'`,
    [imageId],
  );
  if (rows.some((row) => row.is_latest)) return;
  let best: VersionRef | undefined;
  for (const row of rows) if (isNewer(row, best)) best = row;
  if (best) await setLatest(tx, imageId, best.id);
}

function isNewer(candidate: VersionRef, current: VersionRef | undefined): boolean {
  if (!current) return true;
  const [named, currentNamed] = [isSemver(candidate.version), isSemver(current.version)];
  if (named && currentNamed) return compareSemver(candidate.version, current.version) > 0;
  if (named !== currentNamed) return named;
  return candidate.version_sequence > current.version_sequence;
}

async function setLatest(tx: Queryable, imageId: string, versionId: string): Promise<void> {
  await tx.query(
    `UPDATE image_versions SET is_latest = (id = $2), updated_at = CASE WHEN is_latest <> (id = $2)
       THEN now() ELSE updated_at END WHERE image_id = $1`,
    [imageId, versionId],
  );
}

const VERSION_COLUMNS = `v.id, v.version, v.version_sequence, v.is_latest, v.manifest_digest,
  v.manifest_media_type AS media_type, v.artifact_type, v.config_digest, v.total_size_bytes,
  v.compressed_size_bytes, v.disk_format, v.virtual_size_bytes, v.status, v.changelog, v.created_at, v.updated_at`;

function iso(value: unknown): string {
  return new Date(value as string).toISOString();
}

function versionView<T extends { created_at: unknown; updated_at: unknown }>(row: T) {
  return { ...row, created_at: iso(row.created_at), updated_at: iso(row.updated_at) };
}

export interface TagView {
  name: string;
  version_id: string;
  version: string;
  manifest_digest: string;
  created_at: string;
  updated_at: string;
}

export class Versions {
  constructor(private readonly db: Database) {}

  async list(imageId: string, page: { limit: number; offset: number }, status?: string) {
    const rows = await this.db.query<
      Record<string, unknown> & { total: number; created_at: Date; updated_at: Date }
    >(
      `SELECT ${VERSION_COLUMNS}, count(*) OVER ()::int AS total FROM image_versions v
       WHERE v.image_id = $1 AND v.deleted_at IS NULL AND ($2::text IS NULL OR v.status = $2)
       ORDER BY v.version_sequence DESC LIMIT $3 OFFSET $4`,
      [imageId, status ?? null, page.limit, page.offset],
    );
    return { items: rows.map(({ total: _total, ...row }) => versionView(row)), total: rows[0]?.total ?? 0 };
  }

  /** Whether the image has a version of that name. */
  async named(imageId: string, version: string): Promise<boolean> {
    const rows = await this.db.query(
      'SELECT 1 FROM image_versions WHERE image_id = $1 AND version = $2 AND deleted_at IS NULL',
      [imageId, version],
    );
    return rows.length > 0;
  }

  /** One version with its layers, annotations and the tags that point at it. */
  async get(imageId: string, versionId: string) {
    if (!UUID.test(versionId)) return undefined;
    const rows = await this.db.query<Record<string, unknown> & { created_at: Date; updated_at: Date }>(
      `SELECT ${VERSION_COLUMNS}, v.layers, v.annotations, v.subject_digest,
         COALESCE((SELECT json_agg(t.tag_name ORDER BY t.tag_name) FROM image_tags t WHERE t.image_version_id = v.id),
           '[]'::json) AS tags
       FROM image_versions v WHERE v.image_id = $1 AND v.id = $2 AND v.deleted_at IS NULL`,
      [imageId, versionId],
    );
    return rows[0] && versionView(rows[0]);
  }

  /** Deprecates a version (or makes it active again), and records its changelog. */
  async update(
    imageId: string,
    versionId: string,
    changes: { status?: 'active' | 'deprecated'; changelog?: string | null },
    by: string,
  ): Promise<boolean> {
    if (!UUID.test(versionId)) return false;
    return this.db.transaction(async (tx) => {
      const rows = await tx.query(
        `UPDATE image_versions SET status = COALESCE($3, status),
           changelog = CASE WHEN $4 THEN $5 ELSE changelog END,
           is_latest = CASE WHEN $3 = 'deprecated' THEN FALSE ELSE is_latest END,
           updated_at = now(), updated_by = $6
         WHERE image_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING id`,
        [
          imageId,
          versionId,
          changes.status ?? null,
          changes.changelog !== undefined,
          changes.changelog ?? null,
          by,
        ],
      );
      // A deprecated latest hands "latest" on to the best remaining version.
      if (changes.status === 'deprecated') await versionRemoved(tx, imageId);
      return rows.length > 0;
    });
  }

  /** Roll back (seed 4.2.2): the version becomes the latest and the tag `latest` points at it. */
  async rollback(imageId: string, versionId: string, by: string): Promise<boolean> {
    if (!UUID.test(versionId)) return false;
    return this.db.transaction(async (tx) => {
      const rows = await tx.query<{ status: string }>(
        'SELECT status FROM image_versions WHERE image_id = $1 AND id = $2 AND deleted_at IS NULL FOR UPDATE',
        [imageId, versionId],
      );
      if (!rows[0]) return false;
      if (rows[0].status === 'deprecated')
        throw problems.conflict('a deprecated version cannot be the latest');
      await setLatest(tx, imageId, versionId);
      await this.putTag(tx, imageId, 'latest', versionId, by);
      return true;
    });
  }

  async tags(imageId: string): Promise<TagView[]> {
    const rows = await this.db.query<TagView>(
      `SELECT t.tag_name AS name, v.id AS version_id, v.version, v.manifest_digest, t.created_at, t.updated_at
       FROM image_tags t JOIN image_versions v ON v.id = t.image_version_id
       WHERE t.image_id = $1 AND v.deleted_at IS NULL ORDER BY t.updated_at DESC, t.tag_name`,
      [imageId],
    );
    return rows.map(versionView);
  }

  /** Points a tag at a version (creating the tag, or moving it); undefined when there is no such version. */
  async setTag(imageId: string, tag: string, versionId: string, by: string): Promise<TagView | undefined> {
    if (!UUID.test(versionId)) return undefined;
    return this.db.transaction(async (tx) => {
      const exists = await tx.query(
        'SELECT 1 FROM image_versions WHERE image_id = $1 AND id = $2 AND deleted_at IS NULL',
        [imageId, versionId],
      );
      if (exists.length === 0) return undefined;
      await this.putTag(tx, imageId, tag, versionId, by);
      await versionPushed(tx, imageId, versionId, tag);
      const rows = await tx.query<TagView>(
        `SELECT t.tag_name AS name, v.id AS version_id, v.version, v.manifest_digest, t.created_at, t.updated_at
         FROM image_tags t JOIN image_versions v ON v.id = t.image_version_id
         WHERE t.image_id = $1 AND t.tag_name = $2`,
        [imageId, tag],
      );
      return versionView(rows[0]!);
    });
  }

  async deleteTag(imageId: string, tag: string): Promise<string | undefined> {
    const rows = await this.db.query<{ image_version_id: string }>(
      'DELETE FROM image_tags WHERE image_id = $1 AND tag_name = $2 RETURNING image_version_id',
      [imageId, tag],
    );
    return rows[0]?.image_version_id;
  }

  private async putTag(tx: Queryable, imageId: string, tag: string, versionId: string, by: string) {
    await tx.query(
      `INSERT INTO image_tags (image_id, image_version_id, tag_name, created_by, updated_by)
       VALUES ($1, $2, $3, $4, $4)
       ON CONFLICT (image_id, tag_name) DO UPDATE SET image_version_id = EXCLUDED.image_version_id,
         updated_at = now(), updated_by = EXCLUDED.updated_by`,
      [imageId, versionId, tag, by],
    );
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

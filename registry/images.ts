// Images as the management API sees them (seed 3.1.1, 6.2.1): one row per repository, whether it came
// from a push to /v2 or from POST /api/v1/images. Lists are filtered by the same access rule as /v2.
import type { Database } from '../shared/db/database.ts';
import { floorLevel, Level, levelName, levelSql, type Principal, userParam } from './auth/access.ts';
import { releaseImage } from './metadata.ts';

export const VISIBILITIES = ['public', 'organization', 'private'] as const;
export type Visibility = (typeof VISIBILITIES)[number];
export const IMAGE_TYPES = ['os_base', 'application', 'snapshot'] as const;
export const FORMATS = ['oci', 'docker', 'qcow2', 'vmdk', 'vhd', 'vhdx', 'raw'] as const;

/** Fields a client may set when creating or updating an image (besides name and visibility). */
export const DESCRIPTIVE_FIELDS = [
  'display_name',
  'description',
  'image_type',
  'os_type',
  'os_version',
  'architecture',
  'format',
  'min_cpu_cores',
  'min_memory_mb',
  'min_disk_gb',
  'recommended_cpu_cores',
  'recommended_memory_mb',
  'recommended_disk_gb',
  'labels',
  'annotations',
] as const;
export type DescriptiveField = (typeof DESCRIPTIVE_FIELDS)[number];
export type ImageFields = Partial<Record<DescriptiveField, unknown>> & { visibility?: Visibility };

export interface ImageListFilter {
  name?: string | undefined;
  /** Names starting with this (a namespace, say `zedge/`). */
  prefix?: string | undefined;
  visibility?: Visibility | undefined;
  image_type?: string | undefined;
  format?: string | undefined;
  sort: 'name' | 'created_at' | 'updated_at';
  order: 'asc' | 'desc';
}

const IMAGE_COLUMNS = `i.id, i.name, i.display_name, i.description, i.image_type, i.os_type, i.os_version,
  i.architecture, i.format, i.visibility, i.status, i.total_size_bytes, i.compressed_size_bytes,
  i.min_cpu_cores, i.min_memory_mb, i.min_disk_gb, i.recommended_cpu_cores, i.recommended_memory_mb,
  i.recommended_disk_gb, i.download_count, i.star_count, i.scan_status, i.last_scan_at,
  i.vulnerabilities_critical, i.vulnerabilities_high, i.vulnerabilities_medium, i.vulnerabilities_low,
  i.labels, i.annotations, i.created_at, i.updated_at, i.owner_id, u.username AS owner_name,
  i.organization_id, o.name AS organization_name`;
const FROM = `FROM images i JOIN users u ON u.id = i.owner_id LEFT JOIN organizations o ON o.id = i.organization_id`;

type ImageRow = Record<string, unknown> & {
  id: string;
  name: string;
  visibility: Visibility;
  owner_id: string;
  owner_name: string;
  organization_id: string | null;
  organization_name: string | null;
  level: number;
};

function iso(value: unknown): string | null {
  return value === null || value === undefined ? null : new Date(value as string).toISOString();
}

/** The API's view of an image: the seed's fields, its owner and organization, and the caller's level. */
function view(row: ImageRow, floor: number) {
  const {
    owner_id,
    owner_name,
    organization_id,
    organization_name,
    level,
    vulnerabilities_critical,
    vulnerabilities_high,
    vulnerabilities_medium,
    vulnerabilities_low,
    ...fields
  } = row;
  return {
    ...fields,
    owner: { id: owner_id, username: owner_name },
    organization: organization_id ? { id: organization_id, name: organization_name } : null,
    vulnerabilities: {
      critical: vulnerabilities_critical,
      high: vulnerabilities_high,
      medium: vulnerabilities_medium,
      low: vulnerabilities_low,
    },
    last_scan_at: iso(fields.last_scan_at),
    created_at: iso(fields.created_at),
    updated_at: iso(fields.updated_at),
    access: levelName(Math.max(level, floor)),
  };
}

export type ImageView = ReturnType<typeof view>;

export class Images {
  constructor(private readonly db: Database) {}

  /** Creates a live image; undefined when the name is taken by a live image. */
  async create(
    name: string,
    owner: { userId: string; organizationId: string | undefined },
    fields: ImageFields,
    status: 'pending' | 'active',
  ): Promise<string | undefined> {
    const columns = ['name', 'owner_id', 'organization_id', 'created_by', 'status', 'visibility'];
    const values: unknown[] = [
      name,
      owner.userId,
      owner.organizationId ?? null,
      owner.userId,
      status,
      fields.visibility ?? 'private',
    ];
    for (const field of DESCRIPTIVE_FIELDS) {
      if (fields[field] === undefined) continue;
      columns.push(field);
      values.push(
        field === 'labels' || field === 'annotations' ? JSON.stringify(fields[field]) : fields[field],
      );
    }
    for (const [field, fallback] of [
      ['image_type', 'application'],
      ['format', 'oci'],
    ] as const) {
      if (fields[field] !== undefined) continue;
      columns.push(field);
      values.push(fallback);
    }
    const rows = await this.db.query<{ id: string }>(
      `INSERT INTO images (${columns.join(', ')}) VALUES (${columns.map((_, index) => `$${index + 1}`).join(', ')})
       ON CONFLICT (name) WHERE deleted_at IS NULL DO NOTHING RETURNING id`,
      values,
    );
    return rows[0]?.id;
  }

  /** A live image as the principal sees it (with its level), or undefined. */
  async get(principal: Principal, id: string): Promise<ImageView | undefined> {
    const rows = await this.db.query<ImageRow>(
      `SELECT ${IMAGE_COLUMNS}, ${levelSql('$2::uuid')} AS level ${FROM} WHERE i.id = $1 AND i.deleted_at IS NULL`,
      [id, userParam(principal)],
    );
    return rows[0] && view(rows[0], floorLevel(principal));
  }

  /** Live images the principal may read, filtered, sorted and paged. */
  async list(principal: Principal, filter: ImageListFilter, page: { limit: number; offset: number }) {
    const floor = floorLevel(principal);
    const rows = await this.db.query<ImageRow & { total: number }>(
      `SELECT ${IMAGE_COLUMNS}, ${levelSql('$1::uuid')} AS level, count(*) OVER ()::int AS total ${FROM}
       WHERE i.deleted_at IS NULL AND ($2 OR ${levelSql('$1::uuid')} >= 1)
         AND ($3::text IS NULL OR i.name = $3) AND ($4::text IS NULL OR starts_with(i.name, $4))
         AND ($5::text IS NULL OR i.visibility = $5) AND ($6::text IS NULL OR i.image_type = $6)
         AND ($7::text IS NULL OR i.format = $7)
       ORDER BY i.${filter.sort} ${filter.order === 'asc' ? 'ASC' : 'DESC'}, i.id LIMIT $8 OFFSET $9`,
      [
        userParam(principal),
        floor >= Level.read,
        filter.name ?? null,
        filter.prefix ?? null,
        filter.visibility ?? null,
        filter.image_type ?? null,
        filter.format ?? null,
        page.limit,
        page.offset,
      ],
    );
    return {
      items: rows.map(({ total: _total, ...row }) => view(row as ImageRow, floor)),
      total: rows[0]?.total ?? 0,
    };
  }

  async update(id: string, fields: ImageFields, by: string): Promise<boolean> {
    const sets = ['updated_at = now()', 'updated_by = $2'];
    const params: unknown[] = [id, by];
    for (const field of [...DESCRIPTIVE_FIELDS, 'visibility'] as const) {
      if (fields[field] === undefined) continue;
      params.push(
        field === 'labels' || field === 'annotations' ? JSON.stringify(fields[field]) : fields[field],
      );
      sets.push(`${field} = $${params.length}`);
    }
    const rows = await this.db.query(
      `UPDATE images SET ${sets.join(', ')} WHERE id = $1 AND deleted_at IS NULL RETURNING id`,
      params,
    );
    return rows.length > 0;
  }

  /** Soft delete: the image leaves /v2 and the lists, its name is free again; rows stay for the audit. */
  async softDelete(id: string, by: string): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const rows = await tx.query(
        `UPDATE images SET deleted_at = now(), status = 'deleting', updated_by = $2
         WHERE id = $1 AND deleted_at IS NULL RETURNING id`,
        [id, by],
      );
      // Its versions' blobs are released: garbage collection frees those no other image references.
      if (rows.length > 0) await releaseImage(tx, id);
      return rows.length > 0;
    });
  }
}

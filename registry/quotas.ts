// Quotas (seed 4.5): limits per user and per organization on storage bytes, image count and the size
// of one image, and their usage. Usage is kept, and the limits enforced, by the database's triggers in
// the transaction of each change (migration 005); what is here reads and sets them, checks an upload
// before it is accepted (so that a client is refused before it sends gigabytes, not after), and
// recalculates usage from the rows (`zedge-p2p quota recalc`).
import type { Database, Queryable } from '../shared/db/database.ts';
import { QUOTA_EXCEEDED } from '../shared/errors.ts';

export type QuotaPrincipal = 'user' | 'organization';

export interface QuotaLimits {
  max_storage_bytes: number | null;
  max_image_count: number | null;
  max_image_size_bytes: number | null;
}

export interface QuotaView extends QuotaLimits {
  principal_type: QuotaPrincipal;
  principal_id: string;
  principal_name: string;
  current_storage_bytes: number;
  current_image_count: number;
  updated_at: string | null;
}

export interface Recalculated {
  principal_type: QuotaPrincipal;
  principal_id: string;
  principal_name: string;
  before: { storage_bytes: number; image_count: number };
  after: { storage_bytes: number; image_count: number };
}

/** A refused change: carries the database's SQLSTATE, so /v2 and /api/v1 answer it as they answer the triggers. */
export class QuotaExceededError extends Error {
  readonly code = QUOTA_EXCEEDED;
  override name = 'QuotaExceededError';
}

const VIEW = `q.principal_type, q.principal_id, COALESCE(u.username, o.name) AS principal_name,
  q.max_storage_bytes, q.max_image_count, q.max_image_size_bytes, q.current_storage_bytes,
  q.current_image_count, q.updated_at`;
const FROM = `FROM image_quotas q
  LEFT JOIN users u ON q.principal_type = 'user' AND u.id = q.principal_id
  LEFT JOIN organizations o ON q.principal_type = 'organization' AND o.id = q.principal_id`;

function view(row: QuotaView): QuotaView {
  return { ...row, updated_at: row.updated_at ? new Date(row.updated_at).toISOString() : null };
}

export class Quotas {
  constructor(private readonly db: Database) {}

  /** An account's limits and usage (no row yet: no limits, nothing used). */
  async get(kind: QuotaPrincipal, id: string, name: string): Promise<QuotaView> {
    const rows = await this.db.query<QuotaView>(
      `SELECT ${VIEW} ${FROM} WHERE q.principal_type = $1 AND q.principal_id = $2`,
      [kind, id],
    );
    return rows[0]
      ? view(rows[0])
      : {
          principal_type: kind,
          principal_id: id,
          principal_name: name,
          max_storage_bytes: null,
          max_image_count: null,
          max_image_size_bytes: null,
          current_storage_bytes: 0,
          current_image_count: 0,
          updated_at: null,
        };
  }

  async list(page: { limit: number; offset: number }, kind?: QuotaPrincipal) {
    const rows = await this.db.query<QuotaView & { total: number }>(
      `SELECT ${VIEW}, count(*) OVER ()::int AS total ${FROM} WHERE ($1::text IS NULL OR q.principal_type = $1)
         AND COALESCE(u.username, o.name) IS NOT NULL
       ORDER BY q.principal_type, COALESCE(u.username, o.name) LIMIT $2 OFFSET $3`,
      [kind ?? null, page.limit, page.offset],
    );
    return { items: rows.map(({ total: _total, ...row }) => view(row)), total: rows[0]?.total ?? 0 };
  }

  /** Sets an account's limits (null: unlimited). A limit under the usage refuses growth, not what is stored. */
  async set(kind: QuotaPrincipal, id: string, limits: QuotaLimits, by: string): Promise<void> {
    await this.db.query(
      `INSERT INTO image_quotas (principal_type, principal_id, max_storage_bytes, max_image_count,
         max_image_size_bytes, updated_by) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (principal_type, principal_id) DO UPDATE SET max_storage_bytes = EXCLUDED.max_storage_bytes,
         max_image_count = EXCLUDED.max_image_count, max_image_size_bytes = EXCLUDED.max_image_size_bytes,
         updated_by = EXCLUDED.updated_by, updated_at = now()`,
      [kind, id, limits.max_storage_bytes, limits.max_image_count, limits.max_image_size_bytes, by],
    );
  }

  /**
   * Refuses (QuotaExceededError) when `bytes` more stored in the image `name` would break its account's
   * storage or image size limit. An image that does not exist yet counts as empty.
   */
  async admit(name: string, bytes: number, db: Queryable = this.db): Promise<void> {
    const rows = await db.query<QuotaView & { image_size: number }>(
      `SELECT ${VIEW}, COALESCE(i.total_size_bytes, 0) AS image_size FROM images i
       JOIN image_quotas q ON q.principal_type = CASE WHEN i.organization_id IS NULL THEN 'user' ELSE 'organization' END
         AND q.principal_id = COALESCE(i.organization_id, i.owner_id)
       LEFT JOIN users u ON q.principal_type = 'user' AND u.id = q.principal_id
       LEFT JOIN organizations o ON q.principal_type = 'organization' AND o.id = q.principal_id
       WHERE i.name = $1 AND i.deleted_at IS NULL`,
      [name],
    );
    const quota = rows[0];
    if (!quota || bytes <= 0) return;
    const refuse = (limit: keyof QuotaLimits, value: number, wouldBe: number) => {
      throw new QuotaExceededError(
        `quota exceeded: ${limit} of ${quota.principal_type} ${quota.principal_name} is ${value}, this upload would make it ${wouldBe}`,
      );
    };
    const storage = quota.current_storage_bytes + bytes;
    if (quota.max_storage_bytes !== null && storage > quota.max_storage_bytes)
      refuse('max_storage_bytes', quota.max_storage_bytes, storage);
    const size = quota.image_size + bytes;
    if (quota.max_image_size_bytes !== null && size > quota.max_image_size_bytes)
      refuse('max_image_size_bytes', quota.max_image_size_bytes, size);
  }

  /**
   * Recomputes every image's size and every account's usage from the rows (the seed's
   * recalculate_usage), in one transaction, limits not enforced meanwhile; resolves to the accounts
   * whose usage was wrong, before and after.
   */
  async recalculate(): Promise<Recalculated[]> {
    return this.db.transaction(async (tx) => {
      await tx.query("SELECT set_config('zedge.quota_enforce', 'off', true)");
      const before = await tx.query<QuotaView>(`SELECT ${VIEW} ${FROM}`);
      await tx.query(
        `UPDATE images i SET total_size_bytes = s.size FROM (
           SELECT i2.id, COALESCE(SUM(b.size_bytes), 0) AS size FROM images i2
           LEFT JOIN repository_blobs rb ON rb.image_id = i2.id LEFT JOIN image_blobs b ON b.digest = rb.digest
           GROUP BY i2.id) s
         WHERE s.id = i.id AND i.total_size_bytes IS DISTINCT FROM s.size`,
      );
      await tx.query(
        `INSERT INTO image_quotas (principal_type, principal_id)
         SELECT DISTINCT CASE WHEN organization_id IS NULL THEN 'user' ELSE 'organization' END,
           COALESCE(organization_id, owner_id) FROM images WHERE deleted_at IS NULL
         ON CONFLICT (principal_type, principal_id) DO NOTHING`,
      );
      await tx.query(
        `UPDATE image_quotas q SET current_storage_bytes = COALESCE(u.bytes, 0), current_image_count = COALESCE(u.count, 0),
           updated_at = now()
         FROM image_quotas q2 LEFT JOIN (
           SELECT CASE WHEN organization_id IS NULL THEN 'user' ELSE 'organization' END AS kind,
             COALESCE(organization_id, owner_id) AS account, SUM(COALESCE(total_size_bytes, 0)) AS bytes,
             COUNT(*) AS count
           FROM images WHERE deleted_at IS NULL GROUP BY 1, 2) u
           ON u.kind = q2.principal_type AND u.account = q2.principal_id
         WHERE q.id = q2.id AND (q.current_storage_bytes <> COALESCE(u.bytes, 0)
           OR q.current_image_count <> COALESCE(u.count, 0))`,
      );
      const after = await tx.query<QuotaView>(`SELECT ${VIEW} ${FROM}`);
      const earlier = new Map(before.map((row) => [`${row.principal_type}:${row.principal_id}`, row]));
      const changed: Recalculated[] = [];
      for (const row of after) {
        const old = earlier.get(`${row.principal_type}:${row.principal_id}`);
        const was = {
          storage_bytes: old?.current_storage_bytes ?? 0,
          image_count: old?.current_image_count ?? 0,
        };
        const now = { storage_bytes: row.current_storage_bytes, image_count: row.current_image_count };
        if (was.storage_bytes === now.storage_bytes && was.image_count === now.image_count) continue;
        changed.push({
          principal_type: row.principal_type,
          principal_id: row.principal_id,
          principal_name: row.principal_name,
          before: was,
          after: now,
        });
      }
      return changed;
    });
  }
}

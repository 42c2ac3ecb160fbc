// Reading the audit log (seed 3.1.7): every push, pull, delete and change the APIs made, filtered by
// image, operator, operation, status and time, newest first, a page at a time.
import type { Database } from '../shared/db/database.ts';

export interface AuditFilter {
  /** An image id, or a name (the name's every image, deleted ones included: the history stays). */
  imageId?: string | undefined;
  imageName?: string | undefined;
  /** An operator's id, or a username. */
  operatorId?: string | undefined;
  operatorName?: string | undefined;
  operations?: string[] | undefined;
  status?: string | undefined;
  /** Inclusive lower and exclusive upper bounds of created_at. */
  from?: Date | undefined;
  to?: Date | undefined;
}

export interface AuditRow {
  id: string;
  image_id: string | null;
  image_name: string | null;
  image_version_id: string | null;
  operation: string;
  operator_id: string;
  operator_name: string | null;
  operator_type: string | null;
  status: string;
  details: Record<string, unknown> | null;
  error_message: string | null;
  client_ip: string | null;
  user_agent: string | null;
  created_at: string;
}

export class AuditLog {
  constructor(private readonly db: Database) {}

  async query(filter: AuditFilter, page: { limit: number; offset: number }) {
    const rows = await this.db.query<AuditRow & { total: number }>(
      `SELECT a.id, a.image_id, i.name AS image_name, a.image_version_id, a.operation, a.operator_id,
         u.username AS operator_name, a.operator_type, a.status, a.details, a.error_message, a.client_ip,
         a.user_agent, a.created_at, count(*) OVER ()::int AS total
       FROM image_audit_logs a LEFT JOIN images i ON i.id = a.image_id LEFT JOIN users u ON u.id = a.operator_id
       WHERE ($1::uuid IS NULL OR a.image_id = $1) AND ($2::text IS NULL OR i.name = $2)
         AND ($3::uuid IS NULL OR a.operator_id = $3) AND ($4::text IS NULL OR u.username = $4)
         AND ($5::text[] IS NULL OR a.operation = ANY($5)) AND ($6::text IS NULL OR a.status = $6)
         AND ($7::timestamptz IS NULL OR a.created_at >= $7::timestamptz)
         AND ($8::timestamptz IS NULL OR a.created_at < $8::timestamptz)
       ORDER BY a.created_at DESC, a.id DESC LIMIT $9 OFFSET $10`,
      [
        filter.imageId ?? null,
        filter.imageName ?? null,
        filter.operatorId ?? null,
        filter.operatorName ?? null,
        filter.operations ?? null,
        filter.status ?? null,
        filter.from?.toISOString() ?? null,
        filter.to?.toISOString() ?? null,
        page.limit,
        page.offset,
      ],
    );
    return {
      items: rows.map(({ total: _total, ...row }) => ({
        ...row,
        created_at: new Date(row.created_at).toISOString(),
      })),
      total: rows[0]?.total ?? 0,
    };
  }
}

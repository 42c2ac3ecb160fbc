// Explicit grants on images (seed 3.1.5, 6.2.4): read, write or admin to a user, a user group or an
// organization. One grant per image and principal: granting again changes its level.
import type { Database } from '../../shared/db/database.ts';

export type PrincipalType = 'user' | 'user_group' | 'organization';
export type PermissionLevel = 'read' | 'write' | 'admin';

export interface Grant {
  id: string;
  principal: { type: PrincipalType; id: string; name: string | null };
  permission_level: PermissionLevel;
  created_at: string;
  updated_at: string;
}

interface GrantRow {
  id: string;
  principal_type: PrincipalType;
  principal_id: string;
  name: string | null;
  permission_level: PermissionLevel;
  created_at: Date;
  updated_at: Date;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// Where each kind of principal lives, and the column that names it.
const PRINCIPALS: Record<PrincipalType, { table: string; name: string; where?: string }> = {
  user: { table: 'users', name: 'username', where: "kind = 'user'" },
  user_group: { table: 'user_groups', name: 'name' },
  organization: { table: 'organizations', name: 'name' },
};

const SELECT = `SELECT p.id, p.principal_type, p.principal_id, p.permission_level, p.created_at, p.updated_at,
  COALESCE(u.username, g.name, o.name) AS name
  FROM image_permissions p
  LEFT JOIN users u ON p.principal_type = 'user' AND u.id = p.principal_id
  LEFT JOIN user_groups g ON p.principal_type = 'user_group' AND g.id = p.principal_id
  LEFT JOIN organizations o ON p.principal_type = 'organization' AND o.id = p.principal_id`;

function view(row: GrantRow): Grant {
  return {
    id: row.id,
    principal: { type: row.principal_type, id: row.principal_id, name: row.name },
    permission_level: row.permission_level,
    created_at: new Date(row.created_at).toISOString(),
    updated_at: new Date(row.updated_at).toISOString(),
  };
}

export class Grants {
  constructor(private readonly db: Database) {}

  /** The principal a grant names, by id or by name; undefined when there is none such. */
  async principal(type: PrincipalType, idOrName: string): Promise<{ id: string; name: string } | undefined> {
    const { table, name, where } = PRINCIPALS[type];
    const rows = await this.db.query<{ id: string; name: string }>(
      `SELECT id, ${name} AS name FROM ${table} WHERE ${UUID.test(idOrName) ? 'id' : name} = $1
       ${where ? `AND ${where}` : ''}`,
      [idOrName],
    );
    return rows[0];
  }

  async list(imageId: string): Promise<Grant[]> {
    const rows = await this.db.query<GrantRow>(
      `${SELECT} WHERE p.image_id = $1 ORDER BY p.created_at, p.id`,
      [imageId],
    );
    return rows.map(view);
  }

  /** Grants (or changes the level of the existing grant); `created` tells which. */
  async grant(
    imageId: string,
    type: PrincipalType,
    principalId: string,
    level: PermissionLevel,
    by: string,
  ): Promise<{ grant: Grant; created: boolean }> {
    const rows = await this.db.query<{ id: string; created: boolean }>(
      `INSERT INTO image_permissions (image_id, principal_type, principal_id, permission_level, created_by)
       VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (image_id, principal_type, principal_id)
       DO UPDATE SET permission_level = EXCLUDED.permission_level, updated_at = now()
       RETURNING id, (xmax = 0) AS created`,
      [imageId, type, principalId, level, by],
    );
    const [row] = await this.db.query<GrantRow>(`${SELECT} WHERE p.id = $1`, [rows[0]!.id]);
    return { grant: view(row!), created: rows[0]!.created };
  }

  async revoke(imageId: string, grantId: string): Promise<boolean> {
    if (!UUID.test(grantId)) return false;
    const rows = await this.db.query(
      'DELETE FROM image_permissions WHERE image_id = $1 AND id = $2 RETURNING id',
      [imageId, grantId],
    );
    return rows.length > 0;
  }
}

// Users, organizations and user groups in PostgreSQL, with their members. User and organization names
// share one namespace (the first component of an image name may be either), so neither may take the
// other's name. Validation of shapes is the routes' (JSON schemas); this module guards what only the
// database knows: names taken, the last admin of an organization, principals that still own images.

import type { Database, Queryable } from '../../shared/db/database.ts';
import { SYSTEM_USER_ID } from '../../shared/db/migrations/001-registry-core.ts';
import { problems } from '../../shared/errors.ts';
import { generatePassword, hashPassword, verifyPassword } from './passwords.ts';

export type UserKind = 'user' | 'host' | 'system';
export type MemberRole = 'admin' | 'member';

export interface User {
  id: string;
  username: string;
  display_name: string | null;
  email: string | null;
  kind: UserKind;
  is_admin: boolean;
  disabled: boolean;
  created_at: string;
  updated_at: string;
}

export interface Team {
  id: string;
  name: string;
  description: string | null;
  created_at: string;
  updated_at: string;
}

export interface Organization extends Team {
  display_name: string | null;
}

export interface Member {
  user_id: string;
  username: string;
  role: MemberRole;
  added_at: string;
}

export interface NewUser {
  username: string;
  password: string;
  email?: string | undefined;
  display_name?: string | undefined;
  kind?: 'user' | 'host' | undefined;
  is_admin?: boolean | undefined;
}

export interface UserChanges {
  password?: string | undefined;
  email?: string | null | undefined;
  display_name?: string | null | undefined;
  is_admin?: boolean | undefined;
  disabled?: boolean | undefined;
}

export interface Page {
  limit: number;
  offset: number;
}

/** Organizations and user groups: the same shape of membership, in two pairs of tables. */
type TeamKind = 'organization' | 'group';
const TEAM_TABLES: Record<TeamKind, { table: string; members: string; key: string; label: string }> = {
  organization: {
    table: 'organizations',
    members: 'organization_members',
    key: 'organization_id',
    label: 'organization',
  },
  group: { table: 'user_groups', members: 'user_group_members', key: 'group_id', label: 'group' },
};

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const USER_COLUMNS = 'id, username, display_name, email, kind, is_admin, disabled, created_at, updated_at';
export const ADMIN_USERNAME = 'admin';
// Names no account may take: the subject of anonymous tokens, the owner of pre-account images, and
// `me` (the caller, in /api/v1/users/me).
const RESERVED_NAMES = new Set(['anonymous', 'system', 'me']);

function iso(value: unknown): string {
  return value instanceof Date ? value.toISOString() : new Date(String(value)).toISOString();
}

function userView(row: User & { password_hash?: string | null }): User {
  const { password_hash: _hidden, ...user } = row;
  return { ...user, created_at: iso(row.created_at), updated_at: iso(row.updated_at) };
}

function teamView<T extends Team>(row: T): T {
  return { ...row, created_at: iso(row.created_at), updated_at: iso(row.updated_at) };
}

/** `id` or name: UUIDs are ids, anything else a name. */
function byIdOrName(column: string, value: string): { where: string; param: string } {
  return UUID.test(value) ? { where: 'id = $1', param: value } : { where: `${column} = $1`, param: value };
}

export class Accounts {
  constructor(private readonly db: Database) {}

  // ---- users ----

  async createUser(user: NewUser): Promise<User> {
    const hash = await hashPassword(user.password);
    return this.db.transaction(async (tx) => {
      await this.claimName(user.username, tx);
      const rows = await tx.query<User>(
        `INSERT INTO users (username, email, display_name, kind, is_admin, password_hash)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${USER_COLUMNS}`,
        [
          user.username,
          user.email ?? null,
          user.display_name ?? null,
          user.kind ?? 'user',
          user.is_admin ?? false,
          hash,
        ],
      );
      return userView(rows[0]!);
    });
  }

  async getUser(idOrName: string, db: Queryable = this.db): Promise<User | undefined> {
    const { where, param } = byIdOrName('username', idOrName);
    const rows = await db.query<User>(`SELECT ${USER_COLUMNS} FROM users WHERE ${where}`, [param]);
    return rows[0] && userView(rows[0]);
  }

  async listUsers(page: Page, filter: { kind?: UserKind | undefined } = {}) {
    const rows = await this.db.query<User & { total: number }>(
      `SELECT ${USER_COLUMNS}, count(*) OVER ()::int AS total FROM users
       WHERE kind <> 'system' AND ($1::text IS NULL OR kind = $1) ORDER BY username LIMIT $2 OFFSET $3`,
      [filter.kind ?? null, page.limit, page.offset],
    );
    return { items: rows.map(({ total: _total, ...row }) => userView(row)), total: rows[0]?.total ?? 0 };
  }

  async updateUser(id: string, changes: UserChanges): Promise<User | undefined> {
    const hash = changes.password === undefined ? undefined : await hashPassword(changes.password);
    const sets: string[] = [];
    const params: unknown[] = [id];
    const set = (column: string, value: unknown) => {
      params.push(value);
      sets.push(`${column} = $${params.length}`);
    };
    if (hash !== undefined) set('password_hash', hash);
    if (changes.email !== undefined) set('email', changes.email);
    if (changes.display_name !== undefined) set('display_name', changes.display_name);
    if (changes.is_admin !== undefined) set('is_admin', changes.is_admin);
    if (changes.disabled !== undefined) set('disabled', changes.disabled);
    const rows = await this.db.query<User>(
      `UPDATE users SET ${[...sets, 'updated_at = now()'].join(', ')}
       WHERE id = $1 AND kind <> 'system' RETURNING ${USER_COLUMNS}`,
      params,
    );
    return rows[0] && userView(rows[0]);
  }

  /** Deletes a user, its memberships and the grants naming it; refused while it owns live images. */
  async deleteUser(id: string): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const owned = await tx.query<{ count: number }>(
        'SELECT count(*)::int AS count FROM images WHERE owner_id = $1 AND deleted_at IS NULL',
        [id],
      );
      if (owned[0]!.count > 0)
        throw problems.conflict(
          `the user owns ${owned[0]!.count} image(s): delete them or give them to another owner first`,
        );
      await tx.query("DELETE FROM image_permissions WHERE principal_type = 'user' AND principal_id = $1", [
        id,
      ]);
      // Soft-deleted images keep their owner for the audit trail; they go to the system account.
      await tx.query('UPDATE images SET owner_id = $2 WHERE owner_id = $1', [id, SYSTEM_USER_ID]);
      const rows = await tx.query("DELETE FROM users WHERE id = $1 AND kind <> 'system' RETURNING id", [id]);
      return rows.length > 0;
    });
  }

  /**
   * The user a username and password name, with its password hash (for the caller's cache), or undefined
   * when the pair is wrong or the account cannot sign in (disabled, the system account).
   */
  async verify(username: string, password: string): Promise<{ user: User; hash: string } | undefined> {
    const rows = await this.db.query<User & { password_hash: string | null }>(
      `SELECT ${USER_COLUMNS}, password_hash FROM users WHERE username = $1`,
      [username],
    );
    const row = rows[0];
    if (!row || row.disabled || row.kind === 'system' || !row.password_hash) {
      // Spend the same time as a real check, so that timing does not tell which usernames exist.
      await verifyPassword(password, DUMMY_HASH);
      return undefined;
    }
    if (!(await verifyPassword(password, row.password_hash))) return undefined;
    return { user: userView(row), hash: row.password_hash };
  }

  /** The stored password hash of a live account (for checking cached Basic credentials). */
  async signInHash(username: string): Promise<{ user: User; hash: string } | undefined> {
    const rows = await this.db.query<User & { password_hash: string | null }>(
      `SELECT ${USER_COLUMNS}, password_hash FROM users WHERE username = $1`,
      [username],
    );
    const row = rows[0];
    if (!row || row.disabled || row.kind === 'system' || !row.password_hash) return undefined;
    return { user: userView(row), hash: row.password_hash };
  }

  /**
   * The `admin` account, made at first start with `password` (or a generated one, returned so that it
   * can be shown once). Several registries starting on one database make it once.
   */
  async bootstrapAdmin(password: string | undefined): Promise<{ created: boolean; generated?: string }> {
    if (await this.getUser(ADMIN_USERNAME)) return { created: false };
    const chosen = password || generatePassword();
    const hash = await hashPassword(chosen);
    const rows = await this.db.query(
      `INSERT INTO users (username, display_name, kind, is_admin, password_hash)
       VALUES ($1, 'Administrator', 'user', TRUE, $2) ON CONFLICT (username) DO NOTHING RETURNING id`,
      [ADMIN_USERNAME, hash],
    );
    if (rows.length === 0) return { created: false };
    return password ? { created: true } : { created: true, generated: chosen };
  }

  /**
   * A host account for services started beside the registry in one process (`zedge-p2p start`): made
   * when missing, given a new random password at every start; its `user:password` credential.
   */
  async serviceCredential(username: string): Promise<string> {
    const password = generatePassword();
    const hash = await hashPassword(password);
    const rows = await this.db.query(
      `INSERT INTO users (username, display_name, kind, password_hash) VALUES ($1, 'local services', 'host', $2)
       ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash, updated_at = now()
       WHERE users.kind = 'host' RETURNING id`,
      [username, hash],
    );
    if (rows.length === 0) throw new Error(`the account ${username} exists and is not a host account`);
    return `${username}:${password}`;
  }

  // ---- organizations and groups ----

  async createTeam<K extends TeamKind>(
    kind: K,
    team: { name: string; description?: string | undefined; display_name?: string | undefined },
    creatorId: string,
  ): Promise<K extends 'organization' ? Organization : Team> {
    const { members, key } = TEAM_TABLES[kind];
    return this.db.transaction(async (tx) => {
      if (kind === 'organization') await this.claimName(team.name, tx);
      else await this.refuseTaken(tx, 'user_groups', team.name, 'group');
      const rows =
        kind === 'organization'
          ? await tx.query<Organization>(
              `INSERT INTO organizations (name, display_name, description, created_by) VALUES ($1, $2, $3, $4)
               RETURNING id, name, display_name, description, created_at, updated_at`,
              [team.name, team.display_name ?? null, team.description ?? null, creatorId],
            )
          : await tx.query<Team>(
              `INSERT INTO user_groups (name, description, created_by) VALUES ($1, $2, $3)
               RETURNING id, name, description, created_at, updated_at`,
              [team.name, team.description ?? null, creatorId],
            );
      const created = rows[0]!;
      // The creator administers what it made (the system account, for admin-made teams, does not).
      await tx.query(
        `INSERT INTO ${members} (${key}, user_id, role) SELECT $1, id, 'admin' FROM users
         WHERE id = $2 AND kind = 'user'`,
        [created.id, creatorId],
      );
      return teamView(created) as K extends 'organization' ? Organization : Team;
    });
  }

  async getTeam<K extends TeamKind>(
    kind: K,
    idOrName: string,
  ): Promise<(K extends 'organization' ? Organization : Team) | undefined> {
    const { table } = TEAM_TABLES[kind];
    const { where, param } = byIdOrName('name', idOrName);
    const rows = await this.db.query<Organization>(
      `SELECT id, name, ${kind === 'organization' ? 'display_name, ' : ''}description, created_at, updated_at
       FROM ${table} WHERE ${where}`,
      [param],
    );
    return rows[0] && (teamView(rows[0]) as K extends 'organization' ? Organization : Team);
  }

  /** Teams of a kind, all of them or those `memberId` belongs to. */
  async listTeams(kind: TeamKind, page: Page, memberId?: string) {
    const { table, members, key } = TEAM_TABLES[kind];
    const rows = await this.db.query<Organization & { total: number }>(
      `SELECT t.id, t.name, ${kind === 'organization' ? 't.display_name, ' : ''}t.description, t.created_at,
         t.updated_at, count(*) OVER ()::int AS total
       FROM ${table} t
       WHERE $1::uuid IS NULL OR EXISTS (SELECT 1 FROM ${members} m WHERE m.${key} = t.id AND m.user_id = $1)
       ORDER BY t.name LIMIT $2 OFFSET $3`,
      [memberId ?? null, page.limit, page.offset],
    );
    return { items: rows.map(({ total: _total, ...row }) => teamView(row)), total: rows[0]?.total ?? 0 };
  }

  async updateTeam(
    kind: TeamKind,
    id: string,
    changes: { description?: string | null | undefined; display_name?: string | null | undefined },
  ): Promise<boolean> {
    const { table } = TEAM_TABLES[kind];
    const sets = ['updated_at = now()'];
    const params: unknown[] = [id];
    if (changes.description !== undefined) {
      params.push(changes.description);
      sets.push(`description = $${params.length}`);
    }
    if (kind === 'organization' && changes.display_name !== undefined) {
      params.push(changes.display_name);
      sets.push(`display_name = $${params.length}`);
    }
    const rows = await this.db.query(
      `UPDATE ${table} SET ${sets.join(', ')} WHERE id = $1 RETURNING id`,
      params,
    );
    return rows.length > 0;
  }

  /** Deletes a team and the grants naming it; an organization that still has live images is kept. */
  async deleteTeam(kind: TeamKind, id: string): Promise<boolean> {
    const { table } = TEAM_TABLES[kind];
    return this.db.transaction(async (tx) => {
      if (kind === 'organization') {
        const owned = await tx.query<{ count: number }>(
          'SELECT count(*)::int AS count FROM images WHERE organization_id = $1 AND deleted_at IS NULL',
          [id],
        );
        if (owned[0]!.count > 0)
          throw problems.conflict(`the organization has ${owned[0]!.count} image(s): delete them first`);
        await tx.query('UPDATE images SET organization_id = NULL WHERE organization_id = $1', [id]);
      }
      await tx.query('DELETE FROM image_permissions WHERE principal_type = $1 AND principal_id = $2', [
        kind === 'organization' ? 'organization' : 'user_group',
        id,
      ]);
      const rows = await tx.query(`DELETE FROM ${table} WHERE id = $1 RETURNING id`, [id]);
      return rows.length > 0;
    });
  }

  async members(kind: TeamKind, teamId: string): Promise<Member[]> {
    const { members, key } = TEAM_TABLES[kind];
    const rows = await this.db.query<Member>(
      `SELECT m.user_id, u.username, m.role, m.created_at AS added_at FROM ${members} m
       JOIN users u ON u.id = m.user_id WHERE m.${key} = $1 ORDER BY u.username`,
      [teamId],
    );
    return rows.map((row) => ({ ...row, added_at: iso(row.added_at) }));
  }

  async roleIn(kind: TeamKind, teamId: string, userId: string): Promise<MemberRole | undefined> {
    const { members, key } = TEAM_TABLES[kind];
    const rows = await this.db.query<{ role: MemberRole }>(
      `SELECT role FROM ${members} WHERE ${key} = $1 AND user_id = $2`,
      [teamId, userId],
    );
    return rows[0]?.role;
  }

  /** Adds a member or changes its role; hosts and the system account cannot be members. */
  async setMember(kind: TeamKind, teamId: string, userId: string, role: MemberRole): Promise<Member> {
    const { members, key, label } = TEAM_TABLES[kind];
    return this.db.transaction(async (tx) => {
      const user = await this.getUser(userId, tx);
      if (user?.kind !== 'user') throw problems.badRequest(`only user accounts can be members of a ${label}`);
      if (role === 'member') await this.keepAnAdmin(kind, teamId, userId, tx);
      const rows = await tx.query<{ created_at: Date }>(
        `INSERT INTO ${members} (${key}, user_id, role) VALUES ($1, $2, $3)
         ON CONFLICT (${key}, user_id) DO UPDATE SET role = EXCLUDED.role RETURNING created_at`,
        [teamId, userId, role],
      );
      return { user_id: user.id, username: user.username, role, added_at: iso(rows[0]!.created_at) };
    });
  }

  async removeMember(kind: TeamKind, teamId: string, userId: string): Promise<boolean> {
    const { members, key } = TEAM_TABLES[kind];
    return this.db.transaction(async (tx) => {
      await this.keepAnAdmin(kind, teamId, userId, tx);
      const rows = await tx.query(
        `DELETE FROM ${members} WHERE ${key} = $1 AND user_id = $2 RETURNING user_id`,
        [teamId, userId],
      );
      return rows.length > 0;
    });
  }

  /** Refuses to leave a team that has admins without one (a registry admin can still manage it). */
  private async keepAnAdmin(kind: TeamKind, teamId: string, userId: string, tx: Queryable): Promise<void> {
    const { members, key, label } = TEAM_TABLES[kind];
    const admins = await tx.query<{ user_id: string }>(
      `SELECT user_id FROM ${members} WHERE ${key} = $1 AND role = 'admin' FOR UPDATE`,
      [teamId],
    );
    if (admins.length === 1 && admins[0]!.user_id === userId)
      throw problems.conflict(
        `that would leave the ${label} without an admin: make another member admin first`,
      );
  }

  /** User and organization names are one namespace (the first component of image names). */
  private async claimName(name: string, tx: Queryable): Promise<void> {
    // Two creations of one name at once: the advisory lock makes the second see the first.
    if (RESERVED_NAMES.has(name)) throw problems.conflict(`the name "${name}" is reserved`);
    await tx.query('SELECT pg_advisory_xact_lock(7270004, hashtext($1))', [name]);
    await this.refuseTaken(tx, 'users', name, 'user', 'username');
    await this.refuseTaken(tx, 'organizations', name, 'organization');
  }

  private async refuseTaken(tx: Queryable, table: string, name: string, what: string, column = 'name') {
    const rows = await tx.query(`SELECT 1 FROM ${table} WHERE ${column} = $1`, [name]);
    if (rows.length > 0) throw problems.conflict(`the name "${name}" is taken by a ${what}`);
  }
}

// A well-formed hash that no password matches: checked against when the user does not exist.
const DUMMY_HASH = `scrypt$15$8$1$${Buffer.alloc(16).toString('base64')}$${Buffer.alloc(32).toString('base64')}`;

// Who may do what to an image: the seed's model (4.4) in one place, used by /v2, /api/v1, torrents and
// distribution jobs alike. An image grants each caller a level: none < read < write < admin.
// - public images: read for everyone, anonymous callers included;
// - the owner: admin; an admin of the image's organization: admin;
// - organization-visible images: read for the organization's members;
// - explicit grants (image_permissions) to the user, to a group it is in, to an organization it is in;
// - registry admins: admin on everything; host accounts (agents, seeders): read on everything;
// the best of these counts. Tokens of the Docker flow further limit a caller to the actions they list.
import type { Database } from '../../shared/db/database.ts';
import type { User } from './accounts.ts';
import type { AccessEntry } from './tokens.ts';

export const Level = { none: 0, read: 1, write: 2, admin: 3 } as const;
export type LevelName = keyof typeof Level;
export type LevelValue = (typeof Level)[LevelName];

export function levelName(level: number): LevelName {
  return (['none', 'read', 'write', 'admin'] as const)[Math.max(0, Math.min(3, level))]!;
}

/** Who is calling: a user (people, services, hosts) or nobody, and what its token limits it to. */
export interface Principal {
  user: User | undefined;
  /** The token's `access` claim; undefined for Basic credentials and API tokens (the whole user). */
  scope: AccessEntry[] | undefined;
  via: 'anonymous' | 'basic' | 'bearer';
}

export const ANONYMOUS: Principal = { user: undefined, scope: undefined, via: 'anonymous' };

export type RepositoryAction = 'pull' | 'push' | 'delete';

export interface ImageRef {
  id: string;
  name: string;
  owner_id: string;
  organization_id: string | null;
  visibility: string;
}

/** What `authorize` decided: allowed (with the image, or how to create it), or why not. */
export type Decision =
  | { allowed: true; image: ImageRef | undefined; create?: { organizationId: string | undefined } }
  | { allowed: false; reason: 'unauthenticated' | 'forbidden' | 'insufficient_scope'; message: string };

const NEEDED: Record<RepositoryAction, number> = { pull: Level.read, push: Level.write, delete: Level.write };
// The token actions that allow each action ('*' is Docker's "everything").
const TOKEN_ACTIONS: Record<RepositoryAction, string[]> = {
  pull: ['pull', '*'],
  push: ['push', '*'],
  delete: ['delete', 'push', '*'],
};

/**
 * The level a user (SQL parameter `$n`, NULL for anonymous) has on the image aliased `i`: one SQL
 * expression, so that lists (catalog, images, blobs) are filtered by the same rule as single checks.
 */
export function levelSql(user: string, i = 'i'): string {
  return `GREATEST(
    CASE WHEN ${i}.visibility = 'public' THEN 1 ELSE 0 END,
    CASE WHEN ${i}.owner_id = ${user} THEN 3 ELSE 0 END,
    COALESCE((SELECT CASE WHEN m.role = 'admin' THEN 3 WHEN ${i}.visibility = 'organization' THEN 1 ELSE 0 END
      FROM organization_members m WHERE m.organization_id = ${i}.organization_id AND m.user_id = ${user}), 0),
    COALESCE((SELECT MAX(CASE p.permission_level WHEN 'admin' THEN 3 WHEN 'write' THEN 2 ELSE 1 END)
      FROM image_permissions p WHERE p.image_id = ${i}.id AND (
        (p.principal_type = 'user' AND p.principal_id = ${user})
        OR (p.principal_type = 'user_group'
          AND p.principal_id IN (SELECT g.group_id FROM user_group_members g WHERE g.user_id = ${user}))
        OR (p.principal_type = 'organization'
          AND p.principal_id IN (SELECT o.organization_id FROM organization_members o WHERE o.user_id = ${user})))),
      0))`;
}

/** A level every image grants this principal whatever its rules: admin for admins, read for hosts. */
export function floorLevel(principal: Principal): number {
  if (principal.user?.is_admin) return Level.admin;
  if (principal.user?.kind === 'host') return Level.read;
  return Level.none;
}

/** The user id to put in levelSql's parameter (NULL for anonymous callers). */
export function userParam(principal: Principal): string | null {
  return principal.user?.id ?? null;
}

/** Whether the principal's token (if it is limited to a list) allows `action` on `type:name`. */
export function tokenAllows(principal: Principal, type: string, name: string, actions: string[]): boolean {
  if (!principal.scope) return true;
  return principal.scope.some(
    (entry) =>
      entry.type === type && entry.name === name && entry.actions.some((action) => actions.includes(action)),
  );
}

export class Access {
  constructor(private readonly db: Database) {}

  /** The live image called `name` and the principal's level on it. */
  async image(principal: Principal, name: string): Promise<{ image: ImageRef | undefined; level: number }> {
    const rows = await this.db.query<ImageRef & { level: number }>(
      `SELECT i.id, i.name, i.owner_id, i.organization_id, i.visibility, ${levelSql('$2::uuid')} AS level
       FROM images i WHERE i.name = $1 AND i.deleted_at IS NULL`,
      [name, userParam(principal)],
    );
    const row = rows[0];
    if (!row) return { image: undefined, level: Level.none };
    const { level, ...image } = row;
    return { image, level: Math.max(level, floorLevel(principal)) };
  }

  /** The principal's level on the image with this id (none when there is no such live image). */
  async levelOn(principal: Principal, imageId: string): Promise<number> {
    const rows = await this.db.query<{ level: number }>(
      `SELECT ${levelSql('$2::uuid')} AS level FROM images i WHERE i.id = $1 AND i.deleted_at IS NULL`,
      [imageId, userParam(principal)],
    );
    return rows[0] ? Math.max(rows[0].level, floorLevel(principal)) : Level.none;
  }

  /**
   * May the principal do `action` on the repository `name`? For a push to a repository that does not
   * exist yet, whether the principal may create it there (and under which organization).
   */
  async authorize(principal: Principal, name: string, action: RepositoryAction): Promise<Decision> {
    const { image, level } = await this.image(principal, name);
    let decision: Decision;
    if (image) {
      decision =
        level >= NEEDED[action]
          ? { allowed: true, image }
          : refusal(principal, `${action} access to ${name} is denied`);
    } else if (action === 'pull' || action === 'delete') {
      // Nothing to protect: the handler answers that the repository (or manifest) is unknown.
      decision = principal.user
        ? { allowed: true, image: undefined }
        : refusal(principal, 'authentication required');
    } else {
      decision = await this.creation(principal, name);
    }
    if (decision.allowed && !tokenAllows(principal, 'repository', name, TOKEN_ACTIONS[action]))
      return {
        allowed: false,
        reason: 'insufficient_scope',
        message: `the token does not grant ${action} on ${name}: ask for a new one`,
      };
    return decision;
  }

  /** Actions (of pull, push, delete, *) the principal may do on `name`, for the token endpoint. */
  async grantableActions(principal: Principal, name: string, requested: string[]): Promise<string[]> {
    const { image, level } = await this.image(principal, name);
    const mayCreate = !image && (await this.creation(principal, name)).allowed;
    return requested.filter((action) => {
      if (action === 'pull') return level >= Level.read || mayCreate;
      if (action === 'push' || action === 'delete') return level >= Level.write || mayCreate;
      if (action === '*') return level >= Level.admin || mayCreate;
      return false;
    });
  }

  /** Whether the principal may read a blob: admins and hosts any, others through an image they may read. */
  async mayReadBlob(principal: Principal, digest: string): Promise<boolean> {
    const repositories = scopedRepositories(principal, digest);
    if (repositories?.length === 0) return false;
    const everything = floorLevel(principal) >= Level.read;
    if (everything && !repositories) return true;
    const rows = await this.db.query(
      `SELECT 1 FROM repository_blobs rb JOIN images i ON i.id = rb.image_id
       WHERE rb.digest = $1 AND i.deleted_at IS NULL AND ($4 OR ${levelSql('$2::uuid')} >= 1)
         AND ($3::text[] IS NULL OR i.name = ANY($3)) LIMIT 1`,
      [digest, userParam(principal), repositories, everything],
    );
    return rows.length > 0;
  }

  /** Whether (and where) the principal may create an image called `name` by pushing to it. */
  private async creation(principal: Principal, name: string): Promise<Decision> {
    const user = principal.user;
    if (!user) return refusal(principal, 'authentication required to push');
    if (user.kind !== 'user') return refusal(principal, 'host accounts cannot push');
    const namespace = name.includes('/') ? name.slice(0, name.indexOf('/')) : undefined;
    if (!namespace) return { allowed: true, image: undefined, create: { organizationId: undefined } };
    const rows = await this.db.query<{ org_id: string | null; role: string | null; owner_id: string | null }>(
      `SELECT (SELECT id FROM organizations WHERE name = $1) AS org_id,
         (SELECT m.role FROM organization_members m JOIN organizations o ON o.id = m.organization_id
          WHERE o.name = $1 AND m.user_id = $2) AS role,
         (SELECT id FROM users WHERE username = $1) AS owner_id`,
      [namespace, user.id],
    );
    const { org_id, role, owner_id } = rows[0]!;
    if (org_id) {
      return role || user.is_admin
        ? { allowed: true, image: undefined, create: { organizationId: org_id } }
        : refusal(principal, `only members of the organization ${namespace} may push under ${namespace}/`);
    }
    if (owner_id && owner_id !== user.id && !user.is_admin)
      return refusal(principal, `the namespace ${namespace}/ belongs to the user ${namespace}`);
    return { allowed: true, image: undefined, create: { organizationId: undefined } };
  }
}

function refusal(principal: Principal, message: string): Decision {
  return { allowed: false, reason: principal.user ? 'forbidden' : 'unauthenticated', message };
}

/**
 * The repositories a Docker-flow token lets a blob be read through (a blob belongs to repositories);
 * null when the principal is not limited to a list, or is limited to this very blob.
 */
function scopedRepositories(principal: Principal, digest: string): string[] | null {
  if (!principal.scope) return null;
  if (principal.scope.some((entry) => entry.type === 'blob' && entry.name === digest)) return null;
  return principal.scope
    .filter((entry) => entry.type === 'repository' && entry.actions.some((a) => a === 'pull' || a === '*'))
    .map((entry) => entry.name);
}

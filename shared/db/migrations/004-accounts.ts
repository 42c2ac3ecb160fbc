// Accounts and access control (seed sections 3.1.5 and 4.4): users with hashed passwords, organizations
// and user groups with members, and explicit grants on images. Beside the seed:
// - users.kind: 'user' (people and service accounts), 'host' (agents and seeders: they register, heartbeat
//   and read layers, never push) or 'system' (the owner of what was pushed before accounts existed).
// - Members carry a role: an organization's 'admin' manages it and has admin on all its images; a
//   'member' reads its organization-visible images and may push new images under its namespace.
// - image_permissions.principal_id has no foreign key (it names a user, a group or an organization);
//   deleting a principal deletes its grants in the same transaction.
// - signing_keys keeps the RSA key that signs bearer tokens when none is configured, so that every
//   registry of a deployment (one database) signs and verifies with the same key.
import { SYSTEM_USER_ID } from './001-registry-core.ts';
import type { Migration } from './index.ts';

export const accounts: Migration = {
  version: 4,
  name: 'accounts',
  statements: [
    'ALTER TABLE users ADD COLUMN display_name VARCHAR(255)',
    'ALTER TABLE users ADD COLUMN password_hash TEXT',
    `ALTER TABLE users ADD COLUMN kind VARCHAR(16) NOT NULL DEFAULT 'user'
      CHECK (kind IN ('user', 'host', 'system'))`,
    'ALTER TABLE users ADD COLUMN is_admin BOOLEAN NOT NULL DEFAULT FALSE',
    'ALTER TABLE users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE',
    `UPDATE users SET kind = 'system' WHERE id = '${SYSTEM_USER_ID}'`,
    'ALTER TABLE organizations ADD COLUMN display_name VARCHAR(255)',
    'ALTER TABLE organizations ADD COLUMN description TEXT',
    'ALTER TABLE organizations ADD COLUMN created_by UUID',
    `CREATE TABLE organization_members (
      organization_id UUID NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
      user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
      role VARCHAR(16) NOT NULL CHECK (role IN ('admin', 'member')),
      created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
      PRIMARY KEY (organization_id, user_id))`,
    'CREATE INDEX idx_org_members_user ON organization_members(user_id)',
    `CREATE TABLE user_groups (
      id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
      name VARCHAR(255) NOT NULL UNIQUE,
      description TEXT,
      created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
      updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
      created_by UUID)`,
    `CREATE TABLE user_group_members (
      group_id UUID NOT NULL REFERENCES user_groups(id) ON DELETE CASCADE,
      user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
      role VARCHAR(16) NOT NULL CHECK (role IN ('admin', 'member')),
      created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
      PRIMARY KEY (group_id, user_id))`,
    'CREATE INDEX idx_group_members_user ON user_group_members(user_id)',
    `CREATE TABLE image_permissions (
      id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
      image_id UUID NOT NULL REFERENCES images(id) ON DELETE CASCADE,
      principal_type VARCHAR(50) NOT NULL CHECK (principal_type IN ('user', 'user_group', 'organization')),
      principal_id UUID NOT NULL,
      permission_level VARCHAR(50) NOT NULL CHECK (permission_level IN ('read', 'write', 'admin')),
      created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
      updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
      created_by UUID,
      CONSTRAINT unique_permission UNIQUE (image_id, principal_type, principal_id))`,
    'CREATE INDEX idx_perms_principal ON image_permissions(principal_type, principal_id)',
    `CREATE TABLE signing_keys (
      id INT PRIMARY KEY CHECK (id = 1),
      kid VARCHAR(64) NOT NULL,
      private_key_pem TEXT NOT NULL,
      public_key_pem TEXT NOT NULL,
      created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)`,
  ],
};

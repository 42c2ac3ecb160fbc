// Quotas (seed 3.1.6, 4.5): per user and per organization, storage bytes, image count and the size of
// one image. Beside the seed:
// - An image counts against its organization when it has one, else against its owner; its size is
//   the sum of the blobs its repository holds (uploaded or mounted), kept in images.total_size_bytes.
// - Usage is kept by triggers, in the transaction of the change itself: a blob linked to or unlinked
//   from a repository changes its image's size, and an image created, resized, moved or (soft)
//   deleted changes its account's usage. Whatever writes those rows (pushes, mounts, REST uploads,
//   deletes, garbage collection) keeps usage true without knowing of quotas.
// - The same trigger enforces the limits: a change that grows usage past a limit fails with SQLSTATE
//   ZQ001 and a message naming the quota (the APIs answer 403 DENIED / quota-exceeded). Shrinking
//   never fails, even over a lowered limit; nor does a recalculation. NULL limits are unlimited; a row is made for every account
//   that has images, limits or not, so usage can be read.
// - user_group quotas (in the seed's principal_type) are not kept: images belong to users and
//   organizations only.
import { QUOTA_EXCEEDED } from '../../errors.ts';
import type { Migration } from './index.ts';

export const quotas: Migration = {
  version: 5,
  name: 'quotas',
  statements: [
    `CREATE TABLE image_quotas (
      id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
      principal_type VARCHAR(50) NOT NULL CHECK (principal_type IN ('user', 'organization')),
      principal_id UUID NOT NULL,
      max_storage_bytes BIGINT CHECK (max_storage_bytes >= 0),
      max_image_count INT CHECK (max_image_count >= 0),
      max_image_size_bytes BIGINT CHECK (max_image_size_bytes >= 0),
      current_storage_bytes BIGINT NOT NULL DEFAULT 0,
      current_image_count INT NOT NULL DEFAULT 0,
      created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
      updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
      updated_by UUID,
      CONSTRAINT unique_quota UNIQUE (principal_type, principal_id))`,
    // Adds to an account's usage and checks the limits that grew.
    `CREATE FUNCTION zedge_quota_add(kind TEXT, account UUID, bytes BIGINT, images INT, image_size BIGINT,
        image_grew BOOLEAN) RETURNS VOID LANGUAGE plpgsql AS $$
      DECLARE
        q image_quotas%ROWTYPE;
        who TEXT;
        broken TEXT;
        limit_value BIGINT;
        would_be BIGINT;
      BEGIN
        INSERT INTO image_quotas (principal_type, principal_id, current_storage_bytes, current_image_count)
          VALUES (kind, account, GREATEST(bytes, 0), GREATEST(images, 0))
          ON CONFLICT (principal_type, principal_id) DO UPDATE
            SET current_storage_bytes = GREATEST(image_quotas.current_storage_bytes + bytes, 0),
                current_image_count = GREATEST(image_quotas.current_image_count + images, 0),
                updated_at = now()
          RETURNING * INTO q;
        IF bytes > 0 AND q.max_storage_bytes IS NOT NULL AND q.current_storage_bytes > q.max_storage_bytes THEN
          broken := 'max_storage_bytes'; limit_value := q.max_storage_bytes; would_be := q.current_storage_bytes;
        ELSIF images > 0 AND q.max_image_count IS NOT NULL AND q.current_image_count > q.max_image_count THEN
          broken := 'max_image_count'; limit_value := q.max_image_count; would_be := q.current_image_count;
        ELSIF image_grew AND q.max_image_size_bytes IS NOT NULL AND image_size > q.max_image_size_bytes THEN
          broken := 'max_image_size_bytes'; limit_value := q.max_image_size_bytes; would_be := image_size;
        END IF;
        -- A recalculation sets zedge.quota_enforce to off in its transaction: it corrects, never refuses.
        IF broken IS NOT NULL AND COALESCE(current_setting('zedge.quota_enforce', true), '') <> 'off' THEN
          IF kind = 'user' THEN
            SELECT username INTO who FROM users WHERE id = account;
          ELSE
            SELECT name INTO who FROM organizations WHERE id = account;
          END IF;
          RAISE EXCEPTION USING ERRCODE = '${QUOTA_EXCEEDED}', MESSAGE = format(
            'quota exceeded: %s of %s %s is %s, this would make it %s', broken, kind, who, limit_value, would_be);
        END IF;
      END $$`,
    `CREATE FUNCTION zedge_image_usage() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        old_live BOOLEAN := TG_OP <> 'INSERT' AND OLD.deleted_at IS NULL;
        new_live BOOLEAN := TG_OP <> 'DELETE' AND NEW.deleted_at IS NULL;
        old_kind TEXT;
        old_account UUID;
        new_kind TEXT;
        new_account UUID;
        old_size BIGINT := 0;
        new_size BIGINT := 0;
      BEGIN
        IF TG_OP <> 'INSERT' THEN
          old_kind := CASE WHEN OLD.organization_id IS NULL THEN 'user' ELSE 'organization' END;
          old_account := COALESCE(OLD.organization_id, OLD.owner_id);
          old_size := COALESCE(OLD.total_size_bytes, 0);
        END IF;
        IF TG_OP <> 'DELETE' THEN
          new_kind := CASE WHEN NEW.organization_id IS NULL THEN 'user' ELSE 'organization' END;
          new_account := COALESCE(NEW.organization_id, NEW.owner_id);
          new_size := COALESCE(NEW.total_size_bytes, 0);
        END IF;
        IF old_live AND new_live AND old_kind = new_kind AND old_account = new_account THEN
          IF new_size <> old_size THEN
            PERFORM zedge_quota_add(new_kind, new_account, new_size - old_size, 0, new_size, new_size > old_size);
          END IF;
        ELSE
          IF old_live THEN
            PERFORM zedge_quota_add(old_kind, old_account, -old_size, -1, old_size, FALSE);
          END IF;
          IF new_live THEN
            PERFORM zedge_quota_add(new_kind, new_account, new_size, 1, new_size, new_size > 0);
          END IF;
        END IF;
        RETURN NULL;
      END $$`,
    `CREATE TRIGGER images_usage AFTER INSERT OR DELETE OR UPDATE OF total_size_bytes, owner_id, organization_id,
      deleted_at ON images FOR EACH ROW EXECUTE FUNCTION zedge_image_usage()`,
    `CREATE FUNCTION zedge_repository_blob_size() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'INSERT' THEN
          UPDATE images SET total_size_bytes = COALESCE(total_size_bytes, 0)
            + COALESCE((SELECT size_bytes FROM image_blobs WHERE digest = NEW.digest), 0) WHERE id = NEW.image_id;
        ELSE
          UPDATE images SET total_size_bytes = GREATEST(COALESCE(total_size_bytes, 0)
            - COALESCE((SELECT size_bytes FROM image_blobs WHERE digest = OLD.digest), 0), 0) WHERE id = OLD.image_id;
        END IF;
        RETURN NULL;
      END $$`,
    `CREATE TRIGGER repository_blobs_size AFTER INSERT OR DELETE ON repository_blobs
      FOR EACH ROW EXECUTE FUNCTION zedge_repository_blob_size()`,
    // What was there before: sizes and usage from the rows (limits: none yet).
    `UPDATE images i SET total_size_bytes = (SELECT COALESCE(SUM(b.size_bytes), 0) FROM repository_blobs rb
      JOIN image_blobs b ON b.digest = rb.digest WHERE rb.image_id = i.id)`,
    `INSERT INTO image_quotas (principal_type, principal_id, current_storage_bytes, current_image_count)
      SELECT CASE WHEN organization_id IS NULL THEN 'user' ELSE 'organization' END,
        COALESCE(organization_id, owner_id), SUM(COALESCE(total_size_bytes, 0)), COUNT(*)
      FROM images WHERE deleted_at IS NULL GROUP BY 1, 2
      ON CONFLICT (principal_type, principal_id) DO UPDATE
        SET current_storage_bytes = EXCLUDED.current_storage_bytes,
            current_image_count = EXCLUDED.current_image_count`,
  ],
};

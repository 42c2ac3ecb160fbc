// Garbage collection: blobs nothing references leave PostgreSQL and the blob store, online.
//
// What references a blob: a version (version_blobs; image_blobs.reference_count follows it in the same
// transaction as the version's change). Deleting a version (/v2 DELETE by digest, DELETE /api/v1/images/
// <id>/versions/<vid>) or an image releases its references; deleting a tag releases the tag only (the
// version stays pullable by digest until it is deleted). A blob uploaded or mounted but not referenced
// yet is kept for a grace period after its last upload or mount (ZEDGE_GC_GRACE_SECONDS), the time a
// client takes between its blob uploads and its manifest.
//
// Why a concurrent push never loses a blob (image_blobs.status is the agreement):
// - The collector marks a blob 'deleting' with one UPDATE whose conditions are the row's own columns
//   (reference_count = 0, status 'active', updated_at before the grace), so PostgreSQL re-checks them on
//   the newest row version if a writer changed the row meanwhile.
// - A manifest push locks the rows of the blobs it references (FOR UPDATE, in digest order) and refuses
//   a blob that is gone or 'deleting' (MANIFEST_BLOB_UNKNOWN: upload it again); then it raises their
//   reference counts in the same transaction. A mount links a blob only with an UPDATE that requires
//   'active' and restarts its grace period. So either the writer comes first (and the marking no longer
//   matches) or the collector does (and the writer is refused, before anything references the blob).
// - An upload that commits a blob the collector marked revives it ('active' again), under the blob's lock
//   (the state store's `blob:<digest>`, the one uploads commit under); the collector deletes a marked
//   blob's bytes and row under that lock, and only if it is still 'deleting'.
// A run that dies leaves 'deleting' rows; the next run finishes them.
//
// Store files without a row (orphans: a registry died between writing a blob's bytes and committing its
// row, or the row's transaction failed after the bytes were moved into place) are found by listing the
// store (streamed), and freed when written before the grace period and, checked again under the blob's
// lock, still without a row. An upload moves its bytes into place and commits the row under that lock,
// so under it a file without a row is not one an upload is committing; the grace period covers a commit
// that outlives the lock's expiry (LOCK_TTL_MS). A dry run reports them without taking the lock.
//
// One run at a time per deployment: gc_runs has a unique index on its 'running' rows, so of several
// registries (or requests) starting one, one inserts and the others get 409. A running run's registry
// touches its row every HEARTBEAT_MS; one silent for ABANDONED_AFTER_SECONDS is taken for dead. With
// ZEDGE_GC_INTERVAL_SECONDS every registry asks for a scheduled run when one is due (the last run that was
// not a dry run started that long ago), with the same insert: one of them starts it (GcScheduler).
import type { BlobStore, StoredBlob } from '../shared/blobstore/index.ts';
import type { Database } from '../shared/db/database.ts';
import type { Digest } from '../shared/digest.ts';
import { problems } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import type { StateStore } from '../shared/state.ts';

export interface GcOptions {
  dryRun: boolean;
  /** Unreferenced blobs uploaded or mounted more recently than this are kept. */
  graceSeconds: number;
  startedBy?: string | undefined;
}

export interface FreedBlob {
  digest: string;
  size: number;
  /** A store file that had no image_blobs row. */
  orphan?: true;
}

export interface GcRun {
  id: string;
  dry_run: boolean;
  status: 'running' | 'completed' | 'failed';
  grace_seconds: number;
  /** Unreferenced blobs with a row found (for a dry run: what a run would free); orphans are not in it. */
  blobs_total: number | null;
  blobs_examined: number;
  /** Blobs freed (for a dry run: that would be), the orphans among them. */
  blobs_freed: number;
  bytes_freed: number;
  /** The blobs freed (or, for a dry run, that would be), the first 1,000. */
  freed: FreedBlob[];
  /** Of blobs_freed and bytes_freed: store files that had no image_blobs row. */
  orphans_freed: number;
  orphan_bytes_freed: number;
  /** Blob files of the store listed so far, looking for orphans. */
  store_files_examined: number;
  /** Started by a registry on its schedule (ZEDGE_GC_INTERVAL_SECONDS), not by a request. */
  scheduled: boolean;
  error: string | null;
  started_by: string | null;
  started_at: string;
  updated_at: string;
  finished_at: string | null;
}

const LOCK_TTL_MS = 10 * 60 * 1000;
/** A run whose registry stopped reporting for this long is failed, and another may start. */
const ABANDONED_AFTER_SECONDS = 300;
/** How often a registry touches the row of the run it executes, whatever the run is doing. */
const HEARTBEAT_MS = 30_000;
const MARK_BATCH = 500;
/** Listed store files whose rows are looked up in one query. */
const ORPHAN_BATCH = 500;
const REPORTED_DIGESTS = 1000;
const PROGRESS_EVERY = 20;
const PROGRESS_EVERY_FILES = 1000;

function iso(value: unknown): string | null {
  return value === null || value === undefined ? null : new Date(value as string).toISOString();
}

function view(row: Record<string, unknown>): GcRun {
  return {
    ...(row as unknown as GcRun),
    started_at: iso(row.started_at)!,
    updated_at: iso(row.updated_at)!,
    finished_at: iso(row.finished_at),
  };
}

export class GarbageCollector {
  private running: Promise<void> | undefined;
  private stopping = false;

  constructor(
    private readonly db: Database,
    private readonly store: BlobStore,
    private readonly state: StateStore,
    private readonly log: Logger,
  ) {}

  /** Starts a run in the background; 409 while another registry's or this one's runs. */
  async start(options: GcOptions): Promise<GcRun> {
    const run = await this.begin(options, undefined);
    if (run) return run;
    const [live] = await this.db.query<{ id: string }>("SELECT id FROM gc_runs WHERE status = 'running'");
    throw problems.conflict(`garbage collection ${live?.id ?? ''} is running`.trim());
  }

  /**
   * Starts a scheduled run when one is due: none running anywhere in the deployment, and none that was
   * not a dry run started within the last `intervalSeconds`. Resolves to it, or to undefined.
   */
  async startIfDue(options: GcOptions, intervalSeconds: number): Promise<GcRun | undefined> {
    return this.begin(options, intervalSeconds);
  }

  /** Seconds until a scheduled run is due (0 or less: due), counted from the last run that was not a dry run. */
  async secondsUntilDue(intervalSeconds: number): Promise<number> {
    const [row] = await this.db.query<{ wait: number | null }>(
      `SELECT EXTRACT(EPOCH FROM (max(started_at) + make_interval(secs => $1) - now()))::float8 AS wait
       FROM gc_runs WHERE NOT dry_run`,
      [intervalSeconds],
    );
    return row?.wait ?? 0;
  }

  /** Inserts the run's row (only if due, with `dueAfterSeconds`) and executes it; undefined when another runs. */
  private async begin(options: GcOptions, dueAfterSeconds: number | undefined): Promise<GcRun | undefined> {
    if (this.stopping) throw problems.conflict('the registry is stopping');
    await this.db.query(
      `UPDATE gc_runs SET status = 'failed', error = 'abandoned: its registry stopped reporting', finished_at = now()
       WHERE status = 'running' AND updated_at < now() - make_interval(secs => $1)`,
      [ABANDONED_AFTER_SECONDS],
    );
    const values = [
      options.dryRun,
      options.graceSeconds,
      options.startedBy ?? null,
      dueAfterSeconds !== undefined,
    ];
    const rows = await this.db.query<Record<string, unknown>>(
      dueAfterSeconds === undefined
        ? `INSERT INTO gc_runs (dry_run, grace_seconds, started_by, scheduled) VALUES ($1, $2, $3, $4)
           ON CONFLICT DO NOTHING RETURNING *`
        : `INSERT INTO gc_runs (dry_run, grace_seconds, started_by, scheduled) SELECT $1, $2, $3, $4
           WHERE NOT EXISTS (SELECT 1 FROM gc_runs WHERE NOT dry_run AND started_at > now() - make_interval(secs => $5))
           ON CONFLICT DO NOTHING RETURNING *`,
      dueAfterSeconds === undefined ? values : [...values, dueAfterSeconds],
    );
    if (!rows[0]) return undefined;
    const run = view(rows[0]);
    this.running = this.execute(run).finally(() => {
      this.running = undefined;
    });
    return run;
  }

  /** Runs to the end and resolves to the report (the CLI and tests). */
  async run(options: GcOptions): Promise<GcRun> {
    const started = await this.start(options);
    await this.running;
    return (await this.get(started.id))!;
  }

  async get(id: string): Promise<GcRun | undefined> {
    if (!/^[0-9a-f-]{36}$/i.test(id)) return undefined;
    const rows = await this.db.query<Record<string, unknown>>('SELECT * FROM gc_runs WHERE id = $1', [id]);
    return rows[0] && view(rows[0]);
  }

  async list(limit = 20): Promise<GcRun[]> {
    const rows = await this.db.query<Record<string, unknown>>(
      'SELECT * FROM gc_runs ORDER BY started_at DESC LIMIT $1',
      [limit],
    );
    return rows.map(view);
  }

  /**
   * Closing the registry: no run starts any more, and this process's run, if one is going, ends at its
   * next blob (failed, 'interrupted'; the next run finishes what it left); resolves when it has.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.running?.catch(() => {});
  }

  private async execute(run: GcRun): Promise<void> {
    // Files written before this are old enough to be collected when they have no row.
    const writtenBefore = new Date(Date.now() - run.grace_seconds * 1000);
    const report = new Report(this.db, run.id);
    const heartbeat = setInterval(() => {
      this.db
        .query("UPDATE gc_runs SET updated_at = now() WHERE id = $1 AND status = 'running'", [run.id])
        .catch((error) => this.log.warn({ err: error, run: run.id }, 'garbage collection heartbeat failed'));
    }, HEARTBEAT_MS).unref();
    try {
      if (run.dry_run) {
        const candidates = await this.candidates(run.grace_seconds);
        report.examined = candidates.length;
        for (const blob of candidates) report.free(blob);
        await report.save(candidates.length);
      } else {
        const marked = await this.mark(run.grace_seconds);
        await report.save(marked.length);
        for (const blob of marked) {
          this.checkStopping();
          report.examined++;
          if (await this.sweep(blob.digest as Digest)) report.free(blob);
          if (report.examined % PROGRESS_EVERY === 0) await report.save(null);
        }
        await report.save(null);
      }
      await this.collectOrphans(run.dry_run, writtenBefore, report);
      await report.save(null);
      await this.db.query("UPDATE gc_runs SET status = 'completed', finished_at = now() WHERE id = $1", [
        run.id,
      ]);
      this.log.info(
        {
          run: run.id,
          dryRun: run.dry_run,
          blobs: report.blobs,
          bytes: report.bytes,
          orphans: report.orphans,
        },
        run.dry_run ? 'garbage collection (dry run) found' : 'garbage collection freed',
      );
    } catch (error) {
      this.log.error({ err: error, run: run.id }, 'garbage collection failed');
      await report.save(null).catch(() => {});
      await this.db
        .query("UPDATE gc_runs SET status = 'failed', error = $2, finished_at = now() WHERE id = $1", [
          run.id,
          (error as Error).message,
        ])
        .catch(() => {});
    } finally {
      clearInterval(heartbeat);
    }
  }

  private checkStopping(): void {
    if (this.stopping) throw new Error('interrupted: the registry stopped');
  }

  /**
   * Lists the store for blob files without an image_blobs row written before `writtenBefore`, and frees
   * them (a dry run: counts them); the rows of a batch of listed files are looked up in one query.
   */
  private async collectOrphans(dryRun: boolean, writtenBefore: Date, report: Report): Promise<void> {
    let batch: StoredBlob[] = [];
    const settle = async () => {
      const rows = await this.db.query<{ digest: string }>(
        'SELECT digest FROM image_blobs WHERE digest = ANY($1)',
        [batch.map((blob) => blob.digest)],
      );
      const known = new Set(rows.map((row) => row.digest));
      for (const blob of batch) {
        if (known.has(blob.digest)) continue;
        this.checkStopping();
        if (dryRun || (await this.sweepOrphan(blob.digest))) report.free(blob, true);
      }
      batch = [];
      await report.save(null);
    };
    for await (const blob of this.store.list()) {
      this.checkStopping();
      report.files++;
      if (blob.modified < writtenBefore) batch.push(blob);
      if (batch.length >= ORPHAN_BATCH) await settle();
      else if (report.files % PROGRESS_EVERY_FILES === 0) await report.save(null);
    }
    if (batch.length > 0) await settle();
  }

  /** Deletes a store file that had no row, under the blob's lock, if it still has none; true when it did. */
  private async sweepOrphan(digest: Digest): Promise<boolean> {
    return this.state.withLock(`blob:${digest}`, LOCK_TTL_MS, async () => {
      const rows = await this.db.query('SELECT 1 FROM image_blobs WHERE digest = $1', [digest]);
      if (rows.length > 0 || (await this.store.stat(digest)) === undefined) return false;
      await this.store.delete(digest);
      return true;
    });
  }

  /** Unreferenced blobs past their grace period (what a run would mark), and any left 'deleting'. */
  private async candidates(graceSeconds: number): Promise<{ digest: string; size: number }[]> {
    return this.db.query<{ digest: string; size: number }>(
      `SELECT digest, size_bytes AS size FROM image_blobs
       WHERE (reference_count = 0 AND status = 'active' AND updated_at < now() - make_interval(secs => $1))
          OR status = 'deleting'
       ORDER BY digest`,
      [graceSeconds],
    );
  }

  /** Marks the unreferenced blobs past their grace 'deleting', in batches; with those a dead run left. */
  private async mark(graceSeconds: number): Promise<{ digest: string; size: number }[]> {
    const marked = await this.db.query<{ digest: string; size: number }>(
      "SELECT digest, size_bytes AS size FROM image_blobs WHERE status = 'deleting'",
    );
    for (;;) {
      const batch = await this.db.query<{ digest: string; size: number }>(
        `UPDATE image_blobs SET status = 'deleting'
         WHERE digest IN (SELECT digest FROM image_blobs
             WHERE reference_count = 0 AND status = 'active' AND updated_at < now() - make_interval(secs => $1)
             ORDER BY digest LIMIT $2 FOR UPDATE SKIP LOCKED)
           AND reference_count = 0 AND status = 'active' AND updated_at < now() - make_interval(secs => $1)
         RETURNING digest, size_bytes AS size`,
        [graceSeconds, MARK_BATCH],
      );
      marked.push(...batch);
      if (batch.length < MARK_BATCH) return marked;
    }
  }

  /** Deletes a marked blob's bytes, then its rows, if nobody revived it; true when it did. */
  private async sweep(digest: Digest): Promise<boolean> {
    return this.state.withLock(`blob:${digest}`, LOCK_TTL_MS, async () => {
      const rows = await this.db.query<{ status: string; referenced: boolean }>(
        `SELECT status, EXISTS (SELECT 1 FROM version_blobs vb WHERE vb.digest = b.digest) AS referenced
         FROM image_blobs b WHERE digest = $1`,
        [digest],
      );
      if (rows[0]?.status !== 'deleting') return false;
      if (rows[0].referenced) {
        // A reference count that was wrong: the blob is referenced after all, and stays.
        await this.db.query(
          `UPDATE image_blobs SET status = 'active', reference_count = (SELECT count(*) FROM version_blobs WHERE digest = $1)
           WHERE digest = $1`,
          [digest],
        );
        return false;
      }
      await this.store.delete(digest);
      return retryOnDeadlock(() =>
        this.db.transaction(async (tx) => {
          // Unlinking updates each holding image's size and then its account's usage (quota triggers);
          // the images are locked first, in id order, so that a push resizing one of them meanwhile
          // waits for us instead of holding an image we need while waiting for the account we hold.
          await tx.query(
            `SELECT id FROM images WHERE id IN (SELECT image_id FROM repository_blobs WHERE digest = $1)
             ORDER BY id FOR NO KEY UPDATE`,
            [digest],
          );
          await tx.query('DELETE FROM repository_blobs WHERE digest = $1', [digest]);
          const deleted = await tx.query(
            "DELETE FROM image_blobs WHERE digest = $1 AND status = 'deleting' RETURNING digest",
            [digest],
          );
          return deleted.length > 0;
        }),
      );
    });
  }
}

/** A run's counts, and the first blobs it freed, written to its row as it goes. */
class Report {
  examined = 0;
  files = 0;
  blobs = 0;
  bytes = 0;
  orphans = 0;
  orphanBytes = 0;
  readonly freed: FreedBlob[] = [];

  constructor(
    private readonly db: Database,
    private readonly id: string,
  ) {}

  free(blob: { digest: string; size: number }, orphan = false): void {
    this.blobs++;
    this.bytes += blob.size;
    if (orphan) {
      this.orphans++;
      this.orphanBytes += blob.size;
    }
    if (this.freed.length < REPORTED_DIGESTS)
      this.freed.push({ digest: blob.digest, size: blob.size, ...(orphan ? { orphan: true as const } : {}) });
  }

  /** Writes the counts (and `total`, the unreferenced blobs found, when given). */
  async save(total: number | null): Promise<void> {
    await this.db.query(
      `UPDATE gc_runs SET blobs_examined = $2, blobs_freed = $3, bytes_freed = $4, blobs_total = COALESCE($5, blobs_total),
         freed = $6, orphans_freed = $7, orphan_bytes_freed = $8, store_files_examined = $9, updated_at = now()
       WHERE id = $1`,
      [
        this.id,
        this.examined,
        this.blobs,
        this.bytes,
        total,
        JSON.stringify(this.freed),
        this.orphans,
        this.orphanBytes,
        this.files,
      ],
    );
  }
}

const DEADLOCK_RETRIES = 3;

/**
 * Runs a transaction again when PostgreSQL picked it as a deadlock's victim (40P01): it was rolled back
 * whole, so running it again is safe; any writer we did not order against still cannot fail a run.
 */
async function retryOnDeadlock<T>(transaction: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await transaction();
    } catch (error) {
      if ((error as { code?: string }).code !== '40P01' || attempt >= DEADLOCK_RETRIES) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10 * 2 ** attempt * (1 + Math.random())));
    }
  }
}

// One SQL dialect everywhere: PostgreSQL through `pg` in production, PGlite (PostgreSQL in WebAssembly)
// embedded. Callers see only this interface.
import { mkdirSync } from 'node:fs';
import type { Worker } from 'node:worker_threads';
import pg from 'pg';
import { siblingModule, startWorker } from '../workers.ts';
import { migrate } from './migrate.ts';
import type { Request, Response } from './pglite-worker.ts';

export type Row = Record<string, unknown>;

export interface Queryable {
  query<T extends object = Row>(sql: string, params?: unknown[]): Promise<T[]>;
}

export interface Database extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs `work` in one transaction; it is rolled back if `work` throws. */
  transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

// int8 (BIGINT) as a JS number: blob sizes stay far below 2^53.
pg.types.setTypeParser(20, (value) => Number(value));

class PostgresDatabase implements Database {
  readonly kind = 'postgres';
  constructor(private readonly pool: pg.Pool) {}

  async query<T extends object>(sql: string, params: unknown[] = []): Promise<T[]> {
    return (await this.pool.query(sql, params)).rows as T[];
  }

  async transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await work({
        query: async <R extends object>(sql: string, params: unknown[] = []) =>
          (await client.query(sql, params)).rows as R[],
      });
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/** PGlite in a worker thread (see pglite-worker.ts), reached through messages. */
class PgliteDatabase implements Database {
  readonly kind = 'pglite';
  private readonly pending = new Map<
    number,
    { resolve: (response: Response) => void; reject: (error: Error) => void }
  >();
  private nextId = 1;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (response: Response) => {
      const waiter = this.pending.get(response.id);
      if (!waiter) return;
      this.pending.delete(response.id);
      if (response.error)
        waiter.reject(Object.assign(new Error(response.error.message), { code: response.error.code }));
      else waiter.resolve(response);
    });
    worker.on('error', (error) => {
      for (const waiter of this.pending.values()) waiter.reject(error);
      this.pending.clear();
    });
  }

  static async open(dataDir: string | undefined): Promise<PgliteDatabase> {
    const worker = startWorker(siblingModule('pglite-worker', import.meta.url), { workerData: { dataDir } });
    const database = new PgliteDatabase(worker);
    await database.query('SELECT 1');
    return database;
  }

  async query<T extends object>(sql: string, params: unknown[] = []): Promise<T[]> {
    return this.queryIn<T>(undefined, sql, params);
  }

  async transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
    const { tx } = await this.call({ op: 'begin' });
    const finished = this.wait(-tx!);
    let result: T;
    try {
      result = await work({
        query: <R extends object>(sql: string, params: unknown[] = []) => this.queryIn<R>(tx, sql, params),
      });
    } catch (error) {
      await this.call({ op: 'end', tx: tx!, commit: false });
      await finished;
      throw error;
    }
    await this.call({ op: 'end', tx: tx!, commit: true });
    await finished;
    return result;
  }

  async close(): Promise<void> {
    await this.call({ op: 'close' });
    await this.worker.terminate();
  }

  private async queryIn<T extends object>(
    tx: number | undefined,
    sql: string,
    params: unknown[],
  ): Promise<T[]> {
    const response = await this.call({ op: 'query', sql, params, ...(tx === undefined ? {} : { tx }) });
    return (response.rows as T[]).map(normalizeBigints);
  }

  private call(request: DistributiveOmit<Request, 'id'>): Promise<Response> {
    const id = this.nextId++;
    const answer = this.wait(id);
    this.worker.postMessage({ ...request, id });
    return answer;
  }

  private wait(id: number): Promise<Response> {
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

// PGlite returns int8 as bigint; the pg driver is configured above to return numbers. Keep them alike.
function normalizeBigints<T>(row: T): T {
  for (const key in row) {
    if (typeof row[key] === 'bigint') (row as Record<string, unknown>)[key] = Number(row[key]);
  }
  return row;
}

export interface DatabaseOptions {
  /** A postgres:// URL; without one, PGlite runs embedded in `dataDir` (or in memory when that is unset). */
  url?: string | undefined;
  dataDir?: string | undefined;
  poolSize?: number;
  /** Told when the server drops an idle pooled connection (restart, failover, admin kill); the pool replaces it. */
  onConnectionLost?: (error: Error) => void;
}

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  let database: Database;
  if (options.url) {
    const pool = new pg.Pool({ connectionString: options.url, max: options.poolSize ?? 10 });
    // Without a listener, an idle connection the server ends would be an uncaught 'error' event:
    // a PostgreSQL restart would take the whole service down instead of one connection.
    pool.on('error', (error) => options.onConnectionLost?.(error));
    database = new PostgresDatabase(pool);
  } else {
    if (options.dataDir) mkdirSync(options.dataDir, { recursive: true });
    database = await PgliteDatabase.open(options.dataDir);
  }
  await migrate(database);
  return database;
}

// One SQL dialect everywhere: PostgreSQL through `pg` in production, PGlite (PostgreSQL in WebAssembly)
// embedded. Callers see only this interface.
import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { migrate } from './migrate.ts';

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

class PgliteDatabase implements Database {
  readonly kind = 'pglite';
  constructor(private readonly db: PGlite) {}

  async query<T extends object>(sql: string, params: unknown[] = []): Promise<T[]> {
    return (await this.db.query<T>(sql, params)).rows.map(normalizeBigints);
  }

  async transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.db.transaction(async (tx) =>
      work({
        query: async <R extends object>(sql: string, params: unknown[] = []) =>
          (await tx.query<R>(sql, params)).rows.map(normalizeBigints),
      }),
    );
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

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
}

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  let database: Database;
  if (options.url) {
    database = new PostgresDatabase(
      new pg.Pool({ connectionString: options.url, max: options.poolSize ?? 10 }),
    );
  } else {
    if (options.dataDir) mkdirSync(options.dataDir, { recursive: true });
    database = new PgliteDatabase(await PGlite.create(options.dataDir));
  }
  await migrate(database);
  return database;
}

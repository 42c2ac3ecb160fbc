// Runs the embedded PGlite database in its own worker thread. Keeping PGlite's large heap out of the
// main isolate keeps garbage collection there cheap: with PGlite in the main thread, every
// mark-compact walked its heap and streaming blobs lost half their throughput.

import { parentPort, workerData } from 'node:worker_threads';
import { PGlite, type Transaction } from '@electric-sql/pglite';

export type Request =
  | { id: number; op: 'query'; sql: string; params: unknown[]; tx?: number }
  | { id: number; op: 'begin' }
  | { id: number; op: 'end'; tx: number; commit: boolean }
  | { id: number; op: 'close' };

export type Response = {
  id: number;
  rows?: unknown[];
  tx?: number;
  error?: { message: string; code?: string };
};

const port = parentPort!;
const db = await PGlite.create((workerData as { dataDir?: string }).dataDir);
const transactions = new Map<number, { tx: Transaction; end: (commit: boolean) => void }>();
let nextTransaction = 1;

class Rollback extends Error {}

function reply(response: Response): void {
  port.postMessage(response);
}

function fail(id: number, error: unknown): void {
  const { message, code } = error as { message: string; code?: string };
  reply({ id, error: { message, ...(code ? { code } : {}) } });
}

port.on('message', (request: Request) => {
  switch (request.op) {
    case 'query': {
      const target = request.tx === undefined ? db : transactions.get(request.tx)?.tx;
      if (!target) return fail(request.id, new Error(`unknown transaction ${request.tx}`));
      target.query(request.sql, request.params).then(
        (result) => reply({ id: request.id, rows: result.rows }),
        (error) => fail(request.id, error),
      );
      return;
    }
    case 'begin': {
      const txId = nextTransaction++;
      let started = false;
      db.transaction(
        (tx) =>
          new Promise<void>((resolve, reject) => {
            started = true;
            transactions.set(txId, { tx, end: (commit) => (commit ? resolve() : reject(new Rollback())) });
            reply({ id: request.id, tx: txId });
          }),
      )
        .catch((error) => {
          if (!(error instanceof Rollback)) throw error;
        })
        .then(
          () => {
            transactions.delete(txId);
            reply({ id: -txId });
          },
          (error) => {
            transactions.delete(txId);
            // A transaction that never began answers its `begin`; one that failed to commit, its `end`.
            fail(started ? -txId : request.id, error);
          },
        );
      return;
    }
    case 'end': {
      const transaction = transactions.get(request.tx);
      if (!transaction) return fail(request.id, new Error(`unknown transaction ${request.tx}`));
      // The reply comes when PGlite has committed or rolled back: as message -tx.
      transaction.end(request.commit);
      reply({ id: request.id });
      return;
    }
    case 'close':
      db.close().then(
        () => reply({ id: request.id }),
        (error) => fail(request.id, error),
      );
      return;
  }
});

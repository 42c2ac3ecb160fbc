// How the seeder's failures look to HTTP clients: RFC 9457 problem documents with stable types.
import { type ProblemError, problemOf, problems } from '../shared/errors.ts';
import { CacheFullError } from '../shared/layer-cache.ts';
import { DigestMismatchError } from '../shared/layer-flight.ts';
import { UpstreamError, UpstreamNotFoundError } from './upstream.ts';

export function toProblem(error: unknown): ProblemError {
  if (error instanceof UpstreamNotFoundError) return problems.notFound(error.message);
  if (error instanceof CacheFullError) return problems.insufficientStorage(error.message);
  if (error instanceof DigestMismatchError) return problems.corruptUpstream(error.message);
  if (error instanceof UpstreamError) return problems.badUpstream(error.message);
  return problemOf(error);
}

/** A failure's reason as warm-job status shows it. */
export function describeFailure(error: Error): string {
  const problem = toProblem(error);
  return problem.status === 500 ? error.message : `${problem.status} ${problem.title}: ${problem.message}`;
}

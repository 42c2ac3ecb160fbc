// How the seeder's failures look to HTTP clients: RFC 9457 problem documents with stable types.
import { OciError, ProblemError, problems } from '../shared/errors.ts';
import { CacheFullError } from '../shared/layer-cache.ts';
import { DigestMismatchError } from '../shared/layer-flight.ts';
import { UpstreamError, UpstreamNotFoundError } from './upstream.ts';

export function toProblem(error: unknown): ProblemError {
  if (error instanceof ProblemError) return error;
  if (error instanceof UpstreamNotFoundError) return problems.notFound(error.message);
  if (error instanceof CacheFullError) return problems.insufficientStorage(error.message);
  if (error instanceof DigestMismatchError) return problems.corruptUpstream(error.message);
  if (error instanceof UpstreamError) return problems.badUpstream(error.message);
  if (error instanceof OciError)
    return new ProblemError(error.status, error.code.toLowerCase(), error.code, error.message);
  const candidate = error as { statusCode?: number; message?: string; validation?: unknown };
  if (candidate.validation || (candidate.statusCode && candidate.statusCode < 500))
    return new ProblemError(candidate.statusCode ?? 400, 'bad-request', 'Bad request', candidate.message);
  return new ProblemError(500, 'internal', 'Internal error', 'internal error');
}

/** A failure's reason as warm-job status shows it. */
export function describeFailure(error: Error): string {
  const problem = toProblem(error);
  return problem.status === 500 ? error.message : `${problem.status} ${problem.title}: ${problem.message}`;
}

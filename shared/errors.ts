// Every error a client can see is created here, with a stable code.
// OCI Distribution errors (`/v2`) carry the spec's codes; `/api/v1` answers with RFC 9457 problem bodies.

export const OciErrorCodes = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: {
    status: 404,
    message: 'manifest references a manifest or blob unknown to registry',
  },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown to registry' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  // Not in the spec's table, but distribution's well-known codes for these conditions.
  RANGE_INVALID: { status: 416, message: 'requested range not satisfiable' },
  UNAVAILABLE: { status: 503, message: 'service unavailable' },
} as const;

export type OciErrorCode = keyof typeof OciErrorCodes;

export class OciError extends Error {
  readonly code: OciErrorCode;
  readonly status: number;
  readonly detail: unknown;
  readonly headers: Record<string, string>;

  constructor(
    code: OciErrorCode,
    message?: string,
    options: { detail?: unknown; status?: number; headers?: Record<string, string> } = {},
  ) {
    super(message ?? OciErrorCodes[code].message);
    this.name = 'OciError';
    this.code = code;
    this.status = options.status ?? OciErrorCodes[code].status;
    this.detail = options.detail;
    this.headers = options.headers ?? {};
  }

  toBody(): { errors: { code: string; message: string; detail?: unknown }[] } {
    const error: { code: string; message: string; detail?: unknown } = {
      code: this.code,
      message: this.message,
    };
    if (this.detail !== undefined) error.detail = this.detail;
    return { errors: [error] };
  }
}

/** An RFC 9457 problem, the error body of `/api/v1`. */
export class ProblemError extends Error {
  readonly status: number;
  readonly type: string;
  readonly title: string;
  /** Response headers that go with it (Retry-After). */
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    type: string,
    title: string,
    detail?: string,
    headers: Record<string, string> = {},
  ) {
    super(detail ?? title);
    this.name = 'ProblemError';
    this.status = status;
    this.type = type;
    this.title = title;
    this.headers = headers;
  }

  toBody(instance?: string): Record<string, unknown> {
    return {
      type: `https://zedge.dev/problems/${this.type}`,
      title: this.title,
      status: this.status,
      detail: this.message,
      ...(instance ? { instance } : {}),
    };
  }
}

export const problems = {
  notFound: (what: string) => new ProblemError(404, 'not-found', 'Not found', what),
  badRequest: (detail: string) => new ProblemError(400, 'bad-request', 'Bad request', detail),
  conflict: (detail: string) => new ProblemError(409, 'conflict', 'Conflict', detail),
  unauthorized: (detail: string) => new ProblemError(401, 'unauthorized', 'Authentication required', detail),
  forbidden: (detail: string) => new ProblemError(403, 'forbidden', 'Forbidden', detail),
  unsupportedMediaType: (detail: string) =>
    new ProblemError(415, 'unsupported-media-type', 'Unsupported media type', detail),
  tooManyRequests: (detail: string, retryAfterSeconds: number) =>
    new ProblemError(429, 'too-many-requests', 'Too many requests', detail, {
      'Retry-After': String(retryAfterSeconds),
    }),
  unavailable: (detail: string) => new ProblemError(503, 'unavailable', 'Service unavailable', detail),
  badUpstream: (detail: string) => new ProblemError(502, 'bad-upstream', 'Bad upstream', detail),
  corruptUpstream: (detail: string) =>
    new ProblemError(502, 'digest-mismatch', 'Upstream sent a corrupt layer', detail),
  insufficientStorage: (detail: string) =>
    new ProblemError(507, 'insufficient-storage', 'Insufficient storage', detail),
};

/** The SQLSTATE with which the database refuses a change that would break a quota (migration 005). */
export const QUOTA_EXCEEDED = 'ZQ001';

/** Whether a failure is a quota's refusal (raised by the database, or by an upload's check before it). */
export function isQuotaExceeded(error: unknown): error is Error {
  return (error as { code?: unknown })?.code === QUOTA_EXCEEDED;
}

/**
 * Any failure as a problem document: problems as they are, OCI errors with their status, fastify's
 * validation and other client errors as 400-class `bad-request`, anything else a 500 that tells
 * nothing of the internals.
 */
export function problemOf(error: unknown): ProblemError {
  if (error instanceof ProblemError) return error;
  if (error instanceof OciError)
    return new ProblemError(error.status, error.code.toLowerCase(), error.code, error.message);
  if (isQuotaExceeded(error)) return new ProblemError(403, 'quota-exceeded', 'Quota exceeded', error.message);
  const candidate = error as { statusCode?: number; message?: string; validation?: unknown };
  if (candidate.validation || (candidate.statusCode && candidate.statusCode < 500))
    return new ProblemError(candidate.statusCode ?? 400, 'bad-request', 'Bad request', candidate.message);
  return new ProblemError(500, 'internal', 'Internal error', 'internal error');
}

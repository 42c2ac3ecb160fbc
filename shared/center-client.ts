// An HTTP client for the center registry (layer bytes, torrents, manifests), used by seeders and agents,
// with the service's own credential (a host account's) where the center asks for one.
// Its connections belong to it and are cut at close; a connection left open (say, opened for a request
// that was then cancelled) would hold up the center's own shutdown until its header timeout.
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

export class CenterError extends Error {
  override name = 'CenterError';

  constructor(
    message: string,
    /** The center's HTTP status when it answered at all. */
    readonly status?: number,
  ) {
    super(message);
  }
}

/**
 * The Authorization header for a credential setting: `user:password` (Basic), a header value as it is
 * (`Basic ...`, `Bearer ...`), or a bare token (Bearer).
 */
export function authorizationOf(credential: string): string {
  if (/^(Basic|Bearer) /i.test(credential)) return credential;
  if (credential.includes(':')) return `Basic ${Buffer.from(credential).toString('base64')}`;
  return `Bearer ${credential}`;
}

export interface CenterClientOptions {
  /** A service's own credential (see authorizationOf), sent when a request names no Authorization. */
  credential?: string | undefined;
  /**
   * Send the credential on `/v2` requests too. Agents do not: their `/v2` requests carry the pulling
   * client's credentials, so that a client gets only what it may read; seeders do (warming an image).
   */
  credentialOnV2?: boolean;
}

export class CenterClient {
  private readonly agent: HttpAgent;
  private readonly secure: boolean;
  private readonly authorization: string | undefined;

  constructor(
    readonly baseUrl: string,
    /** A center that accepts no connection or sends no headers for this long counts as down. */
    private readonly responseTimeoutMs = 30_000,
    private readonly options: CenterClientOptions = {},
  ) {
    this.secure = new URL(baseUrl).protocol === 'https:';
    this.agent = this.secure ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true });
    this.authorization = options.credential ? authorizationOf(options.credential) : undefined;
  }

  /** The request's headers with the service's credential where it belongs. */
  private headersFor(path: string, headers: Record<string, string> = {}): Record<string, string> {
    if (!this.authorization || headers.authorization !== undefined) return headers;
    if (path.startsWith('/v2') && !this.options.credentialOnV2) return headers;
    return { ...headers, authorization: this.authorization };
  }

  /**
   * GETs `path` and resolves once the headers arrived: the body is a plain Readable with
   * backpressure, for the caller to consume or discard. Rejects with CenterError when unreachable.
   */
  get(
    path: string,
    signal?: AbortSignal,
    headers?: Record<string, string>,
    method: 'GET' | 'HEAD' = 'GET',
  ): Promise<IncomingMessage> {
    const url = new URL(`${this.baseUrl}${path}`);
    return new Promise<IncomingMessage>((resolve, reject) => {
      const send = this.secure ? httpsRequest : httpRequest;
      const request = send(
        url,
        { method, agent: this.agent, signal, headers: this.headersFor(path, headers) },
        (response) => {
          // From here whoever reads the body judges progress.
          request.setTimeout(0);
          resolve(response);
        },
      );
      request
        .setTimeout(this.responseTimeoutMs, () =>
          request.destroy(new Error(`no answer within ${this.responseTimeoutMs} ms`)),
        )
        .on('error', (error) => reject(new CenterError(`center ${url.origin}: ${error.message}`)))
        .end();
    });
  }

  /** GETs a small document whole (a torrent, a manifest); anything but 200 is a CenterError. */
  async getBuffer(
    path: string,
    maxBytes: number,
    signal?: AbortSignal,
    headers?: Record<string, string>,
  ): Promise<{ body: Buffer; contentType: string | undefined }> {
    const response = await this.get(path, signal, headers);
    if (response.statusCode !== 200) {
      response.resume();
      throw new CenterError(`center answered ${response.statusCode} for ${path}`, response.statusCode);
    }
    const parts: Buffer[] = [];
    let length = 0;
    for await (const chunk of response as AsyncIterable<Buffer>) {
      length += chunk.length;
      if (length > maxBytes) {
        response.destroy();
        throw new CenterError(`center sent more than ${maxBytes} bytes for ${path}`);
      }
      parts.push(chunk);
    }
    return { body: Buffer.concat(parts), contentType: response.headers['content-type'] };
  }

  /** Cuts every connection to the center, idle or not. */
  close(): void {
    this.agent.destroy();
  }
}

// Raw HTTP requests for what fetch() will not send: unnormalised paths, bodies cut short.
import { request } from 'node:http';

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Sends `path` exactly as given (fetch would resolve `..` segments). */
export function rawRequest(
  base: string,
  method: string,
  path: string,
  body?: Buffer,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        hostname,
        port,
        method,
        path,
        headers: { ...headers, ...(body ? { 'Content-Length': body.length } : {}) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Starts a request that announces `declaredLength` bytes, sends `sent` of them, then drops the connection. */
export function abortedUpload(
  base: string,
  method: string,
  path: string,
  declaredLength: number,
  sent: Buffer,
  headers: Record<string, string> = {},
): Promise<void> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve) => {
    const req = request({
      hostname,
      port,
      method,
      path,
      headers: { ...headers, 'Content-Length': declaredLength, 'Content-Type': 'application/octet-stream' },
    });
    req.on('error', () => resolve());
    req.write(sent, () => {
      // Give the server a moment to start streaming the chunk into the store before the cut.
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 100);
    });
  });
}

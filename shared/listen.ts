// Listening on a configured address (port 0 picks a free one) and naming the URL that came of it.
import type { FastifyInstance } from 'fastify';

export async function listenHttp(
  app: FastifyInstance,
  host: string,
  port: number,
): Promise<{ url: string; port: number }> {
  await app.listen({ host, port });
  const address = app.server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  return { url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}`, port: bound };
}

/** A service built and ready to listen: what the CLI starts and the tests drive. */
export interface HttpService<Context> {
  app: FastifyInstance;
  context: Context;
  /** Listens on the configured address; resolves to the base URL. */
  listen(): Promise<string>;
  close(): Promise<void>;
}

// Listening on a configured address (port 0 picks a free one) and naming the URL that came of it, and
// closing without waiting out the keep-alive of connections that were busy when the close began.
import type { IncomingMessage, ServerResponse } from 'node:http';
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

/** How long a closing service lets the requests in flight finish before it cuts their connections. */
export const CLOSE_GRACE_MS = 10_000;

/**
 * Makes the close of `app` end the connections of the requests in flight once they are answered, and
 * cut whatever is still open after CLOSE_GRACE_MS. The server closes the connections idle at the close
 * and fastify answers later requests 503, but an answer sent during the close would keep its
 * connection open for the keep-alive timeout (72 s), and the close with it; so would a client that
 * stalls mid-request. Call when the app is built.
 */
export function endConnectionsOnClose(app: FastifyInstance): void {
  const inFlight = new Set<ServerResponse>();
  let cutOff: NodeJS.Timeout | undefined;
  app.server.on('request', (_request: IncomingMessage, response: ServerResponse) => {
    inFlight.add(response);
    response.once('close', () => inFlight.delete(response));
  });
  app.addHook('preClose', (done) => {
    for (const response of inFlight) {
      // An answer not begun says so in its header; one already under way ends its connection after.
      if (!response.headersSent) response.shouldKeepAlive = false;
      const { socket } = response;
      response.once('close', () => socket?.end());
    }
    cutOff = setTimeout(() => app.server.closeAllConnections(), CLOSE_GRACE_MS).unref();
    done();
  });
  app.addHook('onClose', (_instance, done) => {
    clearTimeout(cutOff);
    done();
  });
}

/** A service built and ready to listen: what the CLI starts and the tests drive. */
export interface HttpService<Context> {
  app: FastifyInstance;
  context: Context;
  /** Listens on the configured address; resolves to the base URL. */
  listen(): Promise<string>;
  close(): Promise<void>;
}

// Serving a blob's bytes (whole or one Range), shared by /v2 and the web-seed endpoint of /api/v1.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { BlobNotFoundError } from '../shared/blobstore/index.ts';
import type { Digest } from '../shared/digest.ts';
import { OciError } from '../shared/errors.ts';
import { parseRange } from '../shared/http-range.ts';
import { MediaTypes } from '../shared/media-types.ts';
import type { RegistryContext } from './context.ts';

export async function sendBlob(
  context: RegistryContext,
  digest: Digest,
  size: number,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  reply
    .header('Docker-Content-Digest', digest)
    .header('Accept-Ranges', 'bytes')
    .header('ETag', `"${digest}"`)
    .header('Content-Type', MediaTypes.octetStream);
  const range = parseRange(request.headers.range, size);
  const length = range ? range.end - range.start + 1 : size;
  reply.header('Content-Length', length);
  if (range) reply.code(206).header('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
  if (request.method === 'HEAD') return reply.send();
  try {
    if (context.store.open) {
      const blob = await context.store.open(digest, range);
      // Past this point the response is written by hand: the store's recycled buffers go straight to
      // the socket. A failure midway can only cut the connection (the client sees a short body).
      reply.hijack();
      reply.raw.writeHead(reply.statusCode, reply.getHeaders() as Record<string, string>);
      blob.writeTo(reply.raw).then(
        () => reply.raw.end(),
        (error) => {
          request.log.warn({ err: error, digest }, 'blob transfer cut short');
          reply.raw.destroy();
        },
      );
    } else {
      reply.send(await context.store.read(digest, range));
    }
    context.metrics.bytesOut.inc({ kind: 'blob' }, length);
    return reply;
  } catch (error) {
    if (error instanceof BlobNotFoundError)
      throw new OciError('BLOB_UNKNOWN', `blob ${digest} is missing from the store`);
    throw error;
  }
}

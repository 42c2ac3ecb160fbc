// Serving a blob's bytes (whole or one Range), shared by /v2 and the web-seed endpoint of /api/v1.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { BlobNotFoundError } from '../shared/blobstore/index.ts';
import type { Digest } from '../shared/digest.ts';
import { OciError } from '../shared/errors.ts';
import { MediaTypes } from '../shared/media-types.ts';
import type { RegistryContext } from './context.ts';
import { parseRange } from './oci/http.ts';

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
    const stream = await context.store.read(digest, range);
    context.metrics.bytesOut.inc({ kind: 'blob' }, length);
    return reply.send(stream);
  } catch (error) {
    if (error instanceof BlobNotFoundError)
      throw new OciError('BLOB_UNKNOWN', `blob ${digest} is missing from the store`);
    throw error;
  }
}

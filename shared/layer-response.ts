// Answering GET/HEAD of a layer (seeder web seed, agent /v2 blobs) from a layer file, complete or
// still growing, with Range. The status line waits for the range's first byte, so a source that fails
// before then gets the caller a proper error answer. Bytes are written by hand from the file: a
// failure midway (the download turned out corrupt, the source died) can only cut the connection, so
// the client sees a short body, never a clean end on wrong bytes.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { parseRange } from './http-range.ts';
import { copyRange, type LayerFile, untilReadable } from './layer-transfer.ts';
import { MediaTypes } from './media-types.ts';

/** Sends `file` (released when done) as the reply; `onBytes` counts what the socket took. */
export async function sendLayerFile(
  file: LayerFile,
  request: FastifyRequest,
  reply: FastifyReply,
  onBytes?: (bytes: number) => void,
): Promise<FastifyReply> {
  const { digest } = file;
  let start: number;
  let end: number;
  // Until the answer is handed to copyRange, any way out gives the file back (release is idempotent).
  try {
    const range = parseRange(request.headers.range, file.size);
    start = range?.start ?? 0;
    end = range?.end ?? file.size - 1;
    reply
      .header('Docker-Content-Digest', digest)
      .header('Accept-Ranges', 'bytes')
      .header('ETag', `"${digest}"`)
      .header('Content-Type', MediaTypes.octetStream)
      .header('Content-Length', end - start + 1);
    if (range) reply.code(206).header('Content-Range', `bytes ${start}-${end}/${file.size}`);
    if (request.method === 'HEAD') {
      file.release();
      return reply.send();
    }
    if (end >= start) await untilReadable(file, start);
  } catch (error) {
    file.release();
    throw error;
  }
  reply.hijack();
  reply.raw.writeHead(reply.statusCode, reply.getHeaders() as Record<string, string>);
  copyRange(file, start, end, reply.raw, onBytes)
    .then(
      () => reply.raw.end(),
      (error) => {
        request.log.warn({ err: error, digest }, 'layer transfer cut short');
        reply.raw.destroy();
      },
    )
    .finally(() => file.release());
  return reply;
}

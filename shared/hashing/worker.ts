// Runs in Piscina worker threads: the CPU-heavy hashing of pieces and whole files, off the event loop.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

export interface PieceHashTask {
  kind: 'pieces';
  /** Consecutive whole pieces (the last may be short), transferred, not copied. */
  data: ArrayBuffer;
  byteOffset: number;
  byteLength: number;
  pieceLength: number;
}

export interface FileDigestTask {
  kind: 'file';
  path: string;
  algorithm: 'sha256' | 'sha512' | 'sha1';
}

export type HashTask = PieceHashTask | FileDigestTask;

export default async function hash(task: HashTask): Promise<Uint8Array | string> {
  if (task.kind === 'pieces') {
    const data = new Uint8Array(task.data, task.byteOffset, task.byteLength);
    const count = Math.ceil(task.byteLength / task.pieceLength);
    const out = new Uint8Array(count * 20);
    for (let index = 0; index < count; index++) {
      const piece = data.subarray(
        index * task.pieceLength,
        Math.min((index + 1) * task.pieceLength, task.byteLength),
      );
      out.set(createHash('sha1').update(piece).digest(), index * 20);
    }
    return out;
  }
  const hasher = createHash(task.algorithm);
  for await (const chunk of createReadStream(task.path, { highWaterMark: 1024 * 1024 })) hasher.update(chunk);
  return hasher.digest('hex');
}

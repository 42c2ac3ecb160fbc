// Runs in Piscina worker threads: the CPU-heavy hashing of pieces and whole files, off the event loop.
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';

// One read buffer per worker thread, reused by every task: no allocation per piece.
let readBuffer = Buffer.allocUnsafeSlow(0);

export interface PieceHashTask {
  kind: 'pieces';
  /** Consecutive whole pieces (the last may be short), transferred, not copied. */
  data: ArrayBuffer;
  byteOffset: number;
  byteLength: number;
  pieceLength: number;
}

export interface FilePieceHashTask {
  kind: 'file-pieces';
  path: string;
  /** Byte offset of the first piece (a multiple of pieceLength) and bytes to hash from there. */
  offset: number;
  length: number;
  pieceLength: number;
}

export interface FileDigestTask {
  kind: 'file';
  path: string;
  algorithm: 'sha256' | 'sha512' | 'sha1';
}

export type HashTask = PieceHashTask | FilePieceHashTask | FileDigestTask;

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
  if (task.kind === 'file-pieces') {
    if (readBuffer.length < task.pieceLength) readBuffer = Buffer.allocUnsafeSlow(task.pieceLength);
    const count = Math.ceil(task.length / task.pieceLength);
    const out = new Uint8Array(count * 20);
    const file = await open(task.path, 'r');
    try {
      for (let index = 0; index < count; index++) {
        const want = Math.min(task.pieceLength, task.length - index * task.pieceLength);
        let filled = 0;
        while (filled < want) {
          const { bytesRead } = await file.read(
            readBuffer,
            filled,
            want - filled,
            task.offset + index * task.pieceLength + filled,
          );
          if (bytesRead === 0) throw new Error(`${task.path} is shorter than expected`);
          filled += bytesRead;
        }
        out.set(createHash('sha1').update(readBuffer.subarray(0, want)).digest(), index * 20);
      }
    } finally {
      await file.close();
    }
    return out;
  }
  // A whole file, read into the thread's reused buffer: no allocation per read.
  if (readBuffer.length < FILE_READ_BYTES) readBuffer = Buffer.allocUnsafeSlow(FILE_READ_BYTES);
  const hasher = createHash(task.algorithm);
  const file = await open(task.path, 'r');
  try {
    for (;;) {
      const { bytesRead } = await file.read(readBuffer, 0, FILE_READ_BYTES, null);
      if (bytesRead === 0) break;
      hasher.update(readBuffer.subarray(0, bytesRead));
    }
  } finally {
    await file.close();
  }
  return hasher.digest('hex');
}

const FILE_READ_BYTES = 4 * 1024 * 1024;

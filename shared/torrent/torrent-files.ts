// Layer torrents fetched from the center and kept on disk (seeders and agents): a restart seeds again
// without asking the center, and a torrent is checked to describe the layer before it is trusted.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import bencode from 'bencode';
import type { CenterClient } from '../center-client.ts';
import type { Digest } from '../digest.ts';
import { fileNameOf } from './metainfo.ts';

// 20 bytes a piece and about a thousand pieces: a torrent is tens of KiB; this leaves ample margin.
const MAX_TORRENT_BYTES = 4 * 1024 * 1024;

export interface TorrentSummary {
  name: string;
  length: number;
  pieceLength: number;
  /** BEP 19 web seeds the torrent names (the center's blob URL, and edges the registry was told of). */
  urlList: string[];
  /** Hex sha1 of the info dictionary. */
  infoHash: string;
  /** Tracker announce URLs (`announce` and BEP 12 `announce-list`, in order, without repeats). */
  announce: string[];
}

/** The single file's name and size and the web seeds of a bencoded torrent; undefined when malformed. */
export function summarizeTorrent(file: Uint8Array): TorrentSummary | undefined {
  try {
    const torrent = bencode.decode(file) as {
      info?: { name?: Uint8Array; length?: number; 'piece length'?: number };
      'url-list'?: Uint8Array | Uint8Array[];
      announce?: Uint8Array;
      'announce-list'?: Uint8Array[][];
    };
    const raw = torrent['url-list'];
    const urls = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
    const info = torrent.info;
    if (!info?.name || typeof info.length !== 'number' || !(Number(info['piece length']) > 0))
      return undefined;
    const text = (value: Uint8Array) => Buffer.from(value).toString('utf8');
    const announce = [torrent.announce, ...(torrent['announce-list'] ?? []).flat()]
      .filter((url): url is Uint8Array => url instanceof Uint8Array)
      .map(text);
    return {
      name: text(info.name),
      length: info.length,
      pieceLength: Number(info['piece length']),
      urlList: urls.map(text),
      // The registry's torrents are canonical bencoding, so the decoded info re-encodes to its bytes.
      infoHash: createHash('sha1').update(bencode.encode(info)).digest('hex'),
      announce: [...new Set(announce)],
    };
  } catch {
    return undefined;
  }
}

/** The SHA-1s of a torrent's pieces (20 bytes each, concatenated); undefined when malformed. */
export function pieceHashesOf(file: Uint8Array): Uint8Array | undefined {
  try {
    const pieces = (bencode.decode(file) as { info?: { pieces?: unknown } }).info?.pieces;
    return pieces instanceof Uint8Array && pieces.length % 20 === 0 ? pieces : undefined;
  } catch {
    return undefined;
  }
}

/** The same torrent without its web seeds (the infohash is unchanged: the info dictionary is kept). */
export function withoutWebSeeds(file: Uint8Array): Buffer {
  const torrent = bencode.decode(file) as Record<string, unknown>;
  delete torrent['url-list'];
  return Buffer.from(bencode.encode(torrent));
}

export class TorrentFiles {
  constructor(
    readonly dir: string,
    private readonly center: CenterClient,
  ) {}

  async open(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
  }

  /**
   * The layer's torrent: kept from an earlier fetch, else from the center (and then kept). With `size`,
   * a torrent that does not describe a layer of that size is refused.
   */
  async get(digest: Digest, size?: number, signal?: AbortSignal): Promise<Buffer> {
    const path = this.pathOf(digest);
    const kept = await readFile(path).catch(() => undefined);
    if (kept && this.matches(kept, digest, size)) return kept;
    const { body } = await this.center.getBuffer(
      `/api/v1/blobs/${digest}/torrent`,
      MAX_TORRENT_BYTES,
      signal,
    );
    if (!this.matches(body, digest, size))
      throw new Error(`the center's torrent for ${digest} does not describe this layer`);
    await writeFile(path, body);
    return body;
  }

  /** Forgets a layer's torrent (the layer left the cache). */
  async remove(digest: Digest): Promise<void> {
    await rm(this.pathOf(digest), { force: true });
  }

  /** Deletes kept torrents of layers no longer cached. */
  async prune(cached: Set<Digest>): Promise<void> {
    for (const name of await readdir(this.dir)) {
      const digest = name.replace(/\.torrent$/, '').replace('-', ':') as Digest;
      if (!cached.has(digest)) await rm(join(this.dir, name), { force: true });
    }
  }

  private pathOf(digest: Digest): string {
    return join(this.dir, `${fileNameOf(digest)}.torrent`);
  }

  /** A torrent fits a layer when its single file has the layer's name (and size, when known). */
  private matches(file: Buffer, digest: Digest, size: number | undefined): boolean {
    const summary = summarizeTorrent(file);
    return summary?.name === fileNameOf(digest) && (size === undefined || summary.length === size);
  }
}

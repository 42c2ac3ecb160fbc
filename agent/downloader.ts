// Getting layers into the agent's cache, one download per layer however many requests want it. The
// first host of a swarm streams the layer from the edge over HTTP (first-leecher.ts). Otherwise the
// ladder: the swarm (peers and the zone's edge over BitTorrent; the edge's web seed, then the
// center's, join once the swarm delivered nothing for a moment, and for a job's prefetch only when no
// peer has what it lacks), then plain HTTP (edge, then center) when there is no torrent or the swarm
// stalls. Whatever the way, the whole layer's sha256 is checked before it enters the cache (as it
// streams when it comes over HTTP from the start, else in the hashing pool); a layer that does not
// match is discarded.
import { createHash, type Hash } from 'node:crypto';
import { type FileHandle, mkdir, open } from 'node:fs/promises';
import { type Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Digest } from '../shared/digest.ts';
import { parseDigest } from '../shared/digest.ts';
import type { HashPool } from '../shared/hashing/pool.ts';
import type { LayerCache, Reservation } from '../shared/layer-cache.ts';
import { DigestMismatchError, Flight } from '../shared/layer-flight.ts';
import { summarizeTorrent, type TorrentFiles } from '../shared/torrent/torrent-files.ts';
import { type HttpSource, openOverHttp, SourceError } from './http-source.ts';
import { type ResumePoint, resumePoint } from './resume.ts';
import { Silence } from './silence.ts';
import { type ByteSource, emptyTally } from './sources.ts';
import type { Swarm } from './swarm.ts';

export type Way = 'bittorrent' | 'http';

/** How often a download's sources are checked for silence. */
const WATCHDOG_MS = 200;

/** A prefetch whose peers have what it lacks leaves their swarm after this many stall timeouts. */
const SLOW_SWARM_STALLS = 3;

/** Bytes arriving but no piece verifying for this many stall timeouts: the swarm is left too. */
const UNVERIFIED_STALLS = 6;

/** A layer's download: its flight (what readers follow) and where its bytes came from. */
export interface Download {
  flight: Flight<Way>;
  bytes: Record<ByteSource, number>;
  /**
   * Bytes of the layer checked so far: its verified pieces, wherever they are in the layer (a
   * prefetch takes the rarest first, so the flight's in-order prefix says little), or what came in
   * order over HTTP.
   */
  checked: number;
}

/** What a download stopped because nobody wants it any more (its job ended) fails with. */
export class DownloadNotWantedError extends Error {
  override name = 'DownloadNotWantedError';

  constructor(digest: Digest) {
    super(`the download of ${digest} is no longer wanted`);
  }
}

/** A download and who wants it: a pull for good, a job's prefetch until the job's signal aborts. */
interface Running extends Download {
  /** Aborts the download (the agent closing, or nobody wanting it any more); its reason is the error. */
  signal: AbortSignal;
  stop: AbortController;
  pulled: boolean;
  holders: Set<AbortSignal>;
}

export interface DownloaderHooks {
  onBytes?(source: ByteSource, bytes: number): void;
  /** `phases`: milliseconds spent on each step of the download (the log shows where a pull's time went). */
  onCached?(
    digest: Digest,
    size: number,
    torrent: Buffer | undefined,
    seconds: number,
    phases: Record<string, number>,
  ): void;
  onFailed?(digest: Digest, error: Error): void;
  onFallback?(digest: Digest, reason: string): void;
  onFirstLeecher?(digest: Digest): void;
  /** A download took over `bytes` of verified pieces an earlier one left. */
  onResumed?(digest: Digest, bytes: number): void;
}

export interface DownloaderOptions {
  edgeDelayMs: number;
  centerDelayMs: number;
  stallTimeoutMs: number;
}

export class Downloader {
  private readonly downloads = new Map<Digest, Running>();
  private readonly closing = new AbortController();

  constructor(
    private readonly cache: LayerCache,
    private readonly torrents: TorrentFiles,
    private readonly swarm: Swarm,
    private readonly http: HttpSource[],
    private readonly hashPool: HashPool,
    private readonly options: DownloaderOptions,
    private readonly hooks: DownloaderHooks = {},
  ) {}

  /**
   * The layer's download, started now unless one runs. The caller checks the cache first. A pull
   * takes pieces in order (its client streams them) and may stream from the edge when this host is the
   * swarm's first leecher. A distribution job's `prefetch` takes the rarest pieces first and never
   * streams as first leecher: its hosts start together, the edge is to send each piece about once,
   * and hosts taking pieces in the same order would have nothing to give each other.
   *
   * A fetch with a `signal` (a job's prefetch) wants the layer until the signal aborts; a download
   * that only such fetches want stops when the last of them lets go (its verified pieces stay for a
   * later download). A fetch without one (a pull: its client and the cache want the layer whatever
   * happens to the job) keeps the download to the end.
   */
  fetch(
    digest: Digest,
    { prefetch = false, signal }: { prefetch?: boolean; signal?: AbortSignal } = {},
  ): Download {
    if (this.closing.signal.aborted) throw new Error('agent is closing');
    let download = this.downloads.get(digest);
    if (!download) download = this.start(digest, prefetch);
    // Stopping because nobody wanted it, and wanted again: a new download, once the old one has let
    // go of the layer's files (its verified pieces are the new one's to resume from).
    else if (download.stop.signal.aborted) download = this.start(digest, prefetch, download.flight.done);
    if (signal) this.hold(download, signal);
    else download.pulled = true;
    return download;
  }

  private start(digest: Digest, prefetch: boolean, after?: Promise<unknown>): Running {
    const stop = new AbortController();
    const download: Running = {
      flight: new Flight<Way>(digest),
      bytes: emptyTally(),
      checked: 0,
      stop,
      signal: AbortSignal.any([this.closing.signal, stop.signal]),
      pulled: false,
      holders: new Set(),
    };
    this.downloads.set(digest, download);
    void (after ?? Promise.resolve()).catch(() => {}).then(() => this.run(download, prefetch));
    return download;
  }

  /** Forgets a download that ended, unless a newer one of the layer took its place. */
  private forget(download: Running): void {
    if (this.downloads.get(download.flight.digest) === download)
      this.downloads.delete(download.flight.digest);
  }

  private hold(download: Running, signal: AbortSignal): void {
    const letGo = () => {
      download.holders.delete(signal);
      if (download.pulled || download.holders.size > 0) return;
      download.stop.abort(new DownloadNotWantedError(download.flight.digest));
    };
    if (signal.aborted) {
      letGo();
      return;
    }
    download.holders.add(signal);
    signal.addEventListener('abort', letGo, { once: true });
    void download.flight.done.finally(() => signal.removeEventListener('abort', letGo)).catch(() => {});
  }

  list(): Download[] {
    return [...this.downloads.values()];
  }

  /** Fails every download in progress and waits for them to clean up. */
  async close(): Promise<void> {
    this.closing.abort(new Error('agent is closing'));
    await Promise.allSettled(this.list().map((download) => download.flight.done));
  }

  private count(download: Running, source: ByteSource, bytes: number): void {
    download.bytes[source] += bytes;
    this.hooks.onBytes?.(source, bytes);
  }

  private async run(download: Running, prefetch: boolean): Promise<void> {
    const { flight, signal } = download;
    const { digest } = flight;
    let reservation: Reservation | undefined;
    let handle: FileHandle | undefined;
    const phases: Record<string, number> = {};
    let phaseStart = Date.now();
    const phase = (name: string) => {
      const now = Date.now();
      phases[name] = now - phaseStart;
      phaseStart = now;
    };
    try {
      // Stopped while it waited for an earlier download of the layer to let go.
      signal.throwIfAborted();
      const torrent = await this.torrents.get(digest, undefined, signal).catch((error: Error) => {
        this.hooks.onFallback?.(digest, `no torrent: ${error.message}`);
        return undefined;
      });
      const summary = torrent && summarizeTorrent(torrent);
      phase('torrent');
      // Without a torrent the HTTP answer tells the size.
      let body = summary ? undefined : await openOverHttp(this.http, digest, 0);
      const size = summary?.length ?? body!.size;
      let resumed: ResumePoint | undefined;
      try {
        // webtorrent names the file after the torrent: the reservation's own directory is its path.
        reservation = this.cache.reserve(digest, size, { resumable: true });
        await mkdir(reservation.dir!, { recursive: true });
        handle = await openPartial(reservation.path, size);
        // What an earlier download of the layer left is kept where its pieces check out.
        resumed = summary && (await resumePoint(reservation.path, handle, torrent!, summary, this.hashPool));
        if (!resumed) await handle.truncate(0);
      } catch (error) {
        body?.body.destroy();
        throw error;
      }
      phase('resume');
      if (resumed) {
        download.checked = resumed.bytes;
        this.hooks.onResumed?.(digest, resumed.bytes);
      }
      const complete = resumed?.bytes === size;
      // The first host to want a layer streams it from the edge; the rest take the swarm.
      const first =
        summary && size > 0 && !complete && !prefetch && !body && (await this.swarm.isFirstLeecher(summary));
      if (first) {
        this.hooks.onFirstLeecher?.(digest);
        body = await openOverHttp(this.http, digest, resumed?.prefix ?? 0);
      }
      phase('start');
      flight.begin(size, body ? 'http' : 'bittorrent', handle);
      // Stopped while it was starting: the listeners below would not hear an abort that came before.
      if (signal.aborted) {
        body?.body.destroy();
        throw signal.reason;
      }
      if (resumed) flight.progress(resumed.prefix);
      if (
        summary &&
        size > 0 &&
        !complete &&
        !body &&
        !(await this.viaSwarm(download, torrent!, summary, reservation.dir!, prefetch, resumed?.bitfield))
      ) {
        flight.source = 'http';
        body = await openOverHttp(this.http, digest, flight.written);
      }
      const { algorithm, hex } = parseDigest(digest);
      // A stream from the first byte is hashed as it arrives: the check is done with the last byte.
      const hasher = body && flight.written === 0 ? createHash(algorithm) : undefined;
      if (body) await this.viaHttp(download, body, handle, hasher);
      if (flight.written !== size)
        throw new SourceError(`got ${flight.written} of ${size} bytes of ${digest}`);
      phase('transfer');
      const actual = hasher?.digest('hex') ?? (await this.hashPool.fileDigest(reservation.path, algorithm));
      if (actual !== hex) throw new DigestMismatchError(digest, `${algorithm}:${actual}`);
      phase('verify');
      // Readers get the last byte now; the layer is on disk before it counts as cached (a restart
      // trusts the cache's files without hashing them again).
      flight.verified();
      await handle.datasync();
      const unpin = await reservation.commit({ pin: true });
      phase('sync');
      this.forget(download);
      flight.settle('cached', undefined, unpin);
      this.hooks.onCached?.(digest, size, torrent, (Date.now() - flight.startedAt) / 1000, phases);
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      // Verified pieces stay for the next download of the layer, unless the layer itself is wrong.
      // Settled before the download is forgotten: a new one must not find its directory being removed.
      const wrong = failure instanceof DigestMismatchError;
      await (wrong ? reservation?.abort() : reservation?.suspend())?.catch(() => {});
      this.forget(download);
      flight.settle('failed', failure);
      // A flight that began closes the file with its last reader; one that did not, here.
      if (flight.size === undefined) await handle?.close().catch(() => {});
      this.hooks.onFailed?.(digest, failure);
    }
  }

  /**
   * Downloads through the swarm until done (true) or stalled (false: nothing verified for the stall
   * timeout). The verified prefix of the file is what readers may send.
   */
  private viaSwarm(
    download: Running,
    file: Buffer,
    summary: { length: number; pieceLength: number; urlList: string[] },
    dir: string,
    rarestFirst: boolean,
    have: Uint8Array | undefined,
  ): Promise<boolean> {
    const { flight } = download;
    const { length, pieceLength, urlList } = summary;
    const pieceCount = Math.ceil(length / pieceLength);
    // The pieces counted in `checked` (webtorrent also reports those the file already had).
    const counted = new Uint8Array(pieceCount);
    if (have)
      for (let index = 0; index < pieceCount; index++)
        counted[index] = (have[index >> 3]! >> (7 - (index & 7))) & 1;
    const torrent = this.swarm.download(file, dir, flight.digest, { rarestFirst, have }, (source, bytes) =>
      this.count(download, source, bytes),
    );
    return new Promise<boolean>((resolve, reject) => {
      let prefix = 0;
      // Web seeds join, and the swarm is left for HTTP, when no bytes arrive: on a slow link shared by
      // many peers a piece can take many seconds while its blocks keep coming.
      const bytesSilence = new Silence(WATCHDOG_MS);
      const progressSilence = new Silence(WATCHDOG_MS);
      let edgeJoined = false;
      let centerJoined = false;
      let settled = false;
      const finish = (outcome: boolean | Error) => {
        if (settled) return;
        settled = true;
        clearInterval(watchdog);
        download.signal.removeEventListener('abort', onClose);
        // webtorrent must let go of the file before it is moved or written over HTTP.
        void this.swarm
          .stop(torrent)
          .then(() => (outcome instanceof Error ? reject(outcome) : resolve(outcome)));
      };
      const onClose = () => finish(download.signal.reason as Error);
      download.signal.addEventListener('abort', onClose);
      torrent.on('verified', (index: number) => {
        progressSilence.heard();
        if (counted[index] === 0) {
          counted[index] = 1;
          download.checked += Math.min(pieceLength, length - index * pieceLength);
        }
        while (prefix < pieceCount && torrent.bitfield.get(prefix)) prefix++;
        const bytes = Math.min(length, prefix * pieceLength);
        if (bytes > flight.written) flight.progress(bytes - flight.written);
      });
      torrent.on('download', () => bytesSilence.heard());
      torrent.once('done', () => finish(true));
      torrent.once('error', (error: Error) => {
        this.hooks.onFallback?.(flight.digest, `torrent failed: ${error.message}`);
        finish(false);
      });
      const watchdog = setInterval(() => {
        const quiet = bytesSilence.tick();
        const idle = progressSilence.tick();
        // Web seeds join only when the swarm (the edge's BitTorrent seeding included) goes idle: over
        // BitTorrent the edge sends a piece to one host and the hosts pass it on, while every host's
        // web-seed requests would each take their own copy from the edge. A job's prefetch has no
        // client waiting: it leaves a slow swarm that has what it lacks to the swarm.
        // Asked at most once a tick: it scans every peer's pieces.
        let slow: boolean | undefined;
        const onlySlow = () => (slow ??= rarestFirst && this.swarm.peersHaveWanted(torrent));
        const edgeSeed = this.swarm.edgeWebSeedOf(torrent);
        if (!edgeJoined && quiet >= this.options.edgeDelayMs && !onlySlow()) {
          edgeJoined = true;
          if (edgeSeed) this.swarm.addWebSeed(torrent, edgeSeed);
        }
        // The center is the last resort: it joins only when peers and edge leave the swarm idle.
        if (!centerJoined && quiet >= this.options.centerDelayMs && !onlySlow()) {
          centerJoined = true;
          for (const url of urlList) this.swarm.addWebSeed(torrent, url);
        }
        // A prefetch's web seeds leave once peers have what it lacks again (a host that saw no such
        // peer for a moment calls them in; a web seed kept on would take its share of every piece for
        // good).
        if ((edgeJoined || centerJoined) && onlySlow()) {
          if (edgeJoined && edgeSeed) this.swarm.pauseWebSeed(torrent, edgeSeed);
          if (centerJoined) for (const url of urlList) this.swarm.pauseWebSeed(torrent, url);
          edgeJoined = centerJoined = false;
        }
        // Stalled: no bytes for the stall timeout (a prefetch's swarm that has what it lacks: several
        // times that), or bytes but no piece that verifies for several times that (peers sending what
        // fails verification).
        const { stallTimeoutMs } = this.options;
        const silent =
          quiet >= stallTimeoutMs && (quiet >= stallTimeoutMs * SLOW_SWARM_STALLS || !onlySlow());
        if (silent || idle >= stallTimeoutMs * UNVERIFIED_STALLS) {
          this.hooks.onFallback?.(
            flight.digest,
            `swarm sent nothing for ${quiet} ms, nothing verified for ${idle} ms`,
          );
          finish(false);
        }
      }, WATCHDOG_MS);
    });
  }

  /** Streams an HTTP body into the file at the flight's current offset, with an idle timeout. */
  private async viaHttp(
    download: Running,
    first: { source: ByteSource; body: Readable },
    handle: FileHandle,
    hasher: Hash | undefined,
  ): Promise<void> {
    const { flight } = download;
    let current = first;
    for (;;) {
      try {
        await this.copy(download, current.source, current.body, handle, hasher);
        return;
      } catch (error) {
        // The edge failed midway: the center continues from where it stopped.
        if (current.source === 'center' || download.signal.aborted) throw error;
        const rest = this.http.filter((source) => source.name !== current.source);
        current = await openOverHttp(rest, flight.digest, flight.written);
      }
    }
  }

  private async copy(
    download: Running,
    source: ByteSource,
    body: Readable,
    handle: FileHandle,
    hasher: Hash | undefined,
  ) {
    const { flight } = download;
    const size = flight.size!;
    const silence = new Silence(WATCHDOG_MS);
    const timeout = this.options.stallTimeoutMs;
    const watchdog = setInterval(() => {
      if (silence.tick() > timeout) body.destroy(new SourceError(`${source} sent nothing for ${timeout} ms`));
    }, WATCHDOG_MS);
    const onClose = () => body.destroy(download.signal.reason as Error);
    download.signal.addEventListener('abort', onClose);
    if (download.signal.aborted) onClose();
    const sink = new Writable({
      highWaterMark: 4 * 1024 * 1024,
      writev: (chunks, callback) => {
        const buffers = chunks.map(({ chunk }) => chunk as Buffer);
        const length = buffers.reduce((sum, buffer) => sum + buffer.length, 0);
        if (flight.written + length > size)
          return callback(new SourceError(`${source} sent more than ${size} bytes`));
        handle.writev(buffers, flight.written).then(({ bytesWritten }) => {
          if (bytesWritten !== length) return callback(new Error('short write to the cache'));
          silence.heard();
          flight.progress(length);
          download.checked = Math.max(download.checked, flight.written);
          this.count(download, source, length);
          callback();
        }, callback);
        // Hashed while the thread pool writes them.
        for (const buffer of buffers) hasher?.update(buffer);
      },
    });
    try {
      await pipeline(body, sink);
    } finally {
      clearInterval(watchdog);
      download.signal.removeEventListener('abort', onClose);
    }
  }
}

/** The partial file of a download, as an earlier download of the layer left it (or new). */
async function openPartial(path: string, size: number): Promise<FileHandle> {
  const handle = await open(path, 'r+').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return open(path, 'w+');
    throw error;
  });
  if ((await handle.stat()).size > size) await handle.truncate(size);
  return handle;
}

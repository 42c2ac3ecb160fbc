// The tracker: BitTorrent HTTP and UDP announces and scrapes (bittorrent-tracker's protocol code),
// serving only the registry's swarms, handing out peers by locality, with swarm state in memory or
// Redis. Beside the protocol: GET /stats, /metrics, /healthz and POST /api/v1/swarms (registration).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Server as BittorrentServer } from 'bittorrent-tracker';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import { Counter, Gauge } from 'prom-client';
import { parseDigest } from '../shared/digest.ts';
import { problemOf, problems } from '../shared/errors.ts';
import { endConnectionsOnClose, listenHttp } from '../shared/listen.ts';
import { createLogger, type Logger } from '../shared/logger.ts';
import { createServiceMetrics, instrumentHttp } from '../shared/metrics.ts';
import { Announcer } from './announcer.ts';
import type { TrackerConfig } from './config.ts';
import { handleHttpAnnounce } from './http-announce.ts';
import { Registrations } from './registrations.ts';
import { MemorySwarmStore, RedisSwarmStore, type SwarmStore } from './swarm-store.ts';
import { ZoneMap } from './zones.ts';

export interface TrackerServer {
  app: FastifyInstance;
  store: SwarmStore;
  registrations: Registrations;
  /** Listens on the configured port (HTTP and UDP); resolves to the HTTP base URL. */
  listen(): Promise<string>;
  close(): Promise<void>;
}

/** What bittorrent-tracker hands a swarm for a UDP announce (the parsed packet). */
interface AnnounceParams {
  peer_id: string;
  ip: string;
  port: number;
  left: number;
  event: string;
  numwant: number;
}

type Callback<T> = (error: Error | null, result?: T) => void;

const INFO_HASH_PATTERN = /^[0-9a-f]{40}$/;

export async function createTracker(config: TrackerConfig, logger?: Logger): Promise<TrackerServer> {
  const log = logger ?? createLogger('tracker', config.logLevel);
  const zones = new ZoneMap(config.zones);
  const peerTtlMs = config.peerTtlSeconds * 1000;
  const store: SwarmStore = config.redisUrl
    ? new RedisSwarmStore(config.redisUrl, config.redisPrefix, peerTtlMs)
    : new MemorySwarmStore(peerTtlMs);
  const registrations = new Registrations(
    config.registryUrl,
    log,
    config.redisUrl,
    `${config.redisPrefix}tracker:registered`,
  );

  const metrics = createServiceMetrics('tracker');
  const registers = [metrics.registry];
  const announces = new Counter({
    name: 'zedge_tracker_announces_total',
    help: 'Announces, by protocol, event and result (ok, refused, invalid)',
    labelNames: ['protocol', 'event', 'result'],
    registers,
  });
  const scrapes = new Counter({
    name: 'zedge_tracker_scrapes_total',
    help: 'Scrapes',
    labelNames: ['protocol'],
    registers,
  });
  /** Every swarm with live peers, and its counts: what /stats and the gauges below show. */
  async function liveSwarms() {
    const infoHashes = await store.swarms();
    const counts = [];
    for (const infoHash of infoHashes) counts.push(await store.counts(infoHash));
    return { infoHashes, counts };
  }
  new Gauge({
    name: 'zedge_tracker_swarms',
    help: 'Swarms with live peers',
    registers,
    async collect() {
      this.set((await store.swarms()).length);
    },
  });
  new Gauge({
    name: 'zedge_tracker_peers',
    help: 'Live peers of all swarms, by role (seeder: has the whole layer; leecher: still downloading)',
    labelNames: ['role'],
    registers,
    async collect() {
      const { counts } = await liveSwarms();
      this.set(
        { role: 'seeder' },
        counts.reduce((sum, count) => sum + count.seeders, 0),
      );
      this.set(
        { role: 'leecher' },
        counts.reduce((sum, count) => sum + count.leechers, 0),
      );
    },
  });
  const rate = new AnnounceRate();

  const announcer = new Announcer(store, registrations, zones, announces, () => rate.tick());

  // UDP announces and all scrapes go through bittorrent-tracker's protocol code, with our swarms in
  // place of its own (the "Swarm" interface it documents: announce and scrape with callbacks).
  const protocol = new BittorrentServer({
    http: false,
    ws: false,
    udp: true,
    stats: false,
    trustProxy: config.trustProxy,
    interval: config.announceIntervalSeconds * 1000,
  });
  const swarmOf = (infoHash: string) => ({
    announce(params: AnnounceParams, callback: Callback<unknown>) {
      announcer
        .announce({
          protocol: 'udp',
          infoHash,
          peerId: params.peer_id,
          ip: params.ip,
          port: params.port,
          left: params.left,
          event: params.event,
          numwant: params.numwant,
        })
        .then(
          ({ counts, peers }) =>
            callback(null, { complete: counts.seeders, incomplete: counts.leechers, peers }),
          (error) => callback(error),
        );
    },
    scrape(params: { type: string }, callback: Callback<unknown>) {
      scrapes.inc({ protocol: params.type });
      store.counts(infoHash).then(
        (counts) => callback(null, { complete: counts.seeders, incomplete: counts.leechers }),
        (error) => callback(error),
      );
    },
  });
  protocol.getSwarm = (infoHash: string | Uint8Array, callback: Callback<unknown>) => {
    const hex = typeof infoHash === 'string' ? infoHash : Buffer.from(infoHash).toString('hex');
    process.nextTick(() => callback(null, swarmOf(hex)));
  };
  protocol.on('warning', (error: Error) => {
    log.debug({ err: error }, 'bad tracker request');
    if (!/unregistered swarm/.test(error.message))
      announces.inc({ protocol: 'any', event: 'none', result: 'invalid' });
  });
  protocol.on('error', (error: Error) => log.error({ err: error }, 'tracker socket error'));

  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    // Announces and scrapes skip fastify entirely: they are most of the traffic, and every
    // microsecond counts against the announce rate.
    serverFactory: (handler) =>
      createServer((request: IncomingMessage, response: ServerResponse) => {
        const path = request.url?.split('?')[0];
        if (path === '/announce') {
          handleHttpAnnounce(announcer, config.announceIntervalSeconds, config.trustProxy, request, response);
        } else if (path === '/scrape') {
          protocol.onHttpRequest(request, response);
        } else handler(request, response);
      }),
  });
  endConnectionsOnClose(app);
  instrumentHttp(app, metrics);
  app.setErrorHandler((error, request, reply) => {
    const problem = problemOf(error);
    if (problem.status >= 500) request.log.error({ err: error }, 'tracker api error');
    reply.code(problem.status).type('application/problem+json').send(problem.toBody(request.url));
  });

  app.get('/healthz', async () => ({ status: 'ok', swarmStore: store.kind }));

  app.get('/stats', async () => {
    const swarms = [];
    let seeders = 0;
    let leechers = 0;
    const { infoHashes, counts } = await liveSwarms();
    const digests = await registrations.registeredDigests(infoHashes);
    for (const [index, infoHash] of infoHashes.entries()) {
      seeders += counts[index]!.seeders;
      leechers += counts[index]!.leechers;
      swarms.push({ infoHash, digest: digests[index] ?? null, ...counts[index]! });
    }
    return {
      swarms,
      totals: { swarms: swarms.length, seeders, leechers, peers: seeders + leechers },
      announcesPerSecond: rate.perSecond(),
    };
  });

  app.post<{ Body: { infoHash: string; digest: string } }>(
    '/api/v1/swarms',
    {
      schema: {
        body: {
          type: 'object',
          required: ['infoHash', 'digest'],
          properties: {
            infoHash: { type: 'string', maxLength: 40 },
            digest: { type: 'string', maxLength: 200 },
          },
        },
      },
    },
    async (request, reply) => {
      const infoHash = request.body.infoHash.toLowerCase();
      if (!INFO_HASH_PATTERN.test(infoHash)) throw problems.badRequest('infoHash must be 40 hex characters');
      try {
        parseDigest(request.body.digest);
      } catch (error) {
        throw problems.badRequest((error as Error).message);
      }
      await registrations.register(infoHash, request.body.digest);
      return reply.code(204).send();
    },
  );

  return {
    app,
    store,
    registrations,
    async listen() {
      const { url, port } = await listenHttp(app, config.host, config.port);
      await listenUdp(protocol, config.host, port);
      return url;
    },
    async close() {
      await new Promise<void>((resolve) => protocol.close(() => resolve()));
      await app.close();
      await store.close();
      await registrations.close();
    },
  };
}

/** Binds the UDP tracker on the HTTP port (IPv4 only when the host is an IPv4 address). */
async function listenUdp(protocol: BittorrentServer, host: string, port: number): Promise<void> {
  const ipv6 = host.includes(':');
  const unused = ipv6 ? protocol.udp4 : protocol.udp6;
  unused?.close();
  if (ipv6) protocol.udp4 = null;
  else protocol.udp6 = null;
  const socket = (ipv6 ? protocol.udp6 : protocol.udp4)!;
  await new Promise<void>((resolve, reject) => {
    socket.once('listening', resolve);
    socket.once('error', reject);
    socket.bind(port, host);
  });
}

/** Announces per second over the last minute. */
class AnnounceRate {
  private readonly buckets = new Array<number>(60).fill(0);
  private second = Math.floor(Date.now() / 1000);

  tick(): void {
    this.advance();
    this.buckets[this.second % 60]!++;
  }

  perSecond(): number {
    this.advance();
    return this.buckets.reduce((sum, value) => sum + value, 0) / 60;
  }

  private advance(): void {
    const now = Math.floor(Date.now() / 1000);
    for (let second = this.second + 1; second <= Math.min(now, this.second + 60); second++)
      this.buckets[second % 60] = 0;
    this.second = now;
  }
}

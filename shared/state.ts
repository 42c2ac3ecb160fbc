// Shared, expiring state (upload sessions, locks) and change notices: Redis when configured, so that
// several processes behind one address agree; in process otherwise, persisted to files so that it
// survives a restart. Values are msgpackr-encoded records.
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { pack, unpack } from 'msgpackr';

export interface StateStore {
  readonly kind: 'redis' | 'local';
  get<T>(key: string): Promise<T | undefined>;
  set<T>(key: string, value: T, ttlMs: number): Promise<void>;
  delete(key: string): Promise<void>;
  /**
   * Adds `by` to the counter `key` (0: reads it), which starts at 0 and lives `ttlMs` from its first
   * count; answers its count and the milliseconds it has left. `delete` removes it.
   */
  count(key: string, by: number, ttlMs: number): Promise<{ count: number; ttlMs: number }>;
  /** Runs `work` while holding a lock named `key` (across processes when backed by Redis). */
  withLock<T>(key: string, ttlMs: number, work: () => Promise<T>): Promise<T>;
  /** Tells the subscribers of `channel`, in every process sharing the store, what changed. */
  publish(channel: string, message?: string): Promise<void>;
  /** Calls `listener` with every message published to `channel` until the returned function is called. */
  subscribe(channel: string, listener: (message: string) => void): () => void;
  close(): Promise<void>;
}

/** The listeners of each channel in this process. */
class Subscribers {
  private readonly byChannel = new Map<string, Set<(message: string) => void>>();

  /** Adds a listener; `first` runs when the channel had none in this process. */
  add(channel: string, listener: (message: string) => void, first?: () => void): () => void {
    let listeners = this.byChannel.get(channel);
    if (!listeners) {
      listeners = new Set();
      this.byChannel.set(channel, listeners);
      first?.();
    }
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
    };
  }

  notify(channel: string, message: string): void {
    for (const listener of this.byChannel.get(channel) ?? []) listener(message);
  }
}

const LOCK_POLL_MS = 25;

export class RedisStateStore implements StateStore {
  readonly kind = 'redis';
  private readonly redis: Redis;
  // A connection in subscriber mode takes no other commands: its own, opened on the first subscribe.
  private subscriber: Redis | undefined;
  private readonly subscribers = new Subscribers();

  constructor(
    url: string,
    private readonly prefix = 'zedge:',
  ) {
    this.redis = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 3, enableOfflineQueue: true });
  }

  async get<T>(key: string): Promise<T | undefined> {
    const value = await this.redis.getBuffer(this.prefix + key);
    return value ? (unpack(value) as T) : undefined;
  }

  async set<T>(key: string, value: T, ttlMs: number): Promise<void> {
    await this.redis.set(this.prefix + key, pack(value), 'PX', ttlMs);
  }

  async delete(key: string): Promise<void> {
    await this.redis.del(this.prefix + key);
  }

  async count(key: string, by: number, ttlMs: number): Promise<{ count: number; ttlMs: number }> {
    // One round trip, atomic: the count and its time to live, set with the first count.
    const [count, left] = (await this.redis.eval(
      `local n = redis.call('INCRBY', KEYS[1], ARGV[1])
       local ttl = redis.call('PTTL', KEYS[1])
       if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]); ttl = tonumber(ARGV[2]) end
       return {n, ttl}`,
      1,
      this.prefix + key,
      by,
      ttlMs,
    )) as [number, number];
    return { count, ttlMs: left };
  }

  async withLock<T>(key: string, ttlMs: number, work: () => Promise<T>): Promise<T> {
    const lockKey = `${this.prefix}lock:${key}`;
    const token = randomUUID();
    while ((await this.redis.set(lockKey, token, 'PX', ttlMs, 'NX')) !== 'OK') {
      await sleep(LOCK_POLL_MS);
    }
    try {
      return await work();
    } finally {
      // Release only our own lock: it may have expired and been taken by another process.
      await this.redis.eval(
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end",
        1,
        lockKey,
        token,
      );
    }
  }

  async publish(channel: string, message = ''): Promise<void> {
    await this.redis.publish(`${this.prefix}notice:${channel}`, message);
  }

  subscribe(channel: string, listener: (message: string) => void): () => void {
    if (!this.subscriber) {
      this.subscriber = this.redis.duplicate();
      const prefix = `${this.prefix}notice:`;
      this.subscriber.on('message', (name: string, message: string) =>
        this.subscribers.notify(name.slice(prefix.length), message),
      );
    }
    const subscriber = this.subscriber;
    return this.subscribers.add(channel, listener, () => {
      void subscriber.subscribe(`${this.prefix}notice:${channel}`).catch(() => {});
    });
  }

  async close(): Promise<void> {
    this.subscriber?.disconnect();
    this.redis.disconnect();
  }
}

interface LocalRecord {
  value: unknown;
  expiresAt: number;
}

export class LocalStateStore implements StateStore {
  readonly kind = 'local';
  private readonly records = new Map<string, LocalRecord>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly subscribers = new Subscribers();

  /** With `persistDir`, records are also written there and read back after a restart. */
  constructor(private readonly persistDir?: string) {
    if (persistDir) mkdirSync(persistDir, { recursive: true });
  }

  async get<T>(key: string): Promise<T | undefined> {
    let record = this.records.get(key);
    if (!record && this.persistDir) {
      const bytes = await readFile(this.fileOf(key)).catch(() => undefined);
      if (bytes) {
        record = unpack(bytes) as LocalRecord;
        this.records.set(key, record);
      }
    }
    if (!record) return undefined;
    if (record.expiresAt <= Date.now()) {
      await this.delete(key);
      return undefined;
    }
    return record.value as T;
  }

  async set<T>(key: string, value: T, ttlMs: number): Promise<void> {
    const record: LocalRecord = { value, expiresAt: Date.now() + ttlMs };
    this.records.set(key, record);
    if (this.persistDir) {
      const file = this.fileOf(key);
      const temporary = `${file}.${randomUUID()}.tmp`;
      await writeFile(temporary, pack(record));
      await rename(temporary, file);
    }
  }

  async delete(key: string): Promise<void> {
    this.records.delete(key);
    if (this.persistDir) await rm(this.fileOf(key), { force: true });
  }

  /** Counters live in memory only: one process has no one to share them with across a restart. */
  async count(key: string, by: number, ttlMs: number): Promise<{ count: number; ttlMs: number }> {
    const now = Date.now();
    let record = this.records.get(key);
    if (!record || record.expiresAt <= now) {
      record = { value: 0, expiresAt: now + ttlMs };
      this.records.set(key, record);
    }
    record.value = (record.value as number) + by;
    return { count: record.value as number, ttlMs: record.expiresAt - now };
  }

  async withLock<T>(key: string, _ttlMs: number, work: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(key) ?? Promise.resolve();
    const current = previous.catch(() => {}).then(work);
    this.locks.set(key, current);
    try {
      return await current;
    } finally {
      if (this.locks.get(key) === current) this.locks.delete(key);
    }
  }

  async publish(channel: string, message = ''): Promise<void> {
    this.subscribers.notify(channel, message);
  }

  subscribe(channel: string, listener: (message: string) => void): () => void {
    return this.subscribers.add(channel, listener);
  }

  async close(): Promise<void> {}

  private fileOf(key: string): string {
    return join(this.persistDir!, `${Buffer.from(key).toString('base64url')}.msgpack`);
  }
}

export function openStateStore(options: {
  redisUrl?: string | undefined;
  persistDir?: string;
  prefix?: string;
}) {
  return options.redisUrl
    ? new RedisStateStore(options.redisUrl, options.prefix)
    : new LocalStateStore(options.persistDir);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Who may read a layer from an edge seeder: whoever the center lets read it. The edge holds every
// layer its zone's deploys need, private ones too, and it has no accounts of its own: it asks the
// center (HEAD /api/v1/blobs/<digest> with the caller's Authorization, or with the token a web seed
// URL carries) and keeps the answer a minute. When the center cannot be asked, a yes it gave in the
// last ten minutes still holds, across a restart of the edge too (the yeses are kept in a file, by
// hash: no credential is written): an outage of the center does not stop a zone's running deploys.
import { createHash } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import type { Digest } from '../shared/digest.ts';
import { ProblemError, problems } from '../shared/errors.ts';

const ALLOWED_FOR_MS = 60_000;
const DENIED_FOR_MS = 5_000;
const STALE_ALLOWED_MS = 10 * 60_000;
const ASK_TIMEOUT_MS = 5_000;
const MAX_ANSWERS = 10_000;
// New yeses reach the file at most this often.
const SAVE_EVERY_MS = 5_000;

/** What a request to the seeder presents: its Authorization header, or a web seed URL's `?token=`. */
export interface Credentials {
  authorization?: string | undefined;
  token?: string | undefined;
}

type Answer = { verdict: 'allowed' | 'unauthorized' | 'forbidden'; at: number };
/** What the center said: a verdict, or that it refuses the caller's sign-ins for a while (not kept). */
type Asked = Answer['verdict'] | { retryAfterSeconds: number };

export class LayerAccess {
  private readonly answers = new Map<string, Answer>();
  private readonly asking = new Map<string, Promise<Asked>>();
  private saveTimer: NodeJS.Timeout | undefined;
  private saving: Promise<void> = Promise.resolve();

  private constructor(
    private readonly centerUrl: string,
    private readonly file: string,
  ) {}

  /** The edge's access checks, with the yeses an earlier run kept in `file`. */
  static async open(centerUrl: string, file: string): Promise<LayerAccess> {
    const access = new LayerAccess(centerUrl, file);
    const kept = await readFile(file, 'utf8').then(
      (text) => JSON.parse(text) as [string, number][],
      () => [],
    );
    for (const [key, at] of Array.isArray(kept) ? kept : [])
      if (typeof key === 'string' && Date.now() - at < STALE_ALLOWED_MS)
        access.answers.set(key, { verdict: 'allowed', at });
    return access;
  }

  /** Writes what is pending to the file. */
  async close(): Promise<void> {
    clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    await this.save();
  }

  /** Resolves when the caller may read the layer; else throws a 401, 403 or 502 problem. */
  async check(credentials: Credentials, digest: Digest): Promise<void> {
    const key = createHash('sha256')
      .update(`${credentials.authorization ?? ''}\n${credentials.token ?? ''}\n${digest}`)
      .digest('hex');
    const known = this.answers.get(key);
    const age = known ? Date.now() - known.at : Number.POSITIVE_INFINITY;
    let verdict =
      known && age < (known.verdict === 'allowed' ? ALLOWED_FOR_MS : DENIED_FOR_MS) && known.verdict;
    if (!verdict) {
      try {
        // A web seed asks for many pieces at once: one question to the center for all of them.
        let asking = this.asking.get(key);
        if (!asking) {
          asking = this.ask(credentials, digest).finally(() => this.asking.delete(key));
          this.asking.set(key, asking);
        }
        const asked = await asking;
        if (typeof asked === 'object')
          throw problems.tooManyRequests(
            'the center refuses these credentials for now: too many failed sign-ins',
            asked.retryAfterSeconds,
          );
        verdict = asked;
        this.remember(key, verdict);
      } catch (error) {
        if (error instanceof ProblemError) throw error;
        if (known?.verdict === 'allowed' && age < STALE_ALLOWED_MS) verdict = 'allowed';
        else
          throw problems.badUpstream(
            `cannot ask the center who may read ${digest}: ${(error as Error).message}`,
          );
      }
    }
    if (verdict === 'unauthorized') throw problems.unauthorized(`sign in to read ${digest}`);
    if (verdict === 'forbidden')
      throw problems.forbidden(`the center does not let this caller read ${digest}`);
  }

  private async ask(credentials: Credentials, digest: Digest): Promise<Asked> {
    const query = credentials.token ? `?token=${encodeURIComponent(credentials.token)}` : '';
    const response = await fetch(`${this.centerUrl}/api/v1/blobs/${digest}${query}`, {
      method: 'HEAD',
      headers: credentials.authorization ? { authorization: credentials.authorization } : {},
      signal: AbortSignal.timeout(ASK_TIMEOUT_MS),
    });
    // 404: the caller may read every layer, and the center has no such one; the edge's own lookup
    // answers it as it would (a caller who may not read everything gets 401 or 403 whatever the layer).
    if (response.ok || response.status === 404) return 'allowed';
    if (response.status === 401) return 'unauthorized';
    if (response.status === 403) return 'forbidden';
    if (response.status === 429)
      return { retryAfterSeconds: Math.max(1, Number(response.headers.get('retry-after')) || 1) };
    throw new Error(`the center answered ${response.status}`);
  }

  private remember(key: string, verdict: Answer['verdict']): void {
    this.answers.delete(key);
    this.answers.set(key, { verdict, at: Date.now() });
    // Oldest first: the map's order is insertion order.
    if (this.answers.size > MAX_ANSWERS) this.answers.delete(this.answers.keys().next().value!);
    if (verdict === 'allowed') this.saveTimer ??= setTimeout(() => void this.save(), SAVE_EVERY_MS).unref();
  }

  private save(): Promise<void> {
    this.saveTimer = undefined;
    const allowed = [...this.answers]
      .filter(([, answer]) => answer.verdict === 'allowed')
      .map(([key, answer]) => [key, answer.at]);
    // One write at a time, each whole (written aside, then renamed over the file).
    this.saving = this.saving
      .catch(() => {})
      .then(async () => {
        await writeFile(`${this.file}.tmp`, JSON.stringify(allowed));
        await rename(`${this.file}.tmp`, this.file);
      });
    return this.saving.catch(() => {});
  }
}

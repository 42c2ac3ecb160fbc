// Failed sign-ins are limited per client address and username: a password guesser gets a few tries
// a window, then 429 with Retry-After, and its further guesses cost no scrypt. Counted per address, so
// that someone who knows a host account's name cannot lock the hosts themselves out; credentials the
// authenticator already verified pass before the throttle is asked. With a shared store (Redis), the
// wrong passwords are counted for every registry of the deployment: a guesser spreading its tries over
// them gets the limit once, not once per registry. Tries being checked count in this process only.
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { OciError } from '../../shared/errors.ts';
import type { StateStore } from '../../shared/state.ts';

export class SignInThrottledError extends Error {
  override name = 'SignInThrottledError';

  constructor(readonly retryAfterSeconds: number) {
    super(`too many failed sign-ins from this address: try again in ${retryAfterSeconds} s`);
  }
}

/** The refusal as /v2 and /token give it: TOOMANYREQUESTS with Retry-After. */
export function throttledOciError(error: SignInThrottledError): OciError {
  return new OciError('TOOMANYREQUESTS', error.message, {
    headers: { 'Retry-After': String(error.retryAfterSeconds) },
  });
}

export interface SignInThrottleOptions {
  /** Failed sign-ins of one username from one address before further tries are refused; 0: no limit. */
  maxFailures: number;
  /** How long the count runs from the first failure (and a refusal lasts at most). */
  windowSeconds: number;
  /** Told once a window, when `address` runs out of tries for `username`. */
  onEngaged?: (address: string, username: string) => void;
}

// Enough for a scan from many addresses; the oldest counts give way first.
const MAX_TRACKED = 100_000;

/** One address's tries at one username in the current window. */
interface Tries {
  failures: number;
  /** Passwords being checked now: a guesser's parallel tries count before scrypt answers them. */
  pending: number;
  until: number;
}

/** How a password check ended: `error` (the database failed, say) counts as no try. */
export type CheckOutcome = 'signed-in' | 'wrong' | 'error';

export class SignInThrottle {
  private readonly tries = new LRUCache<string, Tries>({ max: MAX_TRACKED });

  constructor(
    private readonly options: SignInThrottleOptions,
    /** Where every registry of the deployment counts wrong passwords (Redis); none: this process only. */
    private readonly shared?: StateStore,
  ) {}

  /**
   * Begins a password check of `username` from `address`; call the returned function with how it
   * ended. Rejects with SignInThrottledError, and nothing is checked, while the address has no tries
   * left. A shared store that does not answer leaves this process's own count to decide.
   */
  async begin(address: string, username: string): Promise<(outcome: CheckOutcome) => void> {
    const { maxFailures, windowSeconds, onEngaged } = this.options;
    if (maxFailures <= 0) return () => {};
    const key = keyOf(address, username);
    const windowMs = windowSeconds * 1000;
    const shared = await this.shared?.count(key, 0, windowMs).catch(() => undefined);
    // Read after the shared count: tries begun meanwhile in this process are pending here.
    const tries = this.current(key) ?? { failures: 0, pending: 0, until: Date.now() + windowMs };
    const failures = Math.max(tries.failures, shared?.count ?? 0);
    if (failures + tries.pending >= maxFailures) {
      const leftMs = Math.max(tries.until - Date.now(), shared?.ttlMs ?? 0);
      throw new SignInThrottledError(Math.max(1, Math.ceil(leftMs / 1000)));
    }
    tries.pending++;
    this.tries.set(key, tries);
    return (outcome) => {
      tries.pending--;
      if (outcome === 'signed-in') {
        this.tries.delete(key);
        void this.shared?.delete(key).catch(() => {});
      } else if (outcome === 'wrong') {
        tries.failures++;
        void this.shared?.count(key, 1, windowMs).catch(() => {});
        if (Math.max(tries.failures, (shared?.count ?? 0) + 1) === maxFailures)
          onEngaged?.(address, username);
      }
    };
  }

  /** The tries of the current window; a window that is over starts again. */
  private current(key: string): Tries | undefined {
    const tries = this.tries.get(key);
    if (!tries || tries.until > Date.now()) return tries;
    if (tries.pending === 0) {
      this.tries.delete(key);
      return undefined;
    }
    tries.failures = 0;
    tries.until = Date.now() + this.options.windowSeconds * 1000;
    return tries;
  }
}

/** The count's name, here and in the shared store (hashed there: no usernames in Redis's keys). */
function keyOf(address: string, username: string): string {
  return `sign-in-failures:${createHash('sha256').update(address).update('\0').update(username).digest('base64url')}`;
}

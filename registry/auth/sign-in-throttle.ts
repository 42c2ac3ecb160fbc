// Failed sign-ins are limited per client address and username: a password guesser gets a few tries
// a window, then 429 with Retry-After, and its further guesses cost no scrypt. Counted per address, so
// that someone who knows a host account's name cannot lock the hosts themselves out; credentials the
// authenticator already verified pass before the throttle is asked. Counts are per registry process.
import { LRUCache } from 'lru-cache';
import { OciError } from '../../shared/errors.ts';

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

export class SignInThrottle {
  private readonly failures = new LRUCache<string, { count: number; until: number }>({ max: MAX_TRACKED });

  constructor(private readonly options: SignInThrottleOptions) {}

  /** Throws SignInThrottledError while `address` may not try `username` again. */
  check(address: string, username: string): void {
    const entry = this.live(address, username);
    if (entry && entry.count >= this.options.maxFailures)
      throw new SignInThrottledError(Math.max(1, Math.ceil((entry.until - Date.now()) / 1000)));
  }

  /** A wrong password (or unknown username); returns how many failures the window holds now. */
  failed(address: string, username: string): number {
    if (this.options.maxFailures <= 0) return 0;
    const entry = this.live(address, username) ?? {
      count: 0,
      until: Date.now() + this.options.windowSeconds * 1000,
    };
    entry.count++;
    this.failures.set(keyOf(address, username), entry);
    if (entry.count === this.options.maxFailures) this.options.onEngaged?.(address, username);
    return entry.count;
  }

  succeeded(address: string, username: string): void {
    this.failures.delete(keyOf(address, username));
  }

  private live(address: string, username: string): { count: number; until: number } | undefined {
    const entry = this.failures.get(keyOf(address, username));
    return entry && entry.until > Date.now() ? entry : undefined;
  }
}

function keyOf(address: string, username: string): string {
  return `${address}\0${username}`;
}

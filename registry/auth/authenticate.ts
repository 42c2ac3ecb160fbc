// Who a request comes from: `Authorization: Basic` (username and password), `Authorization: Bearer`
// (a token this deployment signed), or nobody. Wrong credentials are an error, never anonymous.
//
// scrypt is slow on purpose, and clients such as agents send Basic credentials with every request, so a
// verified pair is remembered by its hash together with the password hash it matched: the next request
// with the same pair costs one lookup of the account, and a changed password (a new hash) is checked anew.
// A pair not remembered is checked once however many requests bring it at the same time (an agent
// starting up), after the sign-in throttle (sign-in-throttle.ts) let it through.
import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { ANONYMOUS, type Principal } from './access.ts';
import type { Accounts, User } from './accounts.ts';
import { type CheckOutcome, SignInThrottle } from './sign-in-throttle.ts';
import { ANONYMOUS_SUBJECT, TokenError, type Tokens } from './tokens.ts';

export class AuthError extends Error {
  override name = 'AuthError';
}

const MAX_REMEMBERED = 10_000;
const MAX_HEADER = 16 * 1024;

export class Authenticator {
  // sha256(username, password) -> the password hash they were verified against.
  private readonly verified = new Map<string, string>();
  private readonly principals = new WeakMap<object, Promise<Principal>>();
  // sha256(username, password) -> its check in progress.
  private readonly checking = new Map<string, Promise<{ user: User; hash: string } | undefined>>();

  constructor(
    private readonly accounts: Accounts,
    readonly tokens: Tokens,
    private readonly throttle = new SignInThrottle({ maxFailures: 0, windowSeconds: 0 }),
    /** Told of every Basic sign-in refused: for a wrong pair, or by the throttle. */
    private readonly onRefused: (reason: 'wrong_credentials' | 'throttled') => void = () => {},
  ) {}

  /**
   * The request's principal, worked out once per request. `queryToken`: a `?token=` query parameter is
   * accepted as a bearer token too (web seed URLs carry theirs so, BitTorrent clients send no headers).
   */
  principal(request: FastifyRequest, options: { queryToken?: boolean } = {}): Promise<Principal> {
    let found = this.principals.get(request);
    if (!found) {
      const query = request.query as Record<string, unknown> | undefined;
      const token = options.queryToken && typeof query?.token === 'string' ? query.token : undefined;
      found =
        token && !request.headers.authorization
          ? this.bearer(token)
          : this.fromHeader(request.headers.authorization, request.ip);
      this.principals.set(request, found);
    }
    return found;
  }

  /** `address`: the client's, whose failed sign-ins the throttle counts (unknown ones share a count). */
  async fromHeader(header: string | undefined, address = ''): Promise<Principal> {
    if (header === undefined || header === '') return ANONYMOUS;
    if (header.length > MAX_HEADER) throw new AuthError('the Authorization header is too long');
    const space = header.indexOf(' ');
    const scheme = header.slice(0, space).toLowerCase();
    const value = header.slice(space + 1).trim();
    if (space < 0 || !value) throw new AuthError('malformed Authorization header');
    if (scheme === 'bearer') return this.bearer(value);
    if (scheme !== 'basic') throw new AuthError(`unsupported authorization scheme "${scheme.slice(0, 20)}"`);
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) throw new AuthError('malformed Basic credentials');
    const user = await this.basic(decoded.slice(0, colon), decoded.slice(colon + 1), address);
    return { user, scope: undefined, via: 'basic' };
  }

  /**
   * The user a username and password sign in as; AuthError when they do not, SignInThrottledError
   * when `address` failed too often for `username` (even with the right password).
   */
  async basic(username: string, password: string, address = ''): Promise<User> {
    const key = createHash('sha256').update(username).update('\0').update(password).digest('base64');
    const remembered = this.verified.get(key);
    if (remembered) {
      const account = await this.accounts.signInHash(username);
      if (account && account.hash === remembered) return account.user;
      this.verified.delete(key);
    }
    const account = await (this.checking.get(key) ?? this.check(key, username, password, address));
    if (!account) {
      this.onRefused('wrong_credentials');
      throw new AuthError('invalid username or password');
    }
    return account.user;
  }

  /** Checks a pair with scrypt, if the throttle lets `address` try; remembers it when it is right. */
  private check(key: string, username: string, password: string, address: string) {
    // Kept in `checking` at once: the same pair brought by many requests is checked once.
    const checking = (async () => {
      let ended: (outcome: CheckOutcome) => void;
      try {
        ended = await this.throttle.begin(address, username);
      } catch (error) {
        this.onRefused('throttled');
        throw error;
      }
      let account: Awaited<ReturnType<Accounts['verify']>>;
      try {
        account = await this.accounts.verify(username, password);
      } catch (error) {
        ended('error');
        throw error;
      }
      ended(account ? 'signed-in' : 'wrong');
      if (account) {
        if (this.verified.size >= MAX_REMEMBERED) this.verified.delete(this.verified.keys().next().value!);
        this.verified.set(key, account.hash);
      }
      return account;
    })();
    this.checking.set(key, checking);
    void checking.finally(() => this.checking.delete(key)).catch(() => {});
    return checking;
  }

  async bearer(token: string): Promise<Principal> {
    let claims: Awaited<ReturnType<Tokens['verify']>>;
    try {
      claims = await this.tokens.verify(token);
    } catch (error) {
      throw new AuthError(error instanceof TokenError ? error.message : 'the token is not valid here');
    }
    if (claims.sub === ANONYMOUS_SUBJECT)
      return { user: undefined, scope: claims.access ?? [], via: 'bearer' };
    const user = await this.accounts.getUser(claims.sub).catch(() => undefined);
    if (!user || user.disabled || user.kind === 'system')
      throw new AuthError('the token names an account that no longer signs in');
    return { user, scope: claims.access, via: 'bearer' };
  }
}

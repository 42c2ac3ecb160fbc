// Bearer tokens: RS256 JWTs (jose). The signing key comes from ZEDGE_JWT_PRIVATE_KEY_FILE (PEM, RSA),
// the verifying key from ZEDGE_JWT_PUBLIC_KEY_FILE or the private key's public half. With neither set,
// the first registry to start generates a 2048-bit key and keeps it in the database (signing_keys), so
// that every registry of a deployment signs and verifies alike and tokens survive restarts.
//
// Claims: iss and aud "zedge-p2p", sub (the user's id), name (its username), iat, exp, jti, and for tokens
// of the Docker token flow `access` (what they grant, as Docker's token spec has it). A token without
// `access` stands for its user entirely (an API token); one with `access` grants only what it lists.
import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { calculateJwkThumbprint, errors, exportJWK, jwtVerify, SignJWT } from 'jose';
import { ConfigError } from '../../shared/config.ts';
import type { Database } from '../../shared/db/database.ts';

export const SERVICE = 'zedge-p2p';
/** The subject of anonymous tokens: no account has it (the name is reserved), so they grant what anonymous callers may. */
export const ANONYMOUS_SUBJECT = 'anonymous';

/** One grant of a token: `{type: "repository", name: "zedge/desktop", actions: ["pull"]}`. */
export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

export interface TokenClaims {
  /** The user's id. */
  sub: string;
  /** The user's name when the token was issued. */
  name: string;
  access?: AccessEntry[];
  iat: number;
  exp: number;
}

export interface TokenKeySettings {
  privateKeyFile: string | undefined;
  publicKeyFile: string | undefined;
}

export class TokenError extends Error {
  override name = 'TokenError';
}

export class Tokens {
  private constructor(
    private readonly signingKey: KeyObject | undefined,
    private readonly verifyingKey: KeyObject,
    private readonly kid: string,
  ) {}

  static async open(db: Database, settings: TokenKeySettings): Promise<Tokens> {
    let signing: KeyObject | undefined;
    let verifying: KeyObject;
    if (settings.privateKeyFile || settings.publicKeyFile) {
      signing = settings.privateKeyFile
        ? rsaKey(() => createPrivateKey(readFileSync(settings.privateKeyFile!)), 'ZEDGE_JWT_PRIVATE_KEY_FILE')
        : undefined;
      verifying = settings.publicKeyFile
        ? rsaKey(() => createPublicKey(readFileSync(settings.publicKeyFile!)), 'ZEDGE_JWT_PUBLIC_KEY_FILE')
        : createPublicKey(signing!);
    } else {
      const stored = await storedKey(db);
      signing = createPrivateKey(stored.private_key_pem);
      verifying = createPublicKey(stored.public_key_pem);
    }
    const kid = await calculateJwkThumbprint(await exportJWK(verifying));
    return new Tokens(signing, verifying, kid);
  }

  /** Whether this registry signs tokens (it only verifies them when given a public key alone). */
  get canIssue(): boolean {
    return this.signingKey !== undefined;
  }

  async issue(
    user: { id: string; username: string },
    access: AccessEntry[] | undefined,
    ttlSeconds: number,
  ): Promise<{ token: string; issuedAt: Date; expiresIn: number }> {
    if (!this.signingKey)
      throw new TokenError('this registry has no signing key (ZEDGE_JWT_PRIVATE_KEY_FILE)');
    const issuedAt = new Date(Math.floor(Date.now() / 1000) * 1000);
    const token = await new SignJWT({ name: user.username, ...(access ? { access } : {}) })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: this.kid })
      .setIssuer(SERVICE)
      .setAudience(SERVICE)
      .setSubject(user.id)
      .setIssuedAt(issuedAt)
      .setExpirationTime(new Date(issuedAt.getTime() + ttlSeconds * 1000))
      .setJti(randomUUID())
      .sign(this.signingKey);
    return { token, issuedAt, expiresIn: ttlSeconds };
  }

  /** The claims of a token this deployment signed; TokenError when forged, malformed or expired. */
  async verify(token: string): Promise<TokenClaims> {
    try {
      const { payload } = await jwtVerify(token, this.verifyingKey, {
        issuer: SERVICE,
        audience: SERVICE,
        algorithms: ['RS256'],
        requiredClaims: ['sub', 'exp', 'iat'],
      });
      if (payload.access !== undefined && !isAccessList(payload.access))
        throw new TokenError('the token has a malformed access claim');
      return payload as unknown as TokenClaims;
    } catch (error) {
      if (error instanceof TokenError) throw error;
      if (error instanceof errors.JWTExpired) throw new TokenError('the token has expired');
      throw new TokenError('the token is not valid here');
    }
  }
}

function isAccessList(value: unknown): value is AccessEntry[] {
  return (
    Array.isArray(value) &&
    value.every(
      (entry) =>
        typeof entry?.type === 'string' &&
        typeof entry.name === 'string' &&
        Array.isArray(entry.actions) &&
        entry.actions.every((action: unknown) => typeof action === 'string'),
    )
  );
}

function rsaKey(load: () => KeyObject, setting: string): KeyObject {
  let key: KeyObject;
  try {
    key = load();
  } catch (error) {
    throw new ConfigError(`${setting}: ${(error as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'rsa' || (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048)
    throw new ConfigError(`${setting} must be an RSA key of at least 2048 bits (RS256)`);
  return key;
}

interface StoredKey {
  private_key_pem: string;
  public_key_pem: string;
}

/** The deployment's generated key: made by the first registry to start, read by the others. */
async function storedKey(db: Database): Promise<StoredKey> {
  const existing = await db.query<StoredKey>(
    'SELECT private_key_pem, public_key_pem FROM signing_keys WHERE id = 1',
  );
  if (existing[0]) return existing[0];
  const { privateKey, publicKey } = await new Promise<{ privateKey: string; publicKey: string }>(
    (resolve, reject) =>
      generateKeyPair(
        'rsa',
        {
          modulusLength: 2048,
          privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
          publicKeyEncoding: { type: 'spki', format: 'pem' },
        },
        (error, publicKey, privateKey) => (error ? reject(error) : resolve({ privateKey, publicKey })),
      ),
  );
  const kid = await calculateJwkThumbprint(await exportJWK(createPublicKey(publicKey)));
  await db.query(
    `INSERT INTO signing_keys (id, kid, private_key_pem, public_key_pem) VALUES (1, $1, $2, $3)
     ON CONFLICT (id) DO NOTHING`,
    [kid, privateKey, publicKey],
  );
  return (
    await db.query<StoredKey>('SELECT private_key_pem, public_key_pem FROM signing_keys WHERE id = 1')
  )[0]!;
}

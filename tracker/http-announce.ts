// HTTP announces, parsed and answered here rather than by bittorrent-tracker: announces are nearly
// all of a tracker's traffic, and its generic path (address parsing libraries, string round trips)
// cost four fifths of the time. Same rules and error texts as bittorrent-tracker's parser.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AnnounceError, type Announcer, DEFAULT_NUMWANT } from './announcer.ts';
import type { CompactPeers, PeerAddress } from './swarm-store.ts';

/** Decodes a percent-encoded binary query value to hex; undefined unless exactly 20 bytes. */
function binaryToHex(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const bytes: number[] = [];
  for (let at = 0; at < value.length; at++) {
    const code = value.charCodeAt(at);
    if (code === 37 /* % */) {
      const byte = Number.parseInt(value.slice(at + 1, at + 3), 16);
      if (Number.isNaN(byte)) return undefined;
      bytes.push(byte);
      at += 2;
    } else {
      bytes.push(code === 43 /* + */ ? 32 : code);
    }
    if (bytes.length > 20) return undefined;
  }
  return bytes.length === 20 ? Buffer.from(bytes).toString('hex') : undefined;
}

function parseQuery(url: string): Map<string, string> {
  const query = new Map<string, string>();
  const start = url.indexOf('?');
  if (start < 0) return query;
  for (const pair of url.slice(start + 1).split('&')) {
    const equals = pair.indexOf('=');
    if (equals > 0) query.set(pair.slice(0, equals), pair.slice(equals + 1));
  }
  return query;
}

function text(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  try {
    return decodeURIComponent(value);
  } catch {
    return undefined;
  }
}

/** A compact answer (BEP 23 `peers`, BEP 7 `peers6`), written into one buffer. */
function compactAnswer(head: string, { v4, v6 }: CompactPeers): Buffer {
  const v4Header = `5:peers${v4.length}:`;
  const v6Header = `6:peers6${v6.length}:`;
  const out = Buffer.allocUnsafe(head.length + v4Header.length + v4.length + v6Header.length + v6.length + 1);
  let at = out.write(head, 0, 'latin1');
  at += out.write(v4Header, at, 'latin1');
  at += v4.copy(out, at);
  at += out.write(v6Header, at, 'latin1');
  at += v6.copy(out, at);
  out[at] = 0x65; // 'e'
  return out;
}

/** Compact addresses of peers a store did not gather them for (the Redis store). */
function compactOf(peers: PeerAddress[]): CompactPeers {
  const v4 = peers.filter((peer) => peer.compact.length === 6).map((peer) => peer.compact);
  const v6 = peers.filter((peer) => peer.compact.length !== 6).map((peer) => peer.compact);
  return { v4: Buffer.concat(v4), v6: Buffer.concat(v6) };
}

// A bencoded dictionary of known shape, keys in sorted order as bencoding requires.
function bencodeString(value: Buffer | string): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value) : value;
  return Buffer.concat([Buffer.from(`${bytes.length}:`), bytes]);
}

export function bencodeFailure(reason: string): Buffer {
  return Buffer.concat([Buffer.from('d14:failure reason'), bencodeString(reason), Buffer.from('e')]);
}

export function handleHttpAnnounce(
  announcer: Announcer,
  intervalSeconds: number,
  trustProxy: boolean,
  request: IncomingMessage,
  response: ServerResponse,
): undefined {
  // BitTorrent clients read no Date header; formatting one per answer is measurable at this rate.
  response.sendDate = false;
  const query = parseQuery(request.url ?? '');
  const fail = (reason: string): undefined => {
    response.end(bencodeFailure(reason));
  };
  const infoHash = binaryToHex(query.get('info_hash'));
  if (!infoHash) return fail('invalid info_hash');
  const peerId = binaryToHex(query.get('peer_id'));
  if (!peerId) return fail('invalid peer_id');
  const port = Number(query.get('port'));
  if (!Number.isInteger(port) || port <= 0 || port > 65535) return fail('invalid port');
  const left = Number(query.get('left'));
  const forwarded = trustProxy ? request.headers['x-forwarded-for'] : undefined;
  const ip = (
    typeof forwarded === 'string' ? forwarded.split(',')[0]!.trim() : (request.socket.remoteAddress ?? '')
  ).replace(/^::ffff:/, '');
  const numwant = Number(query.get('numwant'));
  const compactWanted = query.get('compact') === '1';
  announcer
    .announce({
      protocol: 'http',
      infoHash,
      peerId,
      ip,
      port,
      left: Number.isNaN(left) ? Number.POSITIVE_INFINITY : left,
      event: text(query.get('event')) || 'update',
      numwant: Number.isInteger(numwant) && numwant >= 0 && query.has('numwant') ? numwant : DEFAULT_NUMWANT,
      zone: text(query.get('zone')),
      role: text(query.get('role')),
    })
    .then(
      ({ counts, peers, compact }) => {
        const head = `d8:completei${counts.seeders}e10:incompletei${counts.leechers}e8:intervali${intervalSeconds}e`;
        if (compactWanted) {
          response.end(compactAnswer(head, compact ?? compactOf(peers)));
          return;
        }
        const parts: Buffer[] = [Buffer.from(`${head}5:peersl`)];
        for (const peer of peers) {
          parts.push(
            Buffer.from('d2:ip'),
            bencodeString(peer.ip),
            Buffer.from('7:peer id'),
            bencodeString(Buffer.from(peer.peerId, 'hex')),
            Buffer.from(`4:porti${peer.port}ee`),
          );
        }
        parts.push(Buffer.from('ee'));
        response.end(Buffer.concat(parts));
      },
      (error: Error) => fail(error instanceof AnnounceError ? error.message : 'tracker error'),
    );
}

// A raw BitTorrent tracker client for tests: HTTP announces and scrapes (bencoded answers decoded)
// and UDP announces (BEP 15 packets built by hand).

import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import bencode from 'bencode';

export interface Announce {
  infoHash: string;
  peerId?: string;
  port: number;
  left?: number;
  event?: 'started' | 'completed' | 'stopped';
  numwant?: number | string;
  zone?: string;
  role?: string;
  compact?: 0 | 1;
}

/** Percent-encodes every byte, as trackers expect for binary info_hash and peer_id values. */
export function binaryParam(hex: string): string {
  return hex.replace(/../g, (byte) => `%${byte}`);
}

export function newPeerId(): string {
  return Buffer.concat([Buffer.from('-ZT0001-'), randomBytes(12)]).toString('hex');
}

export interface AnnounceAnswer {
  failure?: string;
  complete?: number;
  incomplete?: number;
  interval?: number;
  peers: { ip: string; port: number }[];
}

export async function httpAnnounce(base: string, announce: Announce): Promise<AnnounceAnswer> {
  const query = [
    `info_hash=${binaryParam(announce.infoHash)}`,
    `peer_id=${binaryParam(announce.peerId ?? newPeerId())}`,
    `port=${announce.port}`,
    `left=${announce.left ?? 1000}`,
    `uploaded=0`,
    `downloaded=0`,
    `compact=${announce.compact ?? 1}`,
  ];
  if (announce.event) query.push(`event=${announce.event}`);
  if (announce.numwant !== undefined) query.push(`numwant=${announce.numwant}`);
  if (announce.zone) query.push(`zone=${announce.zone}`);
  if (announce.role) query.push(`role=${announce.role}`);
  return decodeAnswer(await rawGet(`${base}/announce?${query.join('&')}`));
}

export async function rawGet(url: string): Promise<Buffer> {
  const response = await fetch(url);
  return Buffer.from(await response.arrayBuffer());
}

export function decodeAnswer(body: Buffer): AnnounceAnswer {
  const answer = bencode.decode(body) as Record<string, unknown>;
  if (answer['failure reason'])
    return { failure: Buffer.from(answer['failure reason'] as Uint8Array).toString(), peers: [] };
  const raw = answer.peers;
  const peers: { ip: string; port: number }[] = [];
  if (raw instanceof Uint8Array) {
    for (let at = 0; at + 6 <= raw.length; at += 6) {
      peers.push({ ip: [...raw.subarray(at, at + 4)].join('.'), port: (raw[at + 4]! << 8) | raw[at + 5]! });
    }
  } else if (Array.isArray(raw)) {
    for (const peer of raw as { ip: Uint8Array; port: number }[])
      peers.push({ ip: Buffer.from(peer.ip).toString(), port: peer.port });
  }
  return {
    complete: answer.complete as number,
    incomplete: answer.incomplete as number,
    interval: answer.interval as number,
    peers,
  };
}

export async function httpScrape(
  base: string,
  infoHash: string,
): Promise<{ complete: number; incomplete: number }> {
  const answer = bencode.decode(await rawGet(`${base}/scrape?info_hash=${binaryParam(infoHash)}`)) as {
    files: Record<string, { complete: number; incomplete: number }>;
  };
  return Object.values(answer.files)[0]!;
}

/** Sends one UDP datagram and resolves to the answer, or undefined after `timeoutMs`. */
export function udpExchange(port: number, packet: Buffer, timeoutMs = 1000): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      resolve(undefined);
    }, timeoutMs);
    socket.on('message', (message) => {
      clearTimeout(timer);
      socket.close();
      resolve(message);
    });
    socket.send(packet, port, '127.0.0.1');
  });
}

const PROTOCOL_ID = Buffer.from('0000041727101980', 'hex');

/** A BEP 15 connect then announce; resolves to the peers and counts. */
export async function udpAnnounce(trackerPort: number, announce: Announce): Promise<AnnounceAnswer> {
  const transaction = randomBytes(4);
  const connect = Buffer.concat([PROTOCOL_ID, Buffer.from([0, 0, 0, 0]), transaction]);
  const connected = await udpExchange(trackerPort, connect);
  if (connected?.readUInt32BE(0) !== 0) throw new Error('UDP connect failed');
  const connectionId = connected.subarray(8, 16);
  const packet = Buffer.alloc(98);
  connectionId.copy(packet, 0);
  packet.writeUInt32BE(1, 8);
  transaction.copy(packet, 12);
  Buffer.from(announce.infoHash, 'hex').copy(packet, 16);
  Buffer.from(announce.peerId ?? newPeerId(), 'hex').copy(packet, 36);
  packet.writeBigUInt64BE(0n, 56);
  packet.writeBigUInt64BE(BigInt(announce.left ?? 1000), 64);
  packet.writeBigUInt64BE(0n, 72);
  packet.writeUInt32BE({ none: 0, completed: 1, started: 2, stopped: 3 }[announce.event ?? 'none'], 80);
  packet.writeUInt32BE(0, 84);
  packet.writeUInt32BE(0, 88);
  packet.writeInt32BE(Number(announce.numwant ?? -1), 92);
  packet.writeUInt16BE(announce.port, 96);
  const answer = await udpExchange(trackerPort, packet);
  if (!answer) throw new Error('no UDP announce answer');
  if (answer.readUInt32BE(0) === 3) return { failure: answer.subarray(8).toString(), peers: [] };
  const peers = [];
  for (let at = 20; at + 6 <= answer.length; at += 6) {
    peers.push({ ip: [...answer.subarray(at, at + 4)].join('.'), port: answer.readUInt16BE(at + 4) });
  }
  return {
    interval: answer.readUInt32BE(8),
    incomplete: answer.readUInt32BE(12),
    complete: answer.readUInt32BE(16),
    peers,
  };
}

// Starting a zedge BitTorrent client: the data-centre options, the caller's own, and a listening TCP
// port before anything is added (a port in use fails the start instead of every later download).
import WebTorrent from 'webtorrent';
import type { Logger } from '../logger.ts';
import { DATACENTER_CLIENT_OPTIONS } from './client-options.ts';
import './direct-pipes.ts';

export async function startTorrentClient(options: Record<string, unknown>, log: Logger): Promise<WebTorrent> {
  const client = new WebTorrent({ ...DATACENTER_CLIENT_OPTIONS, ...options });
  client.on('error', (error: Error) => log.warn({ err: error }, 'bittorrent client error'));
  await new Promise<void>((resolve, reject) => {
    if (client.listening) return resolve();
    client.once('listening', resolve);
    client.once('error', reject);
  }).catch((error) => {
    if (!client.destroyed) client.destroy();
    throw error;
  });
  return client;
}

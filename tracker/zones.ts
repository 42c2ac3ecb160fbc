// Which zone an address is in, from a CIDR table (IPv4). Announces may also name their zone.
import { BlockList, isIPv4 } from 'node:net';
import { ConfigError } from '../shared/config.ts';

export const DEFAULT_ZONE = 'default';

export class ZoneMap {
  private readonly ranges: { list: BlockList; zone: string }[] = [];

  constructor(entries: { cidr: string; zone: string }[]) {
    for (const { cidr, zone } of entries) {
      const [network, bits] = cidr.split('/');
      const prefix = Number(bits);
      if (!network || !isIPv4(network) || !Number.isInteger(prefix) || prefix < 0 || prefix > 32 || !zone) {
        throw new ConfigError(`ZEDGE_TRACKER_ZONES: "${cidr}=${zone}" is not <ipv4>/<bits>=<zone>`);
      }
      const list = new BlockList();
      list.addSubnet(network, prefix, 'ipv4');
      this.ranges.push({ list, zone });
    }
  }

  zoneOf(ip: string): string {
    if (!isIPv4(ip)) return DEFAULT_ZONE;
    return this.ranges.find((range) => range.list.check(ip, 'ipv4'))?.zone ?? DEFAULT_ZONE;
  }
}

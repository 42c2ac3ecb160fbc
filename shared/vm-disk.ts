// VM disk images: which format a file is, read from its header, and the virtual disk size the header
// records. Only a few small ranges are read (through `DiskReader`), never the whole image, so a 20 GB
// disk in Ceph RGW costs a few ranged GETs. The formats of the seed (5.2): qcow2, vmdk (monolithicSparse
// and streamOptimized, the single-file kinds), vhd (fixed and dynamic) and vhdx, and raw (no header:
// whatever is none of the others). The virtual sizes are those `qemu-img info` reports.

import type { VmFormat as DiskFormat } from './media-types.ts';

export interface DiskInfo {
  format: DiskFormat;
  /** The size of the disk the guest sees, in bytes. */
  virtualSize: number;
  /** What kind of the format (qcow2 version, vmdk create type, vhd disk type), for people. */
  variant?: string;
}

/** Reads up to `length` bytes at `offset` (fewer at the end of the file). */
export type DiskReader = (offset: number, length: number) => Promise<Buffer>;

/** A file that is not the disk image it claims to be, or not a usable one: the message says why. */
export class DiskFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DiskFormatError';
  }
}

const SECTOR = 512;
const QCOW2_MAGIC = Buffer.from([0x51, 0x46, 0x49, 0xfb]); // "QFI\xfb"
const VMDK_SPARSE_MAGIC = Buffer.from('KDMV', 'latin1');
const VMDK_COWD_MAGIC = Buffer.from('COWD', 'latin1');
const VMDK_DESCRIPTOR = Buffer.from('# Disk DescriptorFile', 'latin1');
const VHD_COOKIE = Buffer.from('conectix', 'latin1');
const VHDX_SIGNATURE = Buffer.from('vhdxfile', 'latin1');

/**
 * The disk's format and virtual size, from its header (and, for a fixed VHD, its footer). Throws
 * DiskFormatError for a file too short for its header, a damaged header, or a kind of image that cannot
 * stand alone (a qcow2 or VHD with a backing file, a VMDK descriptor without its extents).
 */
export async function inspectDisk(read: DiskReader, size: number): Promise<DiskInfo> {
  if (size <= 0) throw new DiskFormatError('the disk image is empty');
  const head = await read(0, SECTOR);
  if (startsWith(head, QCOW2_MAGIC)) return qcow2(head, size);
  if (startsWith(head, VMDK_SPARSE_MAGIC)) return vmdkSparse(head);
  if (startsWith(head, VMDK_COWD_MAGIC))
    throw new DiskFormatError('an ESX COWD sparse VMDK is not supported; convert it to monolithicSparse');
  if (startsWith(head, VMDK_DESCRIPTOR))
    throw new DiskFormatError(
      'a VMDK descriptor file without its extents; push a single-file VMDK (monolithicSparse or streamOptimized)',
    );
  if (startsWith(head, VHD_COOKIE)) return vhd(head, 'dynamic copy of the footer');
  if (startsWith(head, VHDX_SIGNATURE)) return vhdx(read, size);
  if (size >= SECTOR) {
    const tail = await read(size - SECTOR, SECTOR);
    if (startsWith(tail, VHD_COOKIE)) return vhd(tail, 'footer');
  }
  return { format: 'raw', virtualSize: size };
}

/** Checks a file against the format its pusher declared; the error names both. */
export async function checkDisk(read: DiskReader, size: number, declared: DiskFormat): Promise<DiskInfo> {
  const info = await inspectDisk(read, size);
  if (info.format !== declared) {
    throw new DiskFormatError(
      info.format === 'raw'
        ? `declared format ${declared}, but the file has no ${declared} header (it would be a raw disk)`
        : `declared format ${declared}, but the file is a ${info.format} image`,
    );
  }
  return info;
}

function startsWith(buffer: Buffer, prefix: Buffer): boolean {
  return buffer.length >= prefix.length && buffer.subarray(0, prefix.length).equals(prefix);
}

function need(buffer: Buffer, length: number, what: string): void {
  if (buffer.length < length)
    throw new DiskFormatError(`truncated ${what}: ${buffer.length} bytes, at least ${length} needed`);
}

function safeSize(value: bigint, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new DiskFormatError(`${what} is implausibly large`);
  return Number(value);
}

// qcow2 (QEMU's docs/interop/qcow2.txt): big-endian; version 2 has a 72-byte header, version 3 says
// its header's length at byte 100.
function qcow2(head: Buffer, fileSize: number): DiskInfo {
  need(head, 72, 'qcow2 header');
  const version = head.readUInt32BE(4);
  if (version !== 2 && version !== 3) throw new DiskFormatError(`unknown qcow2 version ${version}`);
  if (version === 3) {
    need(head, 104, 'qcow2 v3 header');
    const headerLength = head.readUInt32BE(100);
    if (headerLength < 104 || headerLength > fileSize)
      throw new DiskFormatError(`damaged qcow2 header: header length ${headerLength}`);
  }
  if (head.readBigUInt64BE(8) !== 0n || head.readUInt32BE(16) !== 0)
    throw new DiskFormatError(
      'the qcow2 image has a backing file; flatten it (qemu-img convert -O qcow2) before pushing',
    );
  const clusterBits = head.readUInt32BE(20);
  if (clusterBits < 9 || clusterBits > 21)
    throw new DiskFormatError(`damaged qcow2 header: cluster bits ${clusterBits}`);
  return {
    format: 'qcow2',
    virtualSize: safeSize(head.readBigUInt64BE(24), 'qcow2 virtual size'),
    variant: `qcow2 v${version}`,
  };
}

// VMDK sparse extent header (VMware's Virtual Disk Format 5.0): little-endian, capacity in sectors.
function vmdkSparse(head: Buffer): DiskInfo {
  need(head, 79, 'VMDK sparse header');
  const version = head.readUInt32LE(4);
  if (version < 1 || version > 3) throw new DiskFormatError(`unknown VMDK sparse version ${version}`);
  const grainSectors = head.readBigUInt64LE(20);
  if (grainSectors === 0n || grainSectors > 1024n)
    throw new DiskFormatError(`damaged VMDK header: grain size ${grainSectors} sectors`);
  const capacity = head.readBigUInt64LE(12);
  const compressed = head.readUInt16LE(77) !== 0;
  return {
    format: 'vmdk',
    virtualSize: safeSize(capacity * BigInt(SECTOR), 'VMDK capacity'),
    variant: compressed ? 'streamOptimized' : 'monolithicSparse',
  };
}

const VHD_MAX_GEOMETRY = 65535 * 16 * 255;

// VHD footer (Microsoft's VHD specification): big-endian. A fixed disk has it at its end only, a dynamic
// disk copies it at its start. The virtual size is QEMU's reading of it: Virtual PC and QEMU's own
// images ('vpc ', 'qemu') by their CHS geometry, others (Hyper-V, 'qem2', ...) by the current size.
function vhd(footer: Buffer, where: string): DiskInfo {
  need(footer, SECTOR, `VHD ${where}`);
  let sum = 0;
  for (let index = 0; index < SECTOR; index++) if (index < 64 || index >= 68) sum += footer[index]!;
  if (((~sum >>> 0) & 0xffffffff) >>> 0 !== footer.readUInt32BE(64))
    throw new DiskFormatError(`damaged VHD ${where}: checksum mismatch`);
  const diskType = footer.readUInt32BE(60);
  if (diskType === 4)
    throw new DiskFormatError('a differencing VHD needs its parent; merge it into a standalone VHD first');
  if (diskType !== 2 && diskType !== 3) throw new DiskFormatError(`unknown VHD disk type ${diskType}`);
  const creator = footer.toString('latin1', 28, 32);
  const chsSectors = footer.readUInt16BE(56) * footer[58]! * footer[59]!;
  const byGeometry = (creator === 'vpc ' || creator === 'qemu') && chsSectors !== VHD_MAX_GEOMETRY;
  const virtualSize = byGeometry
    ? chsSectors * SECTOR
    : safeSize(footer.readBigUInt64BE(48), 'VHD current size');
  return { format: 'vhd', virtualSize, variant: diskType === 2 ? 'fixed' : 'dynamic' };
}

// VHDX (Microsoft's [MS-VHDX]): little-endian. The region table (at 192 KiB, a copy at 256 KiB) locates
// the metadata region, whose table locates the Virtual Disk Size item.
const VHDX_REGION_TABLES = [192 * 1024, 256 * 1024];
const VHDX_METADATA_REGION = guidBytes('8B7CA206-4790-4B9A-B8FE-575F050F886E');
const VHDX_VIRTUAL_DISK_SIZE = guidBytes('2FA54224-CD1B-4876-B211-5DBED83BF4B8');

async function vhdx(read: DiskReader, fileSize: number): Promise<DiskInfo> {
  let lastError = 'no region table';
  for (const offset of VHDX_REGION_TABLES) {
    const table = await read(offset, 64 * 1024);
    if (table.length < 16 || table.toString('latin1', 0, 4) !== 'regi') {
      lastError = `no region table at ${offset}`;
      continue;
    }
    const count = table.readUInt32LE(8);
    if (count > 2047 || 16 + count * 32 > table.length) {
      lastError = `damaged region table at ${offset}`;
      continue;
    }
    for (let entry = 0; entry < count; entry++) {
      const at = 16 + entry * 32;
      if (!table.subarray(at, at + 16).equals(VHDX_METADATA_REGION)) continue;
      const regionOffset = safeSize(table.readBigUInt64LE(at + 16), 'VHDX metadata offset');
      const regionLength = table.readUInt32LE(at + 24);
      if (regionOffset + regionLength > fileSize)
        throw new DiskFormatError('truncated VHDX: the metadata region lies past the end of the file');
      return { format: 'vhdx', virtualSize: await vhdxVirtualSize(read, regionOffset, regionLength) };
    }
    lastError = 'the region table has no metadata region';
  }
  throw new DiskFormatError(`damaged or truncated VHDX: ${lastError}`);
}

async function vhdxVirtualSize(read: DiskReader, region: number, length: number): Promise<number> {
  const table = await read(region, Math.min(length, 64 * 1024));
  need(table, 32, 'VHDX metadata table');
  if (table.toString('latin1', 0, 8) !== 'metadata')
    throw new DiskFormatError('damaged VHDX: no metadata table signature');
  const count = table.readUInt16LE(10);
  for (let entry = 0; entry < count && 32 + (entry + 1) * 32 <= table.length; entry++) {
    const at = 32 + entry * 32;
    if (!table.subarray(at, at + 16).equals(VHDX_VIRTUAL_DISK_SIZE)) continue;
    const itemOffset = table.readUInt32LE(at + 16);
    const value = await read(region + itemOffset, 8);
    need(value, 8, 'VHDX virtual disk size');
    return safeSize(value.readBigUInt64LE(0), 'VHDX virtual size');
  }
  throw new DiskFormatError('damaged VHDX: the metadata has no virtual disk size');
}

/** A GUID as stored on disk: the first three groups little-endian, the rest as written. */
function guidBytes(guid: string): Buffer {
  const hex = guid.replaceAll('-', '');
  const bytes = Buffer.from(hex, 'hex');
  bytes.subarray(0, 4).reverse();
  bytes.subarray(4, 6).reverse();
  bytes.subarray(6, 8).reverse();
  return bytes;
}

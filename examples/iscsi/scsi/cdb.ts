/**
 * CDB field decoding (SPC-4 "The command descriptor block"): big-endian integers, the CDB length by group code, and the
 * LBA/transfer-length layout of the block commands (SBC-3 command descriptions). LBAs are JS numbers: a 64-bit LBA
 * at or above 2^53 decodes as Infinity, which is past the end of any logical unit, so range checks
 * stay exact without BigInt on the I/O path.
 */

/** Operation codes handled by this target (SPC-4 Annex E, SBC-3 table 17). */
export const enum Op {
  TestUnitReady = 0x00,
  RequestSense = 0x03,
  Read6 = 0x08,
  Write6 = 0x0a,
  Inquiry = 0x12,
  ModeSelect6 = 0x15,
  Reserve6 = 0x16,
  Release6 = 0x17,
  ModeSense6 = 0x1a,
  StartStopUnit = 0x1b,
  PreventAllow = 0x1e,
  ReadCapacity10 = 0x25,
  Read10 = 0x28,
  Write10 = 0x2a,
  WriteVerify10 = 0x2e,
  Verify10 = 0x2f,
  PreFetch10 = 0x34,
  SyncCache10 = 0x35,
  WriteSame10 = 0x41,
  Unmap = 0x42,
  ModeSelect10 = 0x55,
  Reserve10 = 0x56,
  Release10 = 0x57,
  ModeSense10 = 0x5a,
  PrIn = 0x5e,
  PrOut = 0x5f,
  Read16 = 0x88,
  CompareAndWrite = 0x89,
  Write16 = 0x8a,
  OrWrite16 = 0x8b,
  WriteVerify16 = 0x8e,
  Verify16 = 0x8f,
  PreFetch16 = 0x90,
  SyncCache16 = 0x91,
  WriteSame16 = 0x93,
  ServiceActionIn16 = 0x9e,
  ReportLuns = 0xa0,
  MaintenanceIn = 0xa3,
  Read12 = 0xa8,
  Write12 = 0xaa,
  WriteVerify12 = 0xae,
  Verify12 = 0xaf,
}

/** SERVICE ACTION IN(16) service actions (SBC-3 table 17). */
export const enum SaIn16 { ReadCapacity16 = 0x10, GetLbaStatus = 0x12 }
/** MAINTENANCE IN service actions (SPC-4 table E.?): REPORT SUPPORTED OPERATION CODES. */
export const enum SaMaintIn { ReportSupportedOpcodes = 0x0c }

/**
 * CDB length from the group code, the top three bits of the operation code (SPC-4 "Operation code"):
 * group 0: 6 bytes; 1 and 2: 10; 4: 16; 5: 12; 3 (variable/reserved), 6 and 7 (vendor): 0 = unknown.
 */
export function cdbLength(opcode: number): number {
  switch (opcode >>> 5) {
    case 0: return 6;
    case 1: case 2: return 10;
    case 4: return 16;
    case 5: return 12;
    default: return 0;
  }
}

export function u16(b: Uint8Array, o: number): number { return (b[o] << 8) | b[o + 1]; }
export function u24(b: Uint8Array, o: number): number { return (b[o] << 16) | (b[o + 1] << 8) | b[o + 2]; }
export function u32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) >>> 0) + ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]);
}
/** A 64-bit big-endian unsigned number; Infinity when it is 2^53 or more (beyond any capacity). */
export function u64(b: Uint8Array, o: number): number {
  const hi = u32(b, o);
  if (hi >= 0x200000) return Infinity;
  return hi * 0x100000000 + u32(b, o + 4);
}
/** A 64-bit big-endian number as a BigInt (reservation keys, SPC-4 PERSISTENT RESERVE OUT). */
export function u64n(b: Uint8Array, o: number): bigint {
  return (BigInt(u32(b, o)) << 32n) | BigInt(u32(b, o + 4));
}

export function put16(b: Uint8Array, o: number, v: number): void { b[o] = (v >>> 8) & 0xff; b[o + 1] = v & 0xff; }
export function put24(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 16) & 0xff; b[o + 1] = (v >>> 8) & 0xff; b[o + 2] = v & 0xff;
}
export function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff; b[o + 1] = (v >>> 16) & 0xff; b[o + 2] = (v >>> 8) & 0xff; b[o + 3] = v & 0xff;
}
export function put64(b: Uint8Array, o: number, v: number): void {
  put32(b, o, Math.floor(v / 0x100000000));
  put32(b, o + 4, v >>> 0);
}
export function put64n(b: Uint8Array, o: number, v: bigint): void {
  put32(b, o, Number((v >> 32n) & 0xffffffffn));
  put32(b, o + 4, Number(v & 0xffffffffn));
}

/** The decoded address fields of a block command (SBC-3 READ and WRITE commands). */
export interface BlockCdb {
  lba: number;
  /** Blocks to transfer (READ/WRITE(6): 0 already turned into 256). */
  blocks: number;
  /** Byte 1 (PROTECT, DPO, FUA, ...), 0 for the 6-byte forms. */
  flags: number;
  /** Where the PROTECT field (bits 7..5 of byte 1) sits: -1 for the 6-byte forms. */
  flagsByte: number;
}

/**
 * Decodes LBA and TRANSFER LENGTH for the 6/10/12/16-byte read/write-style layouts:
 * 6: LBA bytes 1-3 (21 bits), length byte 4 (SBC-3 READ (6)/WRITE (6): 0 means 256);
 * 10: LBA 2-5, length 7-8; 12: LBA 2-5, length 6-9; 16: LBA 2-9, length 10-13.
 */
export function blockCdb(cdb: Uint8Array, len: number, zeroIs256 = true): BlockCdb {
  switch (len) {
    case 6: {
      const n = cdb[4];
      return { lba: u24(cdb, 1) & 0x1fffff, blocks: n === 0 && zeroIs256 ? 256 : n, flags: 0, flagsByte: -1 };
    }
    case 10: return { lba: u32(cdb, 2), blocks: u16(cdb, 7), flags: cdb[1], flagsByte: 1 };
    case 12: return { lba: u32(cdb, 2), blocks: u32(cdb, 6), flags: cdb[1], flagsByte: 1 };
    default: return { lba: u64(cdb, 2), blocks: u32(cdb, 10), flags: cdb[1], flagsByte: 1 };
  }
}

/**
 * Test helpers for the SCSI layer: CDB builders written from the SPC-4/SBC-3 layouts, a sense
 * data parser (fixed and descriptor formats, SPC-4 4.5) and a promise wrapper around execute.
 * Deliberately independent of examples/iscsi/scsi so the tests check the wire format, not the code.
 */
import * as assert from 'uvu/assert';
import { ScsiCommand, ScsiResult, ScsiStatus, ScsiTarget, TaskAttr } from '../../examples/iscsi/scsi/types';

export const NEXUS_A = 'iqn.2024-01.test:init-a,i,0x230000000001';
export const NEXUS_B = 'iqn.2024-01.test:init-b,i,0x230000000002';

export interface Cmd {
  lun?: number;
  cdb: number[] | Uint8Array;
  /** Data-Out (split into several views when `split` is given). */
  data?: Uint8Array;
  split?: number;
  expectedLength?: number;
  read?: boolean;
  nexus?: string;
  attr?: TaskAttr;
}

/** Runs one command; resolves with its result (rejects if done is called twice). */
export function run(t: ScsiTarget, c: Cmd): Promise<ScsiResult> {
  const cdb = new Uint8Array(16);
  cdb.set(c.cdb);
  const views: Uint8Array[] = [];
  if (c.data) {
    const step = c.split ?? c.data.length;
    for (let o = 0; o < c.data.length; o += step) views.push(c.data.subarray(o, Math.min(c.data.length, o + step)));
  }
  const cmd: ScsiCommand = {
    lun: c.lun ?? 0,
    cdb,
    expectedLength: c.expectedLength ?? (c.data ? c.data.length : 0),
    read: c.read ?? !c.data,
    write: !!c.data,
    dataOut: views,
    nexus: c.nexus ?? NEXUS_A,
    attr: c.attr ?? TaskAttr.Simple,
    taskTag: 1,
  };
  return new Promise((resolve, reject) => {
    let calls = 0;
    t.execute(cmd, (r) => {
      calls++;
      if (calls > 1) reject(new Error('done called twice'));
      else resolve(r);
    });
  });
}

/** Data-In as one array. */
export function data(r: ScsiResult): Buffer {
  return Buffer.concat((r.dataIn ?? []).map((v) => Buffer.from(v.buffer, v.byteOffset, v.length)));
}

export interface Sense {
  format: 'fixed' | 'descriptor';
  key: number;
  asc: number;
  ascq: number;
  info?: number;
  /** Sense-key specific field pointer (SKSV = 1). */
  field?: { cdb: boolean; byte: number; bit?: number };
}

function sks(b: Uint8Array, o: number): Sense['field'] {
  if (!(b[o] & 0x80)) return undefined;
  return { cdb: (b[o] & 0x40) !== 0, byte: (b[o + 1] << 8) | b[o + 2], bit: (b[o] & 0x08) ? b[o] & 7 : undefined };
}

/** Parses sense data per SPC-4 4.5.2 (72h) and 4.5.3 (70h). */
export function parseSense(s: Uint8Array | undefined): Sense {
  if (!s || s.length < 8) throw new Error('no sense data');
  const code = s[0] & 0x7f;
  if (code === 0x70 || code === 0x71) {
    return {
      format: 'fixed', key: s[2] & 0x0f, asc: s[12], ascq: s[13],
      info: (s[0] & 0x80) ? ((s[3] << 24) >>> 0) + (s[4] << 16) + (s[5] << 8) + s[6] : undefined,
      field: s.length >= 18 ? sks(s, 15) : undefined,
    };
  }
  if (code === 0x72 || code === 0x73) {
    const out: Sense = { format: 'descriptor', key: s[1] & 0x0f, asc: s[2], ascq: s[3] };
    let p = 8;
    const end = 8 + s[7];
    while (p + 2 <= end) {
      const type = s[p], len = s[p + 1];
      if (type === 0x00 && (s[p + 2] & 0x80)) out.info = Number(Buffer.from(s.subarray(p + 4, p + 12)).readBigUInt64BE(0));
      if (type === 0x02) out.field = sks(s, p + 4);
      p += 2 + len;
    }
    return out;
  }
  throw new Error(`unknown sense response code ${code.toString(16)}`);
}

// ---- CDB builders (SBC-3 / SPC-4 layouts) -----------------------------------------------------

function be(n: number | bigint, bytes: number): number[] {
  let v = BigInt(n);
  const out = new Array<number>(bytes);
  for (let i = bytes - 1; i >= 0; i--) { out[i] = Number(v & 0xffn); v >>= 8n; }
  return out;
}

export const cdb = {
  tur: (): number[] => [0x00, 0, 0, 0, 0, 0],
  requestSense: (alloc: number, desc = false): number[] => [0x03, desc ? 1 : 0, 0, 0, alloc, 0],
  inquiry: (alloc: number, evpd = 0, page = 0, byte1Extra = 0): number[] => [0x12, evpd | byte1Extra, page, ...be(alloc, 2), 0],
  read6: (lba: number, n: number): number[] => [0x08, ...be(lba, 3), n, 0],
  write6: (lba: number, n: number): number[] => [0x0a, ...be(lba, 3), n, 0],
  read10: (lba: number, n: number, b1 = 0): number[] => [0x28, b1, ...be(lba, 4), 0, ...be(n, 2), 0],
  write10: (lba: number, n: number, b1 = 0): number[] => [0x2a, b1, ...be(lba, 4), 0, ...be(n, 2), 0],
  read12: (lba: number, n: number, b1 = 0): number[] => [0xa8, b1, ...be(lba, 4), ...be(n, 4), 0, 0],
  write12: (lba: number, n: number, b1 = 0): number[] => [0xaa, b1, ...be(lba, 4), ...be(n, 4), 0, 0],
  read16: (lba: number | bigint, n: number, b1 = 0): number[] => [0x88, b1, ...be(lba, 8), ...be(n, 4), 0, 0],
  write16: (lba: number | bigint, n: number, b1 = 0): number[] => [0x8a, b1, ...be(lba, 8), ...be(n, 4), 0, 0],
  verify10: (lba: number, n: number, b1 = 0): number[] => [0x2f, b1, ...be(lba, 4), 0, ...be(n, 2), 0],
  verify16: (lba: number | bigint, n: number, b1 = 0): number[] => [0x8f, b1, ...be(lba, 8), ...be(n, 4), 0, 0],
  writeVerify10: (lba: number, n: number, b1 = 0): number[] => [0x2e, b1, ...be(lba, 4), 0, ...be(n, 2), 0],
  writeVerify12: (lba: number, n: number, b1 = 0): number[] => [0xae, b1, ...be(lba, 4), ...be(n, 4), 0, 0],
  writeVerify16: (lba: number | bigint, n: number, b1 = 0): number[] => [0x8e, b1, ...be(lba, 8), ...be(n, 4), 0, 0],
  readCapacity10: (): number[] => [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0],
  readCapacity16: (alloc: number): number[] => [0x9e, 0x10, ...be(0, 8), ...be(alloc, 4), 0, 0],
  getLbaStatus: (lba: number | bigint, alloc: number): number[] => [0x9e, 0x12, ...be(lba, 8), ...be(alloc, 4), 0, 0],
  syncCache10: (lba: number, n: number, b1 = 0): number[] => [0x35, b1, ...be(lba, 4), 0, ...be(n, 2), 0],
  syncCache16: (lba: number | bigint, n: number, b1 = 0): number[] => [0x91, b1, ...be(lba, 8), ...be(n, 4), 0, 0],
  preFetch10: (lba: number, n: number, b1 = 0): number[] => [0x34, b1, ...be(lba, 4), 0, ...be(n, 2), 0],
  preFetch16: (lba: number | bigint, n: number, b1 = 0): number[] => [0x90, b1, ...be(lba, 8), ...be(n, 4), 0, 0],
  writeSame10: (lba: number, n: number, b1 = 0): number[] => [0x41, b1, ...be(lba, 4), 0, ...be(n, 2), 0],
  writeSame16: (lba: number | bigint, n: number, b1 = 0): number[] => [0x93, b1, ...be(lba, 8), ...be(n, 4), 0, 0],
  unmap: (paramLen: number, b1 = 0): number[] => [0x42, b1, 0, 0, 0, 0, 0, ...be(paramLen, 2), 0],
  compareAndWrite: (lba: number | bigint, n: number, b1 = 0): number[] => [0x89, b1, ...be(lba, 8), 0, 0, 0, n, 0, 0],
  orWrite: (lba: number | bigint, n: number, b1 = 0): number[] => [0x8b, b1, ...be(lba, 8), ...be(n, 4), 0, 0],
  startStop: (b4: number, immed = 0): number[] => [0x1b, immed, 0, 0, b4, 0],
  preventAllow: (prevent: number): number[] => [0x1e, 0, 0, 0, prevent, 0],
  reportLuns: (alloc: number, select = 0): number[] => [0xa0, 0, select, 0, 0, 0, ...be(alloc, 4), 0, 0],
  rsoc: (options: number, op = 0, sa = 0, alloc = 65535, rctd = false): number[] =>
    [0xa3, 0x0c, (rctd ? 0x80 : 0) | options, op, ...be(sa, 2), ...be(alloc, 4), 0, 0],
  modeSense6: (page: number, alloc: number, pc = 0, dbd = false, sub = 0): number[] =>
    [0x1a, dbd ? 0x08 : 0, (pc << 6) | page, sub, alloc, 0],
  modeSense10: (page: number, alloc: number, pc = 0, dbd = false, llbaa = false): number[] =>
    [0x5a, (dbd ? 0x08 : 0) | (llbaa ? 0x10 : 0), (pc << 6) | page, 0, 0, 0, 0, ...be(alloc, 2), 0],
  modeSelect6: (len: number, b1 = 0x10): number[] => [0x15, b1, 0, 0, len, 0],
  modeSelect10: (len: number, b1 = 0x10): number[] => [0x55, b1, 0, 0, 0, 0, 0, ...be(len, 2), 0],
  prIn: (sa: number, alloc = 8192): number[] => [0x5e, sa, 0, 0, 0, 0, 0, ...be(alloc, 2), 0],
  prOut: (sa: number, type = 0, len = 24, scope = 0): number[] => [0x5f, sa, (scope << 4) | type, 0, 0, ...be(len, 4), 0],
  reserve6: (): number[] => [0x16, 0, 0, 0, 0, 0],
  release6: (): number[] => [0x17, 0, 0, 0, 0, 0],
};

/** PERSISTENT RESERVE OUT parameter list (SPC-4): RESERVATION KEY, SERVICE ACTION RESERVATION KEY, flags. */
export function prParams(key: bigint, sark: bigint, flags = 0): Uint8Array {
  const b = Buffer.alloc(24);
  b.writeBigUInt64BE(key, 0);
  b.writeBigUInt64BE(sark, 8);
  b[20] = flags;
  return b;
}

/** An UNMAP parameter list (SBC-3) with the given (lba, blocks) descriptors. */
export function unmapList(ranges: [number | bigint, number][]): Uint8Array {
  const b = Buffer.alloc(8 + 16 * ranges.length);
  b.writeUInt16BE(6 + 16 * ranges.length, 0);
  b.writeUInt16BE(16 * ranges.length, 2);
  ranges.forEach(([lba, n], i) => { b.writeBigUInt64BE(BigInt(lba), 8 + 16 * i); b.writeUInt32BE(n, 16 + 16 * i); });
  return b;
}

export function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; b[i] = x & 0xff; }
  return b;
}

/** Clears the power-on unit attention of `nexus` on `lun` (TEST UNIT READY until GOOD, at most 10). */
export async function clearUa(t: ScsiTarget, nexus = NEXUS_A, lun = 0): Promise<number> {
  for (let i = 0; i < 10; i++) {
    const r = await run(t, { lun, cdb: cdb.tur(), nexus });
    if (r.status === 0) return i;
  }
  throw new Error('unit attention never cleared');
}

/** Asserts CHECK CONDITION with sense key / ASC / ASCQ; the parsed sense. */
export function expectCheck(r: { status: number; sense?: Uint8Array }, key: number, asc: number, ascq: number): Sense {
  assert.is(r.status, ScsiStatus.CheckCondition, 'CHECK CONDITION');
  const s = parseSense(r.sense);
  assert.equal([s.key, s.asc, s.ascq], [key, asc, ascq]);
  return s;
}

/**
 * SPC-4 commands every logical unit answers: TEST UNIT READY, INQUIRY (standard data and the
 * VPD pages 00h, 80h, 83h, B0h, B1h, B2h), REPORT LUNS, REPORT SUPPORTED OPERATION CODES and
 * REQUEST SENSE. Mode pages are in mode.ts, reservations in pr.ts.
 */
import { Task, TargetInfo, CommandDef } from './task';
import type { LogicalUnit } from './lu';
import { u16, u32, put16, put32, put64 } from './cdb';
import { invalidCdb, buildSense, noSense, NOT_READY_STOPPED, LUN_NOT_SUPPORTED } from './sense';
import { limits } from './limits';

/** Peripheral device type 00h: direct access block device (SBC-3). */
const PDT_DISK = 0x00;
/** Peripheral qualifier 011b, device type 1Fh: no logical unit here (SPC-4 standard INQUIRY data). */
const PQ_NO_LUN = 0x7f;

/** Version descriptors (SPC-4 table of version descriptor values): SAM-5, iSCSI, SPC-4, SBC-3. */
const VERSION_DESCRIPTORS = [0x00a0, 0x0960, 0x0460, 0x04c0];

/** Standard INQUIRY data length: 96 bytes (ADDITIONAL LENGTH 91). */
const STD_INQUIRY_LEN = 96;

function ascii(b: Uint8Array, off: number, len: number, s: string): void {
  // SPC-4 4.4.1: ASCII data fields are left-aligned and padded with spaces (20h).
  for (let i = 0; i < len; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 0x20;
    b[off + i] = c >= 0x20 && c <= 0x7e ? c : 0x20;
  }
}

/** Standard INQUIRY data (SPC-4 INQUIRY, standard INQUIRY data) for `lu`, or for a LUN that does not exist (null). */
export function standardInquiry(info: TargetInfo, lu: LogicalUnit | null): Uint8Array {
  const b = new Uint8Array(STD_INQUIRY_LEN);
  b[0] = lu ? PDT_DISK : PQ_NO_LUN;
  b[1] = 0; // RMB = 0: the medium is not removable.
  b[2] = 0x06; // VERSION 06h: SPC-4.
  b[3] = 0x02; // NORMACA 0, HISUP 0, RESPONSE DATA FORMAT 2.
  b[4] = STD_INQUIRY_LEN - 5;
  b[5] = 0; // SCCS, ACC, TPGS, 3PC, PROTECT: none.
  b[7] = 0x02; // CMDQUE: command queuing (SAM-5 task management model).
  ascii(b, 8, 8, info.vendor);
  ascii(b, 16, 16, info.product);
  ascii(b, 32, 4, info.revision);
  VERSION_DESCRIPTORS.forEach((v, i) => put16(b, 58 + 2 * i, v));
  return b;
}

function vpdPage(lu: LogicalUnit, code: number, body: Uint8Array): Uint8Array {
  // SPC-4 VPD page format: PERIPHERAL QUALIFIER/DEVICE TYPE, PAGE CODE, PAGE LENGTH.
  const b = new Uint8Array(4 + body.length);
  b[0] = PDT_DISK;
  b[1] = code;
  put16(b, 2, body.length);
  b.set(body, 4);
  return b;
}

/** Supported VPD pages, ascending (SPC-4: the Supported VPD Pages page lists them in order). */
export const VPD_PAGES = [0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2];

function designator(proto: number, codeSet: number, piv: boolean, assoc: number, type: number, value: Uint8Array): Uint8Array {
  // SPC-4 Device Identification VPD page, designation descriptor: PROTOCOL IDENTIFIER | CODE SET, PIV | ASSOCIATION | TYPE,
  // reserved, DESIGNATOR LENGTH, DESIGNATOR.
  const d = new Uint8Array(4 + value.length);
  d[0] = (proto << 4) | codeSet;
  d[1] = (piv ? 0x80 : 0) | (assoc << 4) | type;
  d[3] = value.length;
  d.set(value, 4);
  return d;
}

/** A SCSI name string: UTF-8, null-terminated, padded with nulls to a multiple of four bytes. */
function nameString(s: string): Uint8Array {
  const raw = Buffer.from(s, 'utf8');
  const out = new Uint8Array((raw.length + 4) & ~3);
  out.set(raw, 0);
  return out;
}

const PROTO_ISCSI = 0x5;
const CODE_BINARY = 1, CODE_ASCII = 2, CODE_UTF8 = 3;
const ASSOC_LU = 0, ASSOC_PORT = 1, ASSOC_DEVICE = 2;

function deviceIdentification(info: TargetInfo, lu: LogicalUnit): Uint8Array {
  const t10 = Buffer.alloc(8 + lu.serial.length);
  ascii(t10, 0, 8, info.vendor);
  t10.write(lu.serial, 8, 'ascii');
  const port = new Uint8Array(4);
  put16(port, 2, 1); // RELATIVE TARGET PORT IDENTIFIER 1: the one portal group of this target.
  const group = new Uint8Array(4);
  put16(group, 2, 1); // TARGET PORT GROUP 1.
  const parts = [
    designator(0, CODE_BINARY, false, ASSOC_LU, 0x3, lu.naa), // NAA (locally assigned, NAA 3h)
    designator(0, CODE_ASCII, false, ASSOC_LU, 0x1, t10), // T10 vendor ID based
    designator(PROTO_ISCSI, CODE_BINARY, true, ASSOC_PORT, 0x4, port), // relative target port
    designator(PROTO_ISCSI, CODE_BINARY, true, ASSOC_PORT, 0x5, group), // target port group
    // iSCSI names (RFC 7143 / SPC-4 SCSI name string): the target port "<iqn>,t,0x0001" and the device.
    designator(PROTO_ISCSI, CODE_UTF8, true, ASSOC_PORT, 0x8, nameString(`${info.iqn},t,0x0001`)),
    designator(PROTO_ISCSI, CODE_UTF8, true, ASSOC_DEVICE, 0x8, nameString(info.iqn)),
  ];
  const body = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { body.set(p, o); o += p.length; }
  return body;
}

function blockLimits(lu: LogicalUnit): Uint8Array {
  // SBC-3 Block Limits VPD page (B0h), PAGE LENGTH 3Ch.
  const l = limits(lu.blockSize);
  const b = new Uint8Array(0x3c);
  const at = (off: number): number => off - 4; // offsets below are page offsets
  b[at(4)] = 0; // WSNZ = 0: WRITE SAME with NUMBER OF LOGICAL BLOCKS 0 means "to the last LBA".
  b[at(5)] = l.maxCompareAndWrite;
  put16(b, at(6), Math.max(1, 4096 / lu.blockSize)); // OPTIMAL TRANSFER LENGTH GRANULARITY: a page
  put32(b, at(8), l.maxTransferBlocks);
  put32(b, at(12), l.optimalTransferBlocks);
  put32(b, at(16), l.maxTransferBlocks); // MAXIMUM PREFETCH LENGTH
  put32(b, at(20), l.maxUnmapBlocks);
  put32(b, at(24), l.maxUnmapDescriptors);
  put32(b, at(28), lu.provision.granularity); // OPTIMAL UNMAP GRANULARITY
  put64(b, at(36), l.maxWriteSameBlocks);
  return b;
}

function blockCharacteristics(): Uint8Array {
  // SBC-3 Block Device Characteristics VPD page (B1h): MEDIUM ROTATION RATE 0001h = non-rotating.
  const b = new Uint8Array(0x3c);
  put16(b, 0, 0x0001);
  return b;
}

function provisioning(): Uint8Array {
  // SBC-3 Logical Block Provisioning VPD page (B2h): LBPU (UNMAP), LBPWS (WRITE SAME(16) UNMAP),
  // LBPWS10 (WRITE SAME(10) UNMAP), LBPRZ (unmapped blocks read zeros); ANC_SUP 0;
  // PROVISIONING TYPE 010b: thin provisioned.
  return Uint8Array.of(0, 0x80 | 0x40 | 0x20 | 0x04, 0x02, 0);
}

function vpd(info: TargetInfo, lu: LogicalUnit, code: number): Uint8Array | null {
  switch (code) {
    case 0x00: return vpdPage(lu, code, Uint8Array.from(VPD_PAGES));
    case 0x80: return vpdPage(lu, code, Buffer.from(lu.serial, 'ascii'));
    case 0x83: return vpdPage(lu, code, deviceIdentification(info, lu));
    case 0xb0: return vpdPage(lu, code, blockLimits(lu));
    case 0xb1: return vpdPage(lu, code, blockCharacteristics());
    case 0xb2: return vpdPage(lu, code, provisioning());
    default: return null;
  }
}

/** INQUIRY (SPC-4). */
export function inquiry(t: Task): void {
  const cdb = t.cdb;
  const alloc = u16(cdb, 3);
  // CmdDt (byte 1 bit 1) is obsolete in SPC-4: a device server that does not support it answers
  // INVALID FIELD IN CDB.
  if (cdb[1] & 0x02) return t.fail(invalidCdb(1, 1));
  if ((cdb[1] & 0x01) === 0) {
    // EVPD = 0 with a PAGE CODE other than 0: INVALID FIELD IN CDB (SPC-4 INQUIRY).
    if (cdb[2] !== 0) return t.fail(invalidCdb(2));
    return t.good(standardInquiry(t.target, t.lu), alloc);
  }
  const page = vpd(t.target, t.lu, cdb[2]);
  if (!page) return t.fail(invalidCdb(2));
  t.good(page, alloc);
}

/** TEST UNIT READY (SPC-4): the dispatcher already answered NOT READY for a stopped unit. */
export function testUnitReady(t: Task): void {
  t.good();
}

/** The 8-byte LUN field for a LUN number (SAM-5: peripheral device addressing below 256, flat space above). */
export function encodeLun(lun: number): Uint8Array {
  const b = new Uint8Array(8);
  if (lun < 256) b[1] = lun;
  else { b[0] = 0x40 | ((lun >>> 8) & 0x3f); b[1] = lun & 0xff; }
  return b;
}

/** REPORT LUNS (SPC-4); answered for any LUN of the target, existing or not. */
export function reportLuns(info: TargetInfo, cdb: Uint8Array): { data?: Uint8Array; alloc: number; bad?: number } {
  const alloc = u32(cdb, 6);
  // SPC-4 REPORT LUNS: an ALLOCATION LENGTH below 16 is an INVALID FIELD IN CDB.
  if (alloc < 16) return { alloc, bad: 6 };
  const select = cdb[2];
  // SELECT REPORT 00h: LUNs of logical units; 01h: well known LUNs (none here); 02h: all.
  if (select !== 0x00 && select !== 0x01 && select !== 0x02) return { alloc, bad: 2 };
  const luns = select === 0x01 ? [] : info.luns;
  const b = new Uint8Array(8 + 8 * luns.length);
  put32(b, 0, 8 * luns.length);
  luns.forEach((l, i) => b.set(encodeLun(l), 8 + 8 * i));
  return { data: b, alloc };
}

export function reportLunsCommand(t: Task): void {
  const r = reportLuns(t.target, t.cdb);
  if (r.bad !== undefined) return t.fail(invalidCdb(r.bad));
  t.good(r.data, r.alloc);
}

/** REQUEST SENSE (SPC-4): sense data of the current state as parameter data, status GOOD. */
export function requestSense(t: Task): void {
  const desc = (t.cdb[1] & 0x01) !== 0;
  const data = t.lu.stopped ? buildSense(NOT_READY_STOPPED, desc) : noSense(desc);
  t.good(data, t.cdb[4]);
}

/** REQUEST SENSE for a LUN that does not exist: LOGICAL UNIT NOT SUPPORTED as parameter data (SPC-4 REQUEST SENSE). */
export function requestSenseNoLun(cdb: Uint8Array): Uint8Array {
  const data = buildSense(LUN_NOT_SUPPORTED, (cdb[1] & 0x01) !== 0);
  return data.subarray(0, Math.min(cdb[4], data.length));
}

/** Command timeouts descriptor (SPC-4 REPORT SUPPORTED OPERATION CODES): length 0Ah, no nominal time, 30 s recommended. */
function timeouts(b: Uint8Array, off: number): void {
  put16(b, off, 0x0a);
  put32(b, off + 8, 30);
}

function hasServiceActions(defs: readonly CommandDef[], op: number): boolean {
  return defs.some((d) => d.op === op && d.sa !== undefined);
}

/** REPORT SUPPORTED OPERATION CODES (SPC-4). */
export function reportSupportedOpcodes(t: Task): void {
  const cdb = t.cdb;
  const rctd = (cdb[2] & 0x80) !== 0;
  const options = cdb[2] & 0x07;
  const op = cdb[3];
  const sa = u16(cdb, 4);
  const alloc = u32(cdb, 6);
  const defs = t.target.commands;
  if (options === 0) {
    // All commands: 8-byte command descriptors (+ 12-byte timeouts descriptor when RCTD = 1).
    const size = rctd ? 20 : 8;
    const b = new Uint8Array(4 + defs.length * size);
    put32(b, 0, defs.length * size);
    defs.forEach((d, i) => {
      const o = 4 + i * size;
      b[o] = d.op;
      if (d.sa !== undefined) put16(b, o + 2, d.sa);
      b[o + 5] = (rctd ? 0x02 : 0) | (d.sa !== undefined ? 0x01 : 0); // CTDP, SERVACTV
      put16(b, o + 6, d.usage.length);
      if (rctd) timeouts(b, o + 8);
    });
    return t.good(b, alloc);
  }
  let def: CommandDef | undefined;
  const sas = hasServiceActions(defs, op);
  switch (options) {
    case 1: // by operation code: one without service actions
      if (sas) return t.fail(invalidCdb(2));
      def = defs.find((d) => d.op === op);
      break;
    case 2: // by operation code and service action
      if (defs.some((d) => d.op === op) && !sas) return t.fail(invalidCdb(2));
      def = defs.find((d) => d.op === op && d.sa === sa);
      break;
    case 3: // by operation code, and service action if it has them
      def = defs.find((d) => d.op === op && (!sas || d.sa === sa));
      break;
    default:
      return t.fail(invalidCdb(2, 0));
  }
  // One-command parameter data: CTDP | SUPPORT (011b supported as the standard says, 001b not),
  // CDB SIZE, CDB USAGE DATA, then the timeouts descriptor when RCTD = 1.
  const n = def ? def.usage.length : 0;
  const b = new Uint8Array(4 + n + (rctd && def ? 12 : 0));
  b[1] = def ? 0x03 | (rctd ? 0x80 : 0) : 0x01;
  put16(b, 2, n);
  if (def) {
    b.set(def.usage, 4);
    if (rctd) timeouts(b, 4 + n);
  }
  t.good(b, alloc);
}

/**
 * SBC-3 block commands: READ CAPACITY (10)/(16), READ and WRITE (6)/(10)/(12)/(16), WRITE AND
 * VERIFY and VERIFY (10)/(12)/(16), SYNCHRONIZE CACHE (10)/(16), PRE-FETCH (10)/(16), START STOP
 * UNIT and PREVENT ALLOW MEDIUM REMOVAL. WRITE SAME, UNMAP and GET LBA STATUS are in
 * sbc-provision.ts; COMPARE AND WRITE and ORWRITE in sbc-atomic.ts.
 */
import { Task } from './task';
import { ScsiStatus, TaskAttr } from './types';
import { BlockCdb, blockCdb, u16, u32, u64, put32, put64 } from './cdb';
import { Asc, SenseKey, check, invalidCdb, LBA_OUT_OF_RANGE, WRITE_PROTECTED } from './sense';
import { sliceViews, firstDifference } from './dataout';
import { limits } from './limits';
import { Access } from './reservations';

// ---- helpers shared by the block commands -------------------------------------------------

/** MEDIUM ERROR, UNRECOVERED READ ERROR for a failed backend read. */
export function readError(t: Task, err: NodeJS.ErrnoException): void {
  t.fail(check(SenseKey.MediumError, Asc.UnrecoveredReadError, `read-error-${err.code ?? 'EIO'}`));
}

/** A failed backend write: out of space is SPACE ALLOCATION FAILED WRITE PROTECT (SBC-3 thin provisioning), else WRITE ERROR. */
export function writeError(t: Task, err: NodeJS.ErrnoException): void {
  if (err.code === 'ENOSPC') return t.fail(check(SenseKey.DataProtect, Asc.SpaceAllocationFailedWriteProtect, 'write-enospc'));
  t.fail(check(SenseKey.MediumError, Asc.WriteError, `write-error-${err.code ?? 'EIO'}`));
}

/**
 * The LBA range check of SBC-3 ("LBA OUT OF RANGE"): the first LBA must exist, and the range
 * must end at or before the capacity. A 64-bit LBA ≥ 2^53 decodes as Infinity and fails here,
 * so LBA + length can never wrap past 2^64.
 */
export function inRange(t: Task, lba: number, blocks: number): boolean {
  if (lba >= t.lu.numBlocks || lba + blocks > t.lu.numBlocks) { t.fail(LBA_OUT_OF_RANGE); return false; }
  return true;
}

/** PROTECT fields (RDPROTECT, WRPROTECT, VRPROTECT, ORPROTECT, byte 1 bits 7..5) must be 0: no protection information (PROTECT = 0 in INQUIRY). */
export function noProtect(t: Task, flags: number): boolean {
  if (flags >>> 5) { t.fail(invalidCdb(1, 7)); return false; }
  return true;
}

/** SWP in the Control mode page write-protects the medium: DATA PROTECT, WRITE PROTECTED (SPC-4). */
export function writable(t: Task): boolean {
  if (t.lu.mode.swp) { t.fail(WRITE_PROTECTED); return false; }
  return true;
}

/** An ORDERED task runs alone (SAM-5 task attributes); SIMPLE tasks share the logical unit. */
export function exclusive(t: Task): boolean {
  return t.cmd.attr === TaskAttr.Ordered;
}

/** Where the TRANSFER LENGTH sits, for the field pointer. */
function lengthByte(len: number): number {
  return len === 6 ? 4 : len === 10 ? 7 : len === 12 ? 6 : 10;
}

/** Completes a write: FUA, or a write-through cache (WCE = 0), makes it durable first (SBC-3 FUA). */
export function afterWrite(t: Task, fua: boolean): void {
  const lu = t.lu;
  if (!fua && lu.mode.wce) return t.good();
  lu.backend.flush((err) => (err ? writeError(t, err) : t.good()));
}

/**
 * Writes the whole blocks of Data-Out received, up to `blocks` at `lba` (when the initiator's
 * Expected Data Transfer Length is shorter than the CDB asks, only that much Data-Out exists; the
 * iSCSI layer reports the residual, RFC 7143 11.4.5.1).
 */
function writeBlocks(t: Task, lba: number, blocks: number, fua: boolean): void {
  const lu = t.lu;
  const bs = lu.blockSize;
  t.cdbOut = blocks * bs;
  const n = Math.min(blocks, Math.floor(t.dataOutLength / bs));
  if (n === 0) return t.good();
  const views = sliceViews(t.cmd.dataOut, 0, n * bs);
  t.io(exclusive(t), () => lu.backend.write(lba * bs, views, (err) => {
    if (err) return writeError(t, err);
    lu.provision.markMapped(lba, n);
    afterWrite(t, fua);
  }));
}

// ---- READ CAPACITY --------------------------------------------------------------------------

/** READ CAPACITY(10) (SBC-3): RETURNED LOGICAL BLOCK ADDRESS (FFFFFFFFh when it does not fit) and BLOCK LENGTH. */
export function readCapacity10(t: Task): void {
  const cdb = t.cdb;
  // SBC-3: PMI = 0 with a non-zero LOGICAL BLOCK ADDRESS is an INVALID FIELD IN CDB.
  if ((cdb[8] & 0x01) === 0 && u32(cdb, 2) !== 0) return t.fail(invalidCdb(2));
  const b = new Uint8Array(8);
  const last = t.lu.numBlocks - 1;
  put32(b, 0, last > 0xffffffff ? 0xffffffff : last);
  put32(b, 4, t.lu.blockSize);
  t.good(b);
}

/** READ CAPACITY(16) (SBC-3): also LBPME = 1 and LBPRZ = 1 (thin provisioned, unmapped reads zeros). */
export function readCapacity16(t: Task): void {
  const cdb = t.cdb;
  if ((cdb[14] & 0x01) === 0 && u64(cdb, 2) !== 0) return t.fail(invalidCdb(2));
  const b = new Uint8Array(32);
  put64(b, 0, t.lu.numBlocks - 1);
  put32(b, 8, t.lu.blockSize);
  // Byte 12: P_TYPE 0, PROT_EN 0; byte 13: P_I_EXPONENT 0, LOGICAL BLOCKS PER PHYSICAL BLOCK
  // EXPONENT 0; byte 14: LBPME (bit 7), LBPRZ (bit 6), LOWEST ALIGNED LBA 0.
  b[14] = 0x80 | 0x40;
  t.good(b, u32(cdb, 10));
}

// ---- READ / WRITE / VERIFY ------------------------------------------------------------------

function decode(t: Task, len: number, zeroIs256: boolean): BlockCdb | null {
  const f = blockCdb(t.cdb, len, zeroIs256);
  if (f.flagsByte >= 0 && !noProtect(t, f.flags)) return null;
  if (!inRange(t, f.lba, f.blocks)) return null;
  // SBC-3: a TRANSFER LENGTH beyond the MAXIMUM TRANSFER LENGTH of the Block Limits VPD page is an
  // INVALID FIELD IN CDB.
  if (f.blocks > limits(t.lu.blockSize).maxTransferBlocks) { t.fail(invalidCdb(lengthByte(len))); return null; }
  return f;
}

/** READ(6)/(10)/(12)/(16). DPO is a hint; FUA reads from the medium: cached writes are flushed first. */
export function read(t: Task, len: number): void {
  const f = decode(t, len, true);
  if (!f) return;
  const lu = t.lu;
  if (f.blocks === 0) return t.good();
  const bs = lu.blockSize;
  const fua = (f.flags & 0x08) !== 0;
  t.io(exclusive(t), () => {
    const go = (): void => lu.backend.read(f.lba * bs, f.blocks * bs, (err, data) => (err ? readError(t, err) : t.good(data)));
    if (fua && lu.backend.kind === 'file') lu.backend.flush((err) => (err ? readError(t, err) : go()));
    else go();
  });
}

/** WRITE(6)/(10)/(12)/(16). */
export function write(t: Task, len: number): void {
  const f = decode(t, len, true);
  if (!f || !writable(t)) return;
  writeBlocks(t, f.lba, f.blocks, (f.flags & 0x08) !== 0);
}

/**
 * WRITE AND VERIFY (10)/(12)/(16): writes, and the verification is that the blocks reached the
 * medium (written then flushed, as with FUA); BYTCHK = 1 compares the Data-Out with what was
 * just written from it, which cannot differ.
 */
export function writeAndVerify(t: Task, len: number): void {
  const f = decode(t, len, false);
  if (!f || !writable(t)) return;
  writeBlocks(t, f.lba, f.blocks, true);
}

/**
 * VERIFY (10)/(12)/(16) (SBC-3): BYTCHK 00b checks the range only (the medium is always
 * readable); 01b compares the Data-Out with the blocks; 11b compares one block of Data-Out with
 * each block; 10b is reserved. A difference is MISCOMPARE, MISCOMPARE DURING VERIFY OPERATION with
 * the offset of the first differing byte in INFORMATION.
 */
export function verify(t: Task, len: number): void {
  const byteCheck = (t.cdb[1] >>> 1) & 0x03;
  if (byteCheck === 0x02) return t.fail(invalidCdb(1, 2));
  const f = decode(t, len, false);
  if (!f) return;
  const lu = t.lu;
  const bs = lu.blockSize;
  if (byteCheck === 0) return t.good();
  t.cdbOut = byteCheck === 0x03 ? bs : f.blocks * bs;
  if (f.blocks === 0) return t.good();
  const have = Math.floor(t.dataOutLength / bs);
  const n = byteCheck === 0x03 ? (have >= 1 ? f.blocks : 0) : Math.min(f.blocks, have);
  if (n === 0) return t.good();
  t.io(exclusive(t), () => lu.backend.read(f.lba * bs, n * bs, (err, data) => {
    if (err) return readError(t, err);
    const expected = byteCheck === 0x03
      ? Array.from({ length: n }, () => sliceViews(t.cmd.dataOut, 0, bs)).flat()
      : sliceViews(t.cmd.dataOut, 0, n * bs);
    const at = firstDifference(data, expected, n * bs);
    if (at >= 0) return t.fail(check(SenseKey.Miscompare, Asc.MiscompareDuringVerify, 'miscompare', undefined, at));
    t.good();
  }));
}

// ---- SYNCHRONIZE CACHE / PRE-FETCH ----------------------------------------------------------

function lbaAndCount(cdb: Uint8Array, sixteen: boolean): { lba: number; n: number } {
  return sixteen ? { lba: u64(cdb, 2), n: u32(cdb, 10) } : { lba: u32(cdb, 2), n: u16(cdb, 7) };
}

/**
 * SYNCHRONIZE CACHE (10)/(16) (SBC-3): range checked (NUMBER OF LOGICAL BLOCKS 0 means to the
 * last LBA), then the whole cache is written to the medium (fdatasync: it cannot be narrowed to a
 * range). IMMED = 1 returns GOOD once the CDB is validated and flushes after.
 */
export function synchronizeCache(t: Task, sixteen: boolean): void {
  const { lba, n } = lbaAndCount(t.cdb, sixteen);
  if (!inRange(t, lba, n)) return;
  const lu = t.lu;
  const immed = (t.cdb[1] & 0x02) !== 0;
  t.io(false, () => {
    if (immed) {
      t.good();
      lu.backend.flush(() => undefined);
      return;
    }
    lu.backend.flush((err) => (err ? writeError(t, err) : t.good()));
  });
}

/**
 * PRE-FETCH (10)/(16) (SBC-3): CONDITION MET when the blocks are (now) in the cache: always for
 * RAM; for a file, reading them brings them into the page cache. A range larger than the
 * MAXIMUM PREFETCH LENGTH (and length 0) gets GOOD: the cache cannot hold it.
 */
export function preFetch(t: Task, sixteen: boolean): void {
  const { lba, n } = lbaAndCount(t.cdb, sixteen);
  if (!inRange(t, lba, n)) return;
  const lu = t.lu;
  if (n === 0 || n > limits(lu.blockSize).maxTransferBlocks) return t.good();
  if (lu.backend.kind === 'ram') return t.status(ScsiStatus.ConditionMet);
  t.io(false, () => lu.backend.read(lba * lu.blockSize, n * lu.blockSize, (err) => (err ? readError(t, err) : t.status(ScsiStatus.ConditionMet))));
}

// ---- START STOP UNIT / PREVENT ALLOW MEDIUM REMOVAL -----------------------------------------

/**
 * START STOP UNIT (SBC-3). POWER CONDITION 0h (START_VALID): START = 1 makes the unit ready,
 * START = 0 stops it (media access then answers NOT READY, INITIALIZING COMMAND REQUIRED; the
 * cache is flushed first unless NO_FLUSH). The medium is not removable: LOEJ only starts/stops.
 * POWER CONDITION 1h (ACTIVE) starts; 2h, 3h (IDLE, STANDBY), 7h (LU_CONTROL), Ah, Bh (FORCE_*_0)
 * keep the unit ready; other values are reserved: INVALID FIELD IN CDB.
 */
export function startStopUnit(t: Task): void {
  const cdb = t.cdb;
  const pc = cdb[4] >>> 4;
  const lu = t.lu;
  // SBC-3 (commands allowed under reservations): START STOP UNIT with START = 1 and POWER
  // CONDITION 0h is allowed; any other form conflicts like a write.
  const starts = pc === 0 && (cdb[4] & 0x01) !== 0;
  if (!starts && lu.res.conflicts(t.nexus, Access.Write)) return t.status(ScsiStatus.ReservationConflict, 'reservation-conflict');
  switch (pc) {
    case 0x0: break;
    case 0x1: lu.stopped = false; return t.good();
    case 0x2: case 0x3: case 0x7: case 0xa: case 0xb: return t.good();
    default: return t.fail(invalidCdb(4, 7));
  }
  if (cdb[4] & 0x01) { lu.stopped = false; return t.good(); }
  const noFlush = (cdb[4] & 0x04) !== 0;
  lu.stopped = true;
  if (noFlush) return t.good();
  lu.backend.flush((err) => (err ? writeError(t, err) : t.good()));
}

/** PREVENT ALLOW MEDIUM REMOVAL (SBC-3): PREVENT 00b/01b per I_T nexus; 10b and 11b are obsolete: INVALID FIELD IN CDB. */
export function preventAllow(t: Task): void {
  const prevent = t.cdb[4] & 0x03;
  if (prevent > 1) return t.fail(invalidCdb(4, 1));
  // SPC-4/SBC-3 (commands allowed under reservations): PREVENT = 0 is allowed, a prevent conflicts.
  if (prevent && t.lu.res.conflicts(t.nexus, Access.Write)) return t.status(ScsiStatus.ReservationConflict, 'reservation-conflict');
  if (prevent) t.lu.prevent.add(t.nexus); else t.lu.prevent.delete(t.nexus);
  t.good();
}

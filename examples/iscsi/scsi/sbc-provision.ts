/**
 * Logical block provisioning commands (SBC-3 "Logical block provisioning"): WRITE SAME (10)/(16)
 * with the UNMAP bit, UNMAP and GET LBA STATUS. Unmapped blocks read as zeros (LBPRZ = 1).
 */
import { Task } from './task';
import { u16, u32, u64, put32, put64 } from './cdb';
import { invalidCdb, invalidParam, PARAM_LIST_LENGTH } from './sense';
import { contiguous } from './dataout';
import { limits } from './limits';
import { inRange, noProtect, writable, writeError, afterWrite, exclusive } from './sbc';

/**
 * WRITE SAME (10)/(16) (SBC-3). One block of Data-Out is written to every LBA of the range
 * (NUMBER OF LOGICAL BLOCKS 0 with WSNZ = 0: from LBA to the last LBA). UNMAP = 1: the device
 * server should deallocate each LBA of the range (SBC-3 WRITE SAME, UNMAP bit) whatever the
 * block holds; deallocated LBAs then read as zeros (LBPRZ = 1) — what libiscsi's
 * WriteSame10.UnmapUntilEnd checks with a block of FFh.
 * NDOB = 1 (16 only): no Data-Out, the block is zeros. ANCHOR is not supported (ANC_SUP = 0).
 * A range beyond the MAXIMUM WRITE SAME LENGTH is an INVALID FIELD IN CDB.
 */
export function writeSame(t: Task, sixteen: boolean): void {
  const cdb = t.cdb;
  const lu = t.lu;
  const bs = lu.blockSize;
  const flags = cdb[1];
  const unmap = (flags & 0x08) !== 0;
  const ndob = sixteen && (flags & 0x01) !== 0;
  if (!noProtect(t, flags)) return;
  // ANCHOR (bit 4): ANC_SUP = 0 in the Logical Block Provisioning VPD page, and ANCHOR without
  // UNMAP is invalid in any case: INVALID FIELD IN CDB.
  if (flags & 0x10) return t.fail(invalidCdb(1, 4));
  // WRITE SAME(10) bits 2..1 are the obsolete PBDATA/LBDATA: not supported.
  if (!sixteen && (flags & 0x06)) return t.fail(invalidCdb(1, (flags & 0x04) ? 2 : 1));
  const lba = sixteen ? u64(cdb, 2) : u32(cdb, 2);
  const count = sixteen ? u32(cdb, 10) : u16(cdb, 7);
  // Range first: an LBA past the end is LBA OUT OF RANGE even with NUMBER OF LOGICAL BLOCKS 0.
  if (lba >= lu.numBlocks) return void inRange(t, lba, 0);
  const n = count === 0 ? lu.numBlocks - lba : count;
  if (!inRange(t, lba, n)) return;
  if (n > limits(bs).maxWriteSameBlocks) return t.fail(invalidCdb(sixteen ? 10 : 7));
  if (!writable(t)) return;
  t.cdbOut = ndob ? 0 : bs;
  let pattern: Uint8Array;
  if (ndob) {
    pattern = new Uint8Array(bs);
  } else {
    // Exactly one logical block of Data-Out: a shorter or longer transfer is an error in the
    // CDB's request (the iSCSI Expected Data Transfer Length disagrees with it).
    if (t.cmd.expectedLength !== bs || t.dataOutLength < bs) return t.fail(invalidCdb(sixteen ? 10 : 7));
    pattern = contiguous(t.cmd.dataOut, 0, bs);
  }
  t.io(exclusive(t), () => {
    if (unmap) {
      lu.backend.discard(lba * bs, n * bs, (err) => {
        if (err) return writeError(t, err);
        lu.provision.markDeallocated(lba, n);
        t.good();
      });
      return;
    }
    lu.backend.fill(lba * bs, n * bs, pattern, (err) => {
      if (err) return writeError(t, err);
      lu.provision.markMapped(lba, n);
      afterWrite(t, false);
    });
  });
}

/**
 * UNMAP (SBC-3). The parameter list: UNMAP DATA LENGTH, UNMAP BLOCK DESCRIPTOR DATA LENGTH, then
 * 16-byte descriptors (LBA, NUMBER OF LOGICAL BLOCKS). Everything is checked before anything is
 * unmapped: PARAMETER LIST LENGTH 1..7 is a PARAMETER LIST LENGTH ERROR; more descriptors than the
 * MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT or more blocks than the MAXIMUM UNMAP LBA COUNT an INVALID
 * FIELD IN PARAMETER LIST; a range past the end LBA OUT OF RANGE. Descriptors of 0 blocks do nothing.
 */
export function unmapCommand(t: Task): void {
  const cdb = t.cdb;
  const lu = t.lu;
  const bs = lu.blockSize;
  const len = u16(cdb, 7);
  t.cdbOut = len;
  if (cdb[1] & 0x01) return t.fail(invalidCdb(1, 0)); // ANCHOR: ANC_SUP = 0
  if (len === 0) return t.good();
  if (!writable(t)) return;
  const have = Math.min(len, t.dataOutLength);
  if (len < 8 || have < 8) return t.fail(PARAM_LIST_LENGTH);
  const p = contiguous(t.cmd.dataOut, 0, have);
  const descLen = u16(p, 2);
  const count = Math.floor(Math.min(descLen, have - 8) / 16);
  const l = limits(bs);
  if (count > l.maxUnmapDescriptors) return t.fail(invalidParam(2));
  const ranges: { lba: number; n: number }[] = [];
  let total = 0;
  for (let i = 0; i < count; i++) {
    const o = 8 + 16 * i;
    const lba = u64(p, o);
    const n = u32(p, o + 8);
    if (n === 0) continue;
    if (!inRange(t, lba, n)) return;
    total += n;
    if (total > l.maxUnmapBlocks) return t.fail(invalidParam(o + 8));
    ranges.push({ lba, n });
  }
  if (ranges.length === 0) return t.good();
  t.io(exclusive(t), () => {
    // One descriptor after the other; bounded by the descriptor count.
    const step = (i: number): void => {
      if (i >= ranges.length) return t.good();
      const r = ranges[i];
      lu.backend.discard(r.lba * bs, r.n * bs, (err) => {
        if (err) return writeError(t, err);
        lu.provision.markDeallocated(r.lba, r.n);
        step(i + 1);
      });
    };
    step(0);
  });
}

/** At most this many LBA status descriptors per GET LBA STATUS. */
const MAX_LBA_STATUS_DESCRIPTORS = 64;

/**
 * GET LBA STATUS (SBC-3): LBA status descriptors from STARTING LOGICAL BLOCK ADDRESS, each a run
 * of blocks in one provisioning state (0h mapped, 1h deallocated), as many as the allocation
 * length holds (at least one). PARAMETER DATA LENGTH counts the bytes after itself.
 */
export function getLbaStatus(t: Task): void {
  const cdb = t.cdb;
  const lu = t.lu;
  const lba = u64(cdb, 2);
  const alloc = u32(cdb, 10);
  if (!inRange(t, lba, 0)) return;
  const want = Math.max(1, Math.min(MAX_LBA_STATUS_DESCRIPTORS, Math.floor((alloc - 8) / 16)));
  const descs: { lba: number; n: number; mapped: boolean }[] = [];
  let pos = lba;
  while (descs.length < want && pos < lu.numBlocks) {
    const r = lu.provision.run(pos, 0xffffffff);
    descs.push({ lba: pos, n: r.blocks, mapped: r.mapped });
    pos += r.blocks;
  }
  const b = new Uint8Array(8 + 16 * descs.length);
  put32(b, 0, 4 + 16 * descs.length);
  descs.forEach((d, i) => {
    const o = 8 + 16 * i;
    put64(b, o, d.lba);
    put32(b, o + 8, d.n);
    b[o + 12] = d.mapped ? 0x0 : 0x1; // PROVISIONING STATUS
  });
  t.good(b, alloc);
}

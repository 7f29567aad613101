/**
 * Read-modify-write commands, each run alone on its logical unit (the gate holds other I/O back
 * so nothing changes the blocks between the read and the write): COMPARE AND WRITE and ORWRITE
 * (SBC-3).
 */
import { Task } from './task';
import { u32, u64 } from './cdb';
import { Asc, SenseKey, check, invalidCdb } from './sense';
import { sliceViews, firstDifference, copyOut } from './dataout';
import { limits } from './limits';
import { inRange, noProtect, writable, readError, writeError, afterWrite } from './sbc';

/**
 * COMPARE AND WRITE (SBC-3): the Data-Out holds NUMBER OF LOGICAL BLOCKS of verify data, then as
 * many of write data. The blocks are read and compared with the verify data; if they differ,
 * nothing is written and the command ends with MISCOMPARE, MISCOMPARE DURING VERIFY OPERATION and
 * the offset of the first differing byte in INFORMATION; else the write data is written.
 * NUMBER OF LOGICAL BLOCKS above the MAXIMUM COMPARE AND WRITE LENGTH, or a Data-Out length other
 * than twice the blocks, is an INVALID FIELD IN CDB; 0 blocks do nothing.
 */
export function compareAndWrite(t: Task): void {
  const cdb = t.cdb;
  const lu = t.lu;
  const bs = lu.blockSize;
  if (!noProtect(t, cdb[1])) return;
  const lba = u64(cdb, 2);
  const n = cdb[13];
  t.cdbOut = 2 * n * bs;
  if (!inRange(t, lba, n)) return;
  if (n > limits(bs).maxCompareAndWrite) return t.fail(invalidCdb(13));
  if (t.cmd.expectedLength !== 2 * n * bs || t.dataOutLength < 2 * n * bs) return t.fail(invalidCdb(13));
  if (!writable(t)) return;
  if (n === 0) return t.good();
  const fua = (cdb[1] & 0x08) !== 0;
  t.io(true, () => lu.backend.read(lba * bs, n * bs, (err, current) => {
    if (err) return readError(t, err);
    const at = firstDifference(current, sliceViews(t.cmd.dataOut, 0, n * bs), n * bs);
    if (at >= 0) return t.fail(check(SenseKey.Miscompare, Asc.MiscompareDuringVerify, 'miscompare', undefined, at));
    lu.backend.write(lba * bs, sliceViews(t.cmd.dataOut, n * bs, n * bs), (werr) => {
      if (werr) return writeError(t, werr);
      lu.provision.markMapped(lba, n);
      afterWrite(t, fua);
    });
  }));
}

/**
 * ORWRITE(16) (SBC-3): each block becomes its current contents OR the Data-Out. BMOP (byte 14
 * bits 7..5) other than 000b asks for the bitmap generation operations, not supported here.
 */
export function orWrite(t: Task): void {
  const cdb = t.cdb;
  const lu = t.lu;
  const bs = lu.blockSize;
  if (!noProtect(t, cdb[1])) return;
  if (cdb[14] >>> 5) return t.fail(invalidCdb(14, 7));
  const lba = u64(cdb, 2);
  const blocks = u32(cdb, 10);
  if (!inRange(t, lba, blocks)) return;
  if (blocks > limits(bs).maxTransferBlocks) return t.fail(invalidCdb(10));
  if (!writable(t)) return;
  t.cdbOut = blocks * bs;
  const n = Math.min(blocks, Math.floor(t.dataOutLength / bs));
  if (n === 0) return t.good();
  const fua = (cdb[1] & 0x08) !== 0;
  t.io(true, () => lu.backend.read(lba * bs, n * bs, (err, current) => {
    if (err) return readError(t, err);
    // The result needs its own buffer: `current` may be RAM backend memory (or its zero page).
    const out = new Uint8Array(n * bs);
    copyOut(t.cmd.dataOut, 0, n * bs, out, 0);
    let o = 0;
    for (const v of current) {
      for (let i = 0; i < v.length; i++) out[o + i] |= v[i];
      o += v.length;
    }
    lu.backend.write(lba * bs, [out], (werr) => {
      if (werr) return writeError(t, werr);
      lu.provision.markMapped(lba, n);
      afterWrite(t, fua);
    });
  }));
}

/**
 * MODE SENSE(6)/(10) and MODE SELECT(6)/(10) (SPC-4), over the pages of modepages.ts, with the
 * block descriptor of SBC-3 ("Mode parameter block descriptors") and the device-specific
 * parameter of SBC-3 (WP when the Control page's SWP is set, DPOFUA).
 */
import { Task } from './task';
import { u16, u24, u32, u64, put16, put24, put32, put64 } from './cdb';
import { Asc, SenseKey, check, invalidCdb, invalidParam, PARAM_LIST_LENGTH } from './sense';
import { contiguous } from './dataout';
import { Page, PAGES, PageControl, isPage, pageSize, renderPage, selectPage } from './modepages';

/** SBC-3 device-specific parameter: WP (bit 7), DPOFUA (bit 4: DPO and FUA are supported). */
function deviceSpecific(t: Task): number {
  return (t.lu.mode.swp ? 0x80 : 0) | 0x10;
}

/** MODE SENSE(6) (`ten` false) and MODE SENSE(10). */
export function modeSense(t: Task, ten: boolean): void {
  const cdb = t.cdb;
  const dbd = (cdb[1] & 0x08) !== 0;
  const llbaa = ten && (cdb[1] & 0x10) !== 0;
  const pc = cdb[2] >>> 6 as PageControl;
  const code = cdb[2] & 0x3f;
  const sub = cdb[3];
  const alloc = ten ? u16(cdb, 7) : cdb[4];
  // SPC-4 MODE SENSE: saved values requested from a device that cannot save parameters:
  // ILLEGAL REQUEST, SAVING PARAMETERS NOT SUPPORTED.
  if (pc === PageControl.Saved) {
    return t.fail(check(SenseKey.IllegalRequest, Asc.SavingParametersNotSupported, 'saving-not-supported', { cdb: true, byte: 2, bit: 7 }));
  }
  // SUBPAGE CODE 00h: the page; FFh: the page and all its subpages (there are none here).
  if (sub !== 0x00 && sub !== 0xff) return t.fail(invalidCdb(3));
  let pages: readonly Page[];
  if (code === Page.All) pages = PAGES;
  else if (isPage(code)) pages = [code];
  else return t.fail(invalidCdb(2, 5));
  const rendered = pages.map((p) => renderPage(p, pc, t.lu.mode));
  const bdLen = dbd ? 0 : llbaa ? 16 : 8;
  const hdr = ten ? 8 : 4;
  const total = hdr + bdLen + rendered.reduce((n, p) => n + p.length, 0);
  const b = new Uint8Array(total);
  // Mode parameter header (SPC-4): MODE DATA LENGTH counts the bytes after itself, whatever the
  // allocation length; MEDIUM TYPE 00h; DEVICE-SPECIFIC PARAMETER; BLOCK DESCRIPTOR LENGTH.
  if (ten) {
    put16(b, 0, total - 2);
    b[3] = deviceSpecific(t);
    b[4] = llbaa && !dbd ? 0x01 : 0; // LONGLBA
    put16(b, 6, bdLen);
  } else {
    b[0] = total - 1;
    b[2] = deviceSpecific(t);
    b[3] = bdLen;
  }
  // Block descriptor (SBC-3): NUMBER OF LOGICAL BLOCKS (FFFFFFFFh when it does not fit the short
  // form) and LOGICAL BLOCK LENGTH; nothing in it is changeable.
  if (bdLen > 0 && pc !== PageControl.Changeable) {
    const n = t.lu.numBlocks;
    if (bdLen === 16) { put64(b, hdr, n); put32(b, hdr + 12, t.lu.blockSize); }
    else { put32(b, hdr, n > 0xffffffff ? 0xffffffff : n); put24(b, hdr + 5, t.lu.blockSize); }
  }
  let o = hdr + bdLen;
  for (const p of rendered) { b.set(p, o); o += p.length; }
  t.good(b, alloc);
}

/** MODE SELECT(6) (`ten` false) and MODE SELECT(10). */
export function modeSelect(t: Task, ten: boolean): void {
  const cdb = t.cdb;
  const len = ten ? u16(cdb, 7) : cdb[4];
  t.cdbOut = len;
  // SPC-4 MODE SELECT: SP = 1 on a logical unit that cannot save pages: INVALID FIELD IN CDB.
  // PF = 0 is accepted: the pages are read in the one format this device knows.
  if (cdb[1] & 0x01) return t.fail(invalidCdb(1, 0));
  // A PARAMETER LIST LENGTH of zero transfers nothing and is not an error.
  if (len === 0) return t.good();
  const got = Math.min(len, t.dataOutLength);
  const hdr = ten ? 8 : 4;
  if (got < hdr) return t.fail(PARAM_LIST_LENGTH);
  const p = contiguous(t.cmd.dataOut, 0, got);
  const lu = t.lu;
  const mediumType = ten ? 2 : 1;
  if (p[mediumType] !== 0) return t.fail(invalidParam(mediumType));
  const bdLen = ten ? u16(p, 6) : p[3];
  const longLba = ten && (p[4] & 0x01) !== 0;
  if (bdLen !== 0) {
    if (bdLen !== (longLba ? 16 : 8)) return t.fail(invalidParam(ten ? 6 : 3));
    if (got < hdr + bdLen) return t.fail(PARAM_LIST_LENGTH);
    // SBC-3: NUMBER OF LOGICAL BLOCKS 0 or the current capacity keeps it (no format here);
    // LOGICAL BLOCK LENGTH must be the current one.
    const blocks = longLba ? u64(p, hdr) : u32(p, hdr);
    const shortMax = lu.numBlocks > 0xffffffff ? 0xffffffff : lu.numBlocks;
    if (blocks !== 0 && blocks !== (longLba ? lu.numBlocks : shortMax)) return t.fail(invalidParam(hdr));
    const blen = longLba ? u32(p, hdr + 12) : u24(p, hdr + 5);
    if (blen !== lu.blockSize) return t.fail(invalidParam(hdr + (longLba ? 12 : 5)));
  }
  const next = { ...lu.mode };
  let off = hdr + bdLen;
  // Bounded by the list length: every page advances `off` by at least its 2-byte header.
  while (off < got) {
    if (got - off < 2) return t.fail(PARAM_LIST_LENGTH);
    if (p[off] & 0x40) return t.fail(invalidParam(off, 6)); // SPF: no subpages here
    const code = p[off] & 0x3f;
    if (!isPage(code)) return t.fail(invalidParam(off, 5));
    const size = pageSize(code);
    if (p[off + 1] !== size - 2) return t.fail(invalidParam(off + 1));
    if (got - off < size) return t.fail(PARAM_LIST_LENGTH);
    const bad = selectPage(code, p.subarray(off, off + size), lu.mode, next);
    if (bad >= 0) return t.fail(invalidParam(off + bad));
    off += size;
  }
  const cur = lu.mode;
  if (next.wce === cur.wce && next.dSense === cur.dSense && next.swp === cur.swp) return t.good();
  lu.mode = next;
  // SPC-4 (Mode parameters): parameters shared by all I_T nexuses changed: MODE PARAMETERS
  // CHANGED for every other I_T nexus.
  lu.ua.addAll(Asc.ModeParametersChanged, t.nexus);
  // Write-back to write-through: what the cache holds goes to the medium first.
  if (cur.wce && !next.wce) {
    lu.backend.flush((err) => (err ? t.fail(check(SenseKey.MediumError, Asc.WriteError, 'flush-error')) : t.good()));
    return;
  }
  t.good();
}

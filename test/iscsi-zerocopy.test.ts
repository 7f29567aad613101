/**
 * Data-Out without needless copies (issue item 5): a SCSI Command's immediate data and Data-Out
 * payloads that arrive spread over many input chunks (TCP segments, each a UMEM frame) reach the
 * SCSI layer as views of those chunks, pinned through `hold` (hold.ts budget) until the command is
 * done, aborted, discarded or the connection closes; with a refused or absent hold the bytes are
 * copied and still right. Every chunk is scribbled over when it is freed (a frame going back to the
 * pool is reused), so a view kept past its release would show up as corrupt data.
 */
import { test } from 'uvu';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as assert from 'uvu/assert';
import * as fc from 'fast-check';
import { Rig, makePortal, senseOf, IQN } from './lib/iscsi-rig';
import { FakeScsi, TPdu, bhs, encode, lunField, p32, pattern, read10, u32, write10 } from './lib/iscsi-wire';
import { ConnHolds, HoldBudget } from '../examples/iscsi/hold';
import { PduReader, Pdu, Hold } from '../examples/iscsi/pdu';
import { createScsiTarget } from '../examples/iscsi/scsi/target';
import { Portal, SessionTable } from '../examples/iscsi/session';
import { ScsiCommand, ScsiResult, ScsiTarget, TargetSpec } from '../examples/iscsi/scsi/types';

const OP = { ScsiRsp: 0x21, TmfRsp: 0x22, DataIn: 0x25, R2t: 0x31, Reject: 0x3f };
const SCRIBBLE = 0xee;

/** Feeds bytes to a connection in chunks, each in its own ArrayBuffer, the way the service does. */
class Feeder {
  readonly buffers = new Set<ArrayBufferLike>();
  chunks = 0;
  freed = 0;
  /** `holds` null: input without hold; 'refuse': a hold that always answers null. */
  constructor(private readonly rig: Rig, private readonly holds: ConnHolds | null | 'refuse') {}

  /** Cuts `stream` into chunks of the sizes in `sizes` (cycled). */
  feed(stream: Uint8Array, sizes: readonly number[] = [stream.length]): void {
    let pos = 0;
    for (let i = 0; pos < stream.length; i++) {
      const n = Math.min(Math.max(1, sizes[i % sizes.length]!), stream.length - pos);
      this.one(Uint8Array.from(stream.subarray(pos, pos + n)));
      pos += n;
    }
  }

  private one(chunk: Uint8Array): void {
    this.buffers.add(chunk.buffer);
    this.chunks++;
    const free = () => { this.freed++; chunk.fill(SCRIBBLE); };
    if (this.holds === null) { this.rig.raw(chunk); free(); return; }
    if (this.holds === 'refuse') { this.rig.raw(chunk, () => null); free(); return; }
    const c = this.holds.chunk(chunk.length, free);
    try { this.rig.raw(chunk, c.hold); } finally { c.end(); }
  }

  /** Every part is a view of one of the fed chunks (no copy on the way). */
  allViews(parts: readonly Uint8Array[]): boolean { return parts.every((p) => this.buffers.has(p.buffer)); }
  noneViews(parts: readonly Uint8Array[]): boolean { return parts.every((p) => !this.buffers.has(p.buffer)); }
}

function scsiCmd(rig: Rig, o: { itt: number; lba: number; blocks: number; E: number; final: boolean; imm?: Uint8Array; read?: boolean }): Uint8Array {
  const h = bhs(0x01, (o.final ? 0x80 : 0) | (o.read ? 0x40 : 0x20) | 1, { itt: o.itt, cmdSN: rig.cmdSN++, lun: lunField(0) });
  p32(h, 20, o.E);
  h.set(o.read ? read10(o.lba, o.blocks) : write10(o.lba, o.blocks), 32);
  return encode(h, o.imm, rig.wire);
}

function dataOutPdu(rig: Rig, itt: number, ttt: number, dataSN: number, off: number, data: Uint8Array, final: boolean): Uint8Array {
  const h = bhs(0x05, final ? 0x80 : 0, { itt, ttt, lun: lunField(0) });
  p32(h, 36, dataSN);
  p32(h, 40, off);
  return encode(h, data, rig.wire);
}

/** Data-Out PDUs of `seg` bytes carrying `data` from `off`, DataSN from 0, F on the last (RFC 7143 11.7). */
function dataOutTrain(rig: Rig, itt: number, ttt: number, off: number, data: Uint8Array, seg: number): Uint8Array {
  const out: Uint8Array[] = [];
  for (let o = 0, sn = 0; o < data.length; o += seg, sn++) {
    out.push(dataOutPdu(rig, itt, ttt, sn, off + o, data.subarray(o, o + seg), o + seg >= data.length));
  }
  return Uint8Array.from(Buffer.concat(out));
}

function session(keys: Array<[string, string]>) {
  const { portal, scsi } = makePortal();
  const rig = new Rig(portal);
  const r = rig.login(keys);
  assert.is(r.status, 0, 'login');
  return { rig, portal, scsi: scsi.get(IQN)! };
}

const UNSOLICITED: Array<[string, string]> = [['InitialR2T', 'No'], ['ImmediateData', 'Yes'], ['FirstBurstLength', '262144'], ['MaxBurstLength', '262144']];
const SOLICITED: Array<[string, string]> = [['InitialR2T', 'Yes'], ['ImmediateData', 'No'], ['MaxBurstLength', '262144'], ['MaxOutstandingR2T', '1']];
const DIGESTS = (hd: boolean, dd: boolean): Array<[string, string]> => [['HeaderDigest', hd ? 'CRC32C' : 'None'], ['DataDigest', dd ? 'CRC32C' : 'None']];

function statusOf(ps: TPdu[], itt: number): number {
  const r = ps.filter((p) => p.itt === itt && (p.op === OP.ScsiRsp || (p.op === OP.DataIn && (p.flags & 1))));
  assert.is(r.length, 1, `one status for ITT ${itt}`);
  return r[0]!.bhs[3]!;
}

// ---- the reader alone -----------------------------------------------------------------------------

test('reader: Data-Out / SCSI Command data split at arbitrary points comes as pinned views of each chunk, bytes right, every pin released (fast-check)', () => {
  fc.assert(fc.property(
    fc.constantFrom(0x01, 0x05), fc.integer({ min: 1, max: 9000 }), fc.array(fc.integer({ min: 1, max: 1600 }), { minLength: 1, maxLength: 12 }),
    fc.boolean(), fc.boolean(), fc.boolean(),
    (op, len, sizes, hd, dd, keep) => {
      const data = pattern(len, len);
      const stream = encode(bhs(op, 0x80, { itt: 9 }), data, { hd, dd });
      const buffers = new Set<ArrayBufferLike>();
      let pins = 0, unpins = 0;
      const got: Array<{ parts: readonly Uint8Array[]; whole: Uint8Array; release: () => void }> = [];
      const r = new PduReader((p: Pdu) => {
        assert.is(p.problem, undefined);
        assert.is(p.dataLength, len);
        if (!keep) return; // not kept: the reader drops its pins when the callback returns
        const k = p.retain();
        got.push({ parts: k.parts, whole: Uint8Array.from(Buffer.concat(k.parts)), release: k.release });
      }, () => assert.unreachable('fatal'));
      r.headerDigest = hd; r.dataDigest = dd; r.maxData = 1 << 20;
      const hold: Hold = () => { pins++; let once = false; return () => { if (!once) { once = true; unpins++; } }; };
      let pos = 0;
      for (let i = 0; pos < stream.length; i++) {
        const n = Math.min(sizes[i % sizes.length]!, stream.length - pos);
        const c = Uint8Array.from(stream.subarray(pos, pos + n));
        buffers.add(c.buffer);
        r.input(c, hold);
        pos += n;
      }
      assert.not.ok(r.midPdu);
      if (!keep) { assert.is(unpins, pins, 'pins dropped when not kept'); return; }
      assert.is(got.length, 1);
      const k = got[0]!;
      assert.equal(k.whole, data);
      assert.ok(k.parts.every((v) => buffers.has(v.buffer)), 'every part a view of an input chunk');
      assert.is(r.stats.copiedBytes, 0);
      assert.ok(pins >= 1 && pins <= k.parts.length);
      assert.is(unpins, 0, 'held until released');
      k.release();
      k.release(); // idempotent
      assert.is(unpins, pins);
    }), { numRuns: 400 });
});

test('reader: padding and data digest split across chunks (one byte per chunk at the end) are still checked', () => {
  for (const len of [1, 2, 3, 4, 5, 1021]) {
    const data = pattern(len, 3);
    const s = encode(bhs(0x05, 0x80, { itt: 1 }), data, { dd: true });
    const kept: Uint8Array[] = [];
    const problems: Array<string | undefined> = [];
    const r = new PduReader((p) => { problems.push(p.problem); if (!p.problem) { const k = p.retain(); kept.push(Uint8Array.from(Buffer.concat(k.parts))); k.release(); } }, () => { /* none */ });
    r.dataDigest = true;
    let pins = 0, unpins = 0;
    const hold: Hold = () => { pins++; return () => { unpins++; }; };
    const cut = 48 + Math.max(0, len - 2);
    r.input(Uint8Array.from(s.subarray(0, cut)), hold);
    for (let i = cut; i < s.length; i++) r.input(Uint8Array.of(s[i]!), hold);
    assert.equal(problems, [undefined], `len ${len}`);
    assert.equal(kept, [data]);
    assert.is(unpins, pins);
    // The same with one digest bit flipped: discarded (RFC 7143 7.8), pins dropped.
    const bad = Uint8Array.from(s);
    bad[bad.length - 1] ^= 0x01;
    r.input(Uint8Array.from(bad.subarray(0, cut)), hold);
    for (let i = cut; i < bad.length; i++) r.input(Uint8Array.of(bad[i]!), hold);
    assert.equal(problems, [undefined, 'data-digest']);
    assert.is(unpins, pins);
  }
});

test('reader: a refused hold copies the rest of the segment; pieces held before stay views, in order', () => {
  const data = pattern(5000, 4);
  const s = encode(bhs(0x05, 0x80, { itt: 1 }), data);
  let allowed = 2;
  let pins = 0, unpins = 0;
  const hold: Hold = () => { if (allowed === 0) return null; allowed--; pins++; return () => { unpins++; }; };
  let parts: readonly Uint8Array[] = [];
  let release = () => { /* set below */ };
  const r = new PduReader((p) => { const k = p.retain(); parts = k.parts; release = k.release; }, () => { /* none */ });
  const chunks: Uint8Array[] = [];
  for (let o = 0; o < s.length; o += 1000) chunks.push(Uint8Array.from(s.subarray(o, o + 1000)));
  for (const c of chunks) r.input(c, hold);
  for (const c of chunks) c.fill(SCRIBBLE);
  // Chunk 0: header + 952 data bytes (held), chunk 1 (held), then refused: one copy of the rest.
  assert.is(pins, 2);
  assert.is(parts.length, 3);
  assert.ok(parts[0]!.buffer === chunks[0]!.buffer && parts[1]!.buffer === chunks[1]!.buffer);
  assert.ok(!chunks.some((c) => c.buffer === parts[2]!.buffer));
  assert.is(r.stats.refusedHolds, 1);
  assert.is(r.stats.copiedBytes, 5000 - 952 - 1000);
  assert.equal(Uint8Array.from(Buffer.concat(parts.slice(2))), data.subarray(1952));
  release();
  assert.is(unpins, 2);
});

test('reader: a connection that stops mid-segment drops the pins of the partial PDU', () => {
  const s = encode(bhs(0x05, 0x80, { itt: 1 }), pattern(4000, 1));
  let pins = 0, unpins = 0;
  const hold: Hold = () => { pins++; return () => { unpins++; }; };
  const r = new PduReader(() => assert.unreachable('no PDU is complete'), () => { /* none */ });
  r.input(Uint8Array.from(s.subarray(0, 1000)), hold);
  r.input(Uint8Array.from(s.subarray(1000, 2000)), hold);
  assert.is(pins, 2);
  assert.ok(r.midPdu);
  r.stop();
  assert.is(unpins, 2);
});

// ---- through a session: writes reach ScsiTarget.execute as views ---------------------------------

const arbWrite = fc.record({
  blocks: fc.integer({ min: 1, max: 24 }),
  lba: fc.integer({ min: 0, max: 200 }),
  immFrac: fc.double({ min: 0, max: 1, noNaN: true }),
  seg: fc.integer({ min: 100, max: 9000 }),
  sizes: fc.array(fc.integer({ min: 1, max: 1600 }), { minLength: 1, maxLength: 16 }),
  hd: fc.boolean(),
  dd: fc.boolean(),
  solicited: fc.boolean(),
});

/**
 * One WRITE of `data` at `lba`, fed in `w.sizes` chunks: solicited (the R2T asks for all of E), or
 * immediate data then unsolicited Data-Out (TTT 0xffffffff) up to E (RFC 7143 11.3.4 / 13.11).
 */
function sendWrite(rig: ReturnType<typeof session>['rig'], f: Feeder, w: { solicited: boolean; blocks: number; sizes: number[]; seg: number; immFrac: number }, itt: number, lba: number, E: number, data: Uint8Array): void {
  if (w.solicited) {
    f.feed(scsiCmd(rig, { itt, lba, blocks: w.blocks, E, final: true }), w.sizes);
    const r2t = rig.one();
    assert.is(r2t.op, OP.R2t);
    assert.is(u32(r2t.bhs, 44), E);
    f.feed(dataOutTrain(rig, itt, r2t.ttt, 0, data, w.seg), w.sizes);
  } else {
    const imm = Math.min(E, Math.floor(w.immFrac * E));
    const stream = [scsiCmd(rig, { itt, lba, blocks: w.blocks, E, final: imm === E, imm: data.subarray(0, imm) })];
    if (imm < E) stream.push(dataOutTrain(rig, itt, 0xffffffff, imm, data.subarray(imm), w.seg));
    f.feed(Uint8Array.from(Buffer.concat(stream)), w.sizes);
  }
}

test('session: writes split over many chunks reach ScsiTarget.execute as views of the chunks; pins held until done, all released after (fast-check)', () => {
  fc.assert(fc.property(arbWrite, (w) => {
    const { rig, scsi } = session([...(w.solicited ? SOLICITED : UNSOLICITED), ...DIGESTS(w.hd, w.dd)]);
    const budget = new HoldBudget({ maxHeldChunks: 100000, maxHeldBytesPerConnection: 1 << 30 });
    const holds = budget.connection();
    const f = new Feeder(rig, holds);
    scsi.deferred = [];
    const E = w.blocks * 512;
    const lba = Math.min(w.lba, 256 - w.blocks);
    const data = pattern(E, w.seg);
    const itt = 77;
    sendWrite(rig, f, w, itt, lba, E, data);
    assert.is(scsi.commands.length, 1, 'executed once all data is in');
    const parts = scsi.seenDataOut[0]!;
    assert.ok(f.allViews(parts), 'dataOut parts are views of the received chunks');
    assert.is(parts.reduce((n, p) => n + p.length, 0), E);
    assert.is(rig.conn.dataOutStats.copiedBytes, 0);
    assert.ok(holds.heldChunks > 0 && budget.held === holds.heldChunks, 'pinned while the SCSI layer works');
    assert.ok(f.freed < f.chunks);
    for (const d of scsi.deferred.splice(0)) d();
    assert.is(statusOf(rig.take(), itt), 0);
    assert.is(budget.held, 0, 'no chunk held after completion');
    assert.is(holds.heldBytes, 0);
    assert.is(f.freed, f.chunks, 'every chunk freed');
    assert.equal(scsi.disk.subarray(lba * 512, lba * 512 + E), data, 'the bytes written are right');
  }), { numRuns: 250 });
});

test('session: with a hold that refuses (null) or no hold at all, split writes are copied and still right', () => {
  fc.assert(fc.property(arbWrite, fc.boolean(), (w, refuse) => {
    const { rig, scsi } = session([...(w.solicited ? SOLICITED : UNSOLICITED), ...DIGESTS(w.hd, w.dd)]);
    const f = new Feeder(rig, refuse ? 'refuse' : null);
    const E = w.blocks * 512;
    const lba = Math.min(w.lba, 256 - w.blocks);
    const data = pattern(E, w.seg + 1);
    const itt = 78;
    sendWrite(rig, f, w, itt, lba, E, data);
    assert.is(statusOf(rig.take(), itt), 0);
    assert.ok(f.noneViews(scsi.seenDataOut[0]!), 'copies, not views of chunks that were freed');
    assert.is(rig.conn.dataOutStats.copiedBytes, E);
    assert.equal(scsi.disk.subarray(lba * 512, lba * 512 + E), data);
  }), { numRuns: 150 });
});

// ---- release on abort, close, discard -------------------------------------------------------------

/**
 * A session with a write of 8 KiB in progress (unsolicited, 700-byte chunks): 4096 bytes of
 * immediate data and a first Data-Out of 2048 bytes have arrived; `rest` is the last Data-Out
 * (2048 bytes, F), of which `partial` bytes are fed too.
 */
function halfWritten(partial = 0) {
  const s = session(UNSOLICITED);
  const budget = new HoldBudget();
  const holds = budget.connection();
  const f = new Feeder(s.rig, holds);
  const data = pattern(8192, 9);
  const itt = 5;
  f.feed(scsiCmd(s.rig, { itt, lba: 0, blocks: 16, E: 8192, final: false, imm: data.subarray(0, 4096) }), [700]);
  f.feed(dataOutPdu(s.rig, itt, 0xffffffff, 0, 4096, data.subarray(4096, 6144), false), [700]);
  const rest = dataOutPdu(s.rig, itt, 0xffffffff, 1, 6144, data.subarray(6144), true);
  if (partial) f.feed(rest.subarray(0, partial), [700]);
  assert.ok(budget.held > 0);
  assert.is(s.scsi.commands.length, 0);
  return { ...s, budget, holds, f, data, itt, rest: rest.subarray(partial) };
}

test('release: ABORT TASK of a task still collecting Data-Out releases its chunks at once', () => {
  const { rig, budget, f, itt, scsi, rest } = halfWritten();
  const rsp = rig.tmf(1, { ref: itt, refCmdSN: 1000 });
  assert.is(rsp.op, OP.TmfRsp);
  assert.is(rsp.bhs[2], 0, 'Function complete (RFC 7143 11.6.1)');
  assert.is(budget.held, 0);
  assert.is(f.freed, f.chunks);
  // The aborted task's last Data-Out still comes: dropped, nothing held, nothing executed.
  f.feed(rest, [700]);
  assert.is(budget.held, 0);
  assert.is(f.freed, f.chunks);
  assert.is(scsi.commands.length, 0);
  assert.is(rig.take().length, 0);
});

test('release: a task aborted while the SCSI layer runs keeps its views until done is called, then releases them', () => {
  const { rig, budget, f, itt, scsi, rest, data } = halfWritten(1000);
  scsi.deferred = [];
  f.feed(rest, [700]);
  assert.is(scsi.commands.length, 1);
  assert.equal(Uint8Array.from(Buffer.concat(scsi.seenDataOut[0]!)), data);
  // LOGICAL UNIT RESET aborts the LUN's tasks; its response waits for the running one (SAM-5).
  rig.sendTmf(5, {});
  assert.is(rig.take().length, 0);
  assert.ok(budget.held > 0, 'the backend may still be reading the views');
  for (const d of scsi.deferred.splice(0)) d();
  assert.is(budget.held, 0);
  assert.is(f.freed, f.chunks);
  const out = rig.take();
  assert.is(out.filter((p) => p.itt === itt).length, 0, 'an aborted task is not answered');
  assert.equal(out.map((p) => [p.op, p.bhs[2]]), [[OP.TmfRsp, 0]], 'Function complete once the command returned');
});

test('release: the connection closing (mid-PDU, a task collecting) releases every chunk', () => {
  const { rig, budget, holds, f, portal } = halfWritten(48 + 1000);
  assert.ok(rig.conn.taskCount === 1);
  rig.conn.closed(rig.now);
  assert.is(budget.held, 0);
  assert.is(holds.heldChunks, 0);
  assert.is(f.freed, f.chunks);
  assert.is(portal.sessions.counters.get('closed-mid-pdu'), 1);
});

test('release: the connection closing while the SCSI layer runs releases the chunks when done is called', () => {
  const { rig, budget, f, scsi, rest } = halfWritten(1000);
  scsi.deferred = [];
  f.feed(rest, [700]);
  rig.conn.closed(rig.now);
  assert.ok(budget.held > 0);
  for (const d of scsi.deferred.splice(0)) d();
  assert.is(budget.held, 0);
  assert.is(f.freed, f.chunks);
});

test('release: discarded Data-Out (unknown task, data digest error, failed task) holds nothing after input', () => {
  // Unknown ITT: counted and dropped.
  {
    const { rig, portal } = session(UNSOLICITED);
    const budget = new HoldBudget();
    const f = new Feeder(rig, budget.connection());
    f.feed(dataOutPdu(rig, 4242, 0xffffffff, 0, 0, pattern(3000, 1), true), [500]);
    assert.is(portal.sessions.counters.get('data-out-unknown-task'), 1);
    assert.is(budget.held, 0);
    assert.is(f.freed, f.chunks);
  }
  // Data digest error in a segment spread over chunks: Reject (RFC 7143 7.8), task fails at F.
  {
    const { rig } = session([...UNSOLICITED, ...DIGESTS(false, true)]);
    const budget = new HoldBudget();
    const f = new Feeder(rig, budget.connection());
    const data = pattern(4096, 2);
    f.feed(scsiCmd(rig, { itt: 6, lba: 0, blocks: 8, E: 4096, final: false, imm: data.subarray(0, 1024) }), [600]);
    assert.ok(budget.held > 0);
    const bad = dataOutPdu(rig, 6, 0xffffffff, 0, 1024, data.subarray(1024), true);
    bad[48 + 100] ^= 0xff;
    f.feed(bad, [600]);
    const ps = rig.take();
    assert.is(ps[0]!.op, OP.Reject);
    assert.is(ps[0]!.bhs[2], 0x02, 'Data (payload) digest error');
    assert.is(statusOf(ps, 6), 2, 'CHECK CONDITION');
    assert.is(budget.held, 0);
    assert.is(f.freed, f.chunks);
  }
  // A sequence error (wrong DataSN) fails the task: its pieces go when it is answered.
  {
    const { rig, scsi } = session(UNSOLICITED);
    const budget = new HoldBudget();
    const f = new Feeder(rig, budget.connection());
    const data = pattern(4096, 3);
    f.feed(scsiCmd(rig, { itt: 7, lba: 0, blocks: 8, E: 4096, final: false, imm: data.subarray(0, 1024) }), [600]);
    f.feed(dataOutPdu(rig, 7, 0xffffffff, 5, 1024, data.subarray(1024), true), [600]);
    assert.is(statusOf(rig.take(), 7), 2);
    assert.is(scsi.commands.length, 0);
    assert.is(budget.held, 0);
    assert.is(f.freed, f.chunks);
  }
});

// ---- the budget -----------------------------------------------------------------------------------

test('budget: past maxHeldChunks the session copies; the held count never exceeds it and returns to 0', () => {
  const { rig, scsi } = session(UNSOLICITED);
  const budget = new HoldBudget({ maxHeldChunks: 4 });
  const holds = budget.connection();
  const f = new Feeder(rig, holds);
  scsi.deferred = [];
  const data = pattern(16384, 5);
  f.feed(Uint8Array.from(Buffer.concat([
    scsiCmd(rig, { itt: 8, lba: 0, blocks: 32, E: 16384, final: false, imm: data.subarray(0, 8192) }),
    dataOutTrain(rig, 8, 0xffffffff, 8192, data.subarray(8192), 8192),
  ])), [1448]);
  assert.is(budget.held, 4);
  assert.is(budget.peak, 4);
  assert.ok(budget.refused > 0);
  const parts = scsi.seenDataOut[0]!;
  assert.ok(parts.some((p) => f.buffers.has(p.buffer)) && parts.some((p) => !f.buffers.has(p.buffer)), 'some views, some copies');
  for (const d of scsi.deferred.splice(0)) d();
  assert.is(statusOf(rig.take(), 8), 0);
  assert.is(budget.held, 0);
  assert.is(f.freed, f.chunks);
  assert.equal(scsi.disk.subarray(0, 16384), data);
});

test('budget: one connection pins at most maxHeldBytesPerConnection bytes of chunks', () => {
  const { rig, scsi } = session(UNSOLICITED);
  const budget = new HoldBudget({ maxHeldBytesPerConnection: 5000 });
  const holds = budget.connection();
  const f = new Feeder(rig, holds);
  scsi.deferred = [];
  const data = pattern(16384, 6);
  f.feed(scsiCmd(rig, { itt: 9, lba: 0, blocks: 32, E: 16384, final: true, imm: data }), [1000]);
  assert.is(holds.heldBytes, 5000);
  for (const d of scsi.deferred.splice(0)) d();
  assert.is(holds.heldBytes, 0);
  assert.equal(scsi.disk.subarray(0, 16384), data);
});

test('budget: a connection that holds the whole service budget cannot stall another one (it copies and completes)', () => {
  const { portal, scsi: m } = makePortal();
  const scsi = m.get(IQN)!;
  const budget = new HoldBudget({ maxHeldChunks: 8 });
  const a = new Rig(portal);
  a.login(UNSOLICITED);
  const b = new Rig(portal);
  b.login(UNSOLICITED, { isid: Uint8Array.of(0x80, 0, 0, 0, 0, 2) });
  const fa = new Feeder(a, budget.connection());
  const fb = new Feeder(b, budget.connection());
  scsi.deferred = [];
  const da = pattern(16384, 7), db = pattern(8192, 8);
  fa.feed(scsiCmd(a, { itt: 1, lba: 0, blocks: 32, E: 16384, final: true, imm: da }), [1448]);
  assert.is(budget.held, 8);
  const waiting = scsi.deferred.splice(0);
  scsi.deferred = null;
  fb.feed(scsiCmd(b, { itt: 1, lba: 64, blocks: 16, E: 8192, final: true, imm: db }), [1448]);
  assert.is(statusOf(b.take(), 1), 0, 'B completes while A holds the budget');
  assert.is(fb.freed, fb.chunks);
  assert.equal(scsi.disk.subarray(64 * 512, 64 * 512 + 8192), db);
  for (const d of waiting) d();
  assert.is(statusOf(a.take(), 1), 0);
  assert.is(budget.held, 0);
  assert.equal(scsi.disk.subarray(0, 16384), da);
});

// ---- the real SCSI layer and RAM backend ------------------------------------------------------------

test('RAM LUN: a write split over 1448-byte chunks is copied once into the LUN (chunks scribbled after release) and reads back', () => {
  const spec: TargetSpec = { iqn: IQN, luns: [{ lun: 0, size: 1 << 20 }] };
  const real = createScsiTarget(spec);
  const seen: Array<readonly Uint8Array[]> = [];
  const spy: ScsiTarget = {
    get luns() { return real.luns; },
    execute(cmd: ScsiCommand, done: (r: ScsiResult) => void) { if (cmd.write) seen.push([...cmd.dataOut]); real.execute(cmd, done); },
    lunReset: (l, n) => real.lunReset(l, n), targetReset: (n) => real.targetReset(n), nexusLost: (n) => real.nexusLost(n),
    flush: () => real.flush(), close: () => real.close(),
  };
  const portal: Portal = { targets: new Map([[IQN, { spec, scsi: spy }]]), sessions: new SessionTable() };
  const rig = new Rig(portal);
  assert.is(rig.login([...UNSOLICITED, ...DIGESTS(true, true)]).status, 0);
  // SAM-5: a new I_T nexus first sees the unit attention POWER ON, RESET, OR BUS DEVICE RESET
  // OCCURRED (29h/00h); a TEST UNIT READY takes it.
  rig.cmd({ cdb: new Uint8Array(16), E: 0 });
  const ua = rig.one();
  assert.equal(senseOf(ua), [0x06, 0x29, 0x00]);
  const budget = new HoldBudget();
  const f = new Feeder(rig, budget.connection());
  const data = pattern(65536, 11);
  f.feed(Uint8Array.from(Buffer.concat([
    scsiCmd(rig, { itt: 3, lba: 8, blocks: 128, E: 65536, final: false, imm: data.subarray(0, 8192) }),
    dataOutTrain(rig, 3, 0xffffffff, 8192, data.subarray(8192), 8192),
  ])), [1448]);
  assert.is(statusOf(rig.take(), 3), 0);
  assert.ok(f.allViews(seen[0]!), 'the backend was given views of the chunks');
  assert.ok(seen[0]!.length >= 65536 / 1448, 'one part per chunk piece');
  assert.is(budget.held, 0);
  assert.is(f.freed, f.chunks);
  // Every chunk is scribbled now; the LUN must still hold the data.
  rig.send((() => { const h = bhs(0x01, 0x80 | 0x40 | 1, { itt: 4, cmdSN: rig.cmdSN++, lun: lunField(0) }); p32(h, 20, 65536); h.set(read10(8, 128), 32); return h; })());
  const ps = rig.take();
  assert.is(statusOf(ps, 4), 0);
  assert.equal(Uint8Array.from(Buffer.concat(ps.filter((p) => p.op === OP.DataIn).map((p) => p.data))), data);
  real.close();
});

test('file LUN: a 1 MiB write in 500-byte chunks (over 2000 views, more than one writev takes) lands intact; chunks held until the write completes', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-zc-'));
  const file = path.join(dir, 'lun.img');
  const spec: TargetSpec = { iqn: IQN, luns: [{ lun: 0, size: 4 << 20, file }] };
  const real = createScsiTarget(spec);
  try {
    const portal: Portal = { targets: new Map([[IQN, { spec, scsi: real }]]), sessions: new SessionTable() };
    const rig = new Rig(portal);
    assert.is(rig.login(UNSOLICITED).status, 0);
    rig.cmd({ cdb: new Uint8Array(16), E: 0 });
    assert.equal(senseOf(rig.one()), [0x06, 0x29, 0x00]);
    const budget = new HoldBudget({ maxHeldChunks: 1 << 20, maxHeldBytesPerConnection: 1 << 30 });
    const f = new Feeder(rig, budget.connection());
    const data = pattern(1 << 20, 12);
    f.feed(Uint8Array.from(Buffer.concat([
      scsiCmd(rig, { itt: 3, lba: 16, blocks: 2048, E: 1 << 20, final: false, imm: data.subarray(0, 65536) }),
      dataOutTrain(rig, 3, 0xffffffff, 65536, data.subarray(65536, 262144), 65536),
    ])), [500]);
    // The rest is solicited (FirstBurstLength 262144): one R2T of MaxBurstLength at a time.
    let solicited = 0;
    for (let i = 0; i < 8; i++) {
      const ps = rig.take();
      if (ps.length === 0) break;
      assert.is(ps.length, 1);
      assert.is(ps[0]!.op, OP.R2t);
      const off = u32(ps[0]!.bhs, 40), len = u32(ps[0]!.bhs, 44);
      f.feed(dataOutTrain(rig, 3, ps[0]!.ttt, off, data.subarray(off, off + len), 65536), [500]);
      solicited += len;
    }
    assert.is(solicited, (1 << 20) - 262144);
    assert.ok(budget.held > 2000, `${budget.held} chunks pinned while the file write runs`);
    for (let i = 0; i < 500 && rig.parser.pdus.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.is(statusOf(rig.take(), 3), 0);
    assert.is(budget.held, 0);
    assert.is(f.freed, f.chunks);
    assert.is(rig.conn.dataOutStats.copiedBytes, 0);
    await real.flush();
    const fd = fs.openSync(file, 'r');
    const back = Buffer.alloc(1 << 20);
    fs.readSync(fd, back, 0, back.length, 16 * 512);
    fs.closeSync(fd);
    assert.ok(back.equals(data), 'the file holds the data');
  } finally {
    real.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();

/**
 * SCSI layer of the iSCSI target: MODE SENSE(6)/(10) and MODE SELECT(6)/(10) (SPC-4 mode
 * parameters, SBC-3 block descriptor and device-specific parameter), the effects of D_SENSE, SWP
 * and WCE, and MODE PARAMETERS CHANGED for the other I_T nexuses. Checks follow SPC-4 and libiscsi
 * 1.19 (test_modesense6_*.c and its set_swp/clear_swp helpers).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createScsiTarget } from '../examples/iscsi/scsi/target';
import { ScsiStatus } from '../examples/iscsi/scsi/types';
import { run, data, parseSense, cdb, clearUa, unmapList, NEXUS_A, NEXUS_B, expectCheck } from './lib/scsi';

const BS = 512;
const BLOCKS = 4096;

async function ready() {
  const t = createScsiTarget({ iqn: 'iqn.2024-01.org.example:mode', luns: [{ lun: 0, size: BLOCKS * BS }] });
  await clearUa(t, NEXUS_A);
  await clearUa(t, NEXUS_B);
  return t;
}


/** Pages of a MODE SENSE answer: [code, bytes]. */
function pages(d: Buffer, ten: boolean): [number, Buffer][] {
  const hdr = ten ? 8 : 4;
  const bd = ten ? d.readUInt16BE(6) : d[3];
  const out: [number, Buffer][] = [];
  let o = hdr + bd;
  while (o + 2 <= d.length) {
    const len = d[o + 1] + 2;
    out.push([d[o] & 0x3f, d.subarray(o, o + len)]);
    o += len;
  }
  return out;
}

test('MODE SENSE(6) all pages: header, block descriptor, pages 01h 08h 0Ah 1Ch in order with their SPC-4/SBC-3 lengths', async () => {
  const t = await ready();
  const d = data(await run(t, { cdb: cdb.modeSense6(0x3f, 255) }));
  assert.is(d[0], d.length - 1, 'MODE DATA LENGTH');
  assert.is(d[1], 0, 'MEDIUM TYPE');
  assert.is(d[2], 0x10, 'device-specific: WP 0, DPOFUA 1');
  assert.is(d[3], 8, 'short block descriptor');
  assert.equal([d.readUInt32BE(4), d.readUIntBE(9, 3)], [BLOCKS, BS]);
  const p = pages(d, false);
  assert.equal(p.map(([c]) => c), [0x01, 0x08, 0x0a, 0x1c]);
  assert.equal(p.map(([, b]) => b[1]), [0x0a, 0x12, 0x0a, 0x0a], 'PAGE LENGTHs');
  const caching = p[1][1], control = p[2][1];
  assert.is(caching[2] & 0x04, 0x04, 'WCE = 1 by default');
  assert.is(control[2] & 0x04, 0, 'D_SENSE = 0');
  assert.is(control[4] & 0x08, 0, 'SWP = 0');
  assert.is(control[2] >> 5, 0, 'TST 000b (libiscsi: 0 or 1)');
  assert.ok(((control[3] >> 4) <= 1), 'QUEUE ALGORITHM MODIFIER 0 or 1');
  assert.is.not((control[3] >> 1) & 3, 2, 'QERR is not 10b');
  assert.ok(control.readUInt16BE(8) !== 0, 'BUSY TIMEOUT PERIOD defined');
  // The control page alone is the same page as in "all pages".
  const only = pages(data(await run(t, { cdb: cdb.modeSense6(0x0a, 255) })), false);
  assert.equal(only, [[0x0a, control]]);
});

test('MODE SENSE: DBD drops the block descriptor; small allocation lengths truncate without changing MODE DATA LENGTH', async () => {
  const t = await ready();
  const full = data(await run(t, { cdb: cdb.modeSense6(0x3f, 255) }));
  const nodbd = data(await run(t, { cdb: cdb.modeSense6(0x3f, 255, 0, true) }));
  assert.is(nodbd[3], 0);
  assert.is(nodbd.length, full.length - 8);
  const four = data(await run(t, { cdb: cdb.modeSense6(0x3f, 4) }));
  assert.is(four.length, 4);
  assert.is(four[0], full[0], 'MODE DATA LENGTH is the full length');
});

test('MODE SENSE(10): 8-byte header; LLBAA gives the 16-byte long LBA block descriptor', async () => {
  const t = await ready();
  const d = data(await run(t, { cdb: cdb.modeSense10(0x3f, 1024) }));
  assert.is(d.readUInt16BE(0), d.length - 2);
  assert.equal([d[3], d[4] & 1, d.readUInt16BE(6)], [0x10, 0, 8]);
  const l = data(await run(t, { cdb: cdb.modeSense10(0x08, 1024, 0, false, true) }));
  assert.equal([l[4] & 1, l.readUInt16BE(6)], [1, 16], 'LONGLBA, 16-byte descriptor');
  assert.equal([Number(l.readBigUInt64BE(8)), l.readUInt32BE(20)], [BLOCKS, BS]);
  assert.equal(pages(l, true).map(([c]) => c), [0x08]);
});

test('MODE SENSE page control: changeable shows WCE, D_SENSE and SWP; default; saved is SAVING PARAMETERS NOT SUPPORTED', async () => {
  const t = await ready();
  const ch = pages(data(await run(t, { cdb: cdb.modeSense6(0x3f, 255, 1, true) })), false);
  const m = new Map(ch);
  assert.is(m.get(0x08)![2], 0x04);
  assert.equal([m.get(0x0a)![2], m.get(0x0a)![3], m.get(0x0a)![4]], [0x04, 0x00, 0x08]);
  assert.ok(m.get(0x01)!.subarray(2).every((b) => b === 0));
  const def = pages(data(await run(t, { cdb: cdb.modeSense6(0x08, 255, 2) })), false);
  assert.is(def[0][1][2] & 0x04, 0x04, 'default WCE');
  expectCheck(await run(t, { cdb: cdb.modeSense6(0x3f, 255, 3) }), 0x5, 0x39, 0x00);
  expectCheck(await run(t, { cdb: cdb.modeSense6(0x19, 255) }), 0x5, 0x24, 0x00);
  expectCheck(await run(t, { cdb: cdb.modeSense6(0x0a, 255, 0, false, 0x05) }), 0x5, 0x24, 0x00);
  assert.is((await run(t, { cdb: cdb.modeSense6(0x3f, 255, 0, false, 0xff) })).status, ScsiStatus.Good, 'all pages and subpages');
});

/** The current Control page (without header) as MODE SELECT(6) parameter data, SWP/D_SENSE set as asked. */
async function controlSelect(t: Awaited<ReturnType<typeof ready>>, opts: { swp?: boolean; dSense?: boolean }, nexus = NEXUS_A) {
  const cur = pages(data(await run(t, { cdb: cdb.modeSense6(0x0a, 255, 0, true), nexus })), false)[0][1];
  const page = Buffer.from(cur);
  page[0] &= 0x3f; // PS is reserved in MODE SELECT
  if (opts.swp !== undefined) page[4] = opts.swp ? page[4] | 0x08 : page[4] & ~0x08;
  if (opts.dSense !== undefined) page[2] = opts.dSense ? page[2] | 0x04 : page[2] & ~0x04;
  const list = Buffer.concat([Buffer.alloc(4), page]);
  return run(t, { cdb: cdb.modeSelect6(list.length), data: list, nexus });
}

test('MODE SELECT D_SENSE: sense data switches to descriptor format; other nexuses get MODE PARAMETERS CHANGED', async () => {
  const t = await ready();
  assert.is((await controlSelect(t, { dSense: true })).status, ScsiStatus.Good);
  // libiscsi Control-D_SENSE: an LBA out of range now comes back in descriptor format.
  const r = await run(t, { cdb: cdb.read16(2n ** 64n - 1n, 1) });
  const s = expectCheck(r, 0x5, 0x21, 0x00);
  assert.is(s.format, 'descriptor');
  expectCheck(await run(t, { cdb: cdb.tur(), nexus: NEXUS_B }), 0x6, 0x2a, 0x01);
  assert.is((await run(t, { cdb: cdb.tur(), nexus: NEXUS_B })).status, ScsiStatus.Good);
  assert.is((await run(t, { cdb: cdb.tur() })).status, ScsiStatus.Good, 'not for the nexus that changed them');
  assert.is((await controlSelect(t, { dSense: false })).status, ScsiStatus.Good);
  assert.is(parseSense((await run(t, { cdb: cdb.read10(BLOCKS, 1) })).sense).format, 'fixed');
});

test('MODE SELECT SWP: WP in the device-specific parameter, writes DATA PROTECT / WRITE PROTECTED, reads still work', async () => {
  const t = await ready();
  assert.is((await controlSelect(t, { swp: true })).status, ScsiStatus.Good);
  assert.is(data(await run(t, { cdb: cdb.modeSense6(0x3f, 255) }))[2] & 0x80, 0x80, 'WP');
  assert.is((await run(t, { cdb: cdb.read10(0, 1) })).status, ScsiStatus.Good);
  const blk = new Uint8Array(BS);
  for (const c of [cdb.write10(0, 1), cdb.writeVerify10(0, 1), cdb.writeSame10(0, 1)]) {
    expectCheck(await run(t, { cdb: c, data: blk }), 0x7, 0x27, 0x02);
  }
  expectCheck(await run(t, { cdb: cdb.writeSame10(0, 1, 0x08) }), 0x7, 0x27, 0x02);
  expectCheck(await run(t, { cdb: cdb.compareAndWrite(0, 1), data: new Uint8Array(2 * BS) }), 0x7, 0x27, 0x02);
  expectCheck(await run(t, { cdb: cdb.orWrite(0, 1), data: blk }), 0x7, 0x27, 0x02);
  const list = unmapList([[0, 1]]);
  expectCheck(await run(t, { cdb: cdb.unmap(list.length), data: list }), 0x7, 0x27, 0x02);
  assert.is((await controlSelect(t, { swp: false })).status, ScsiStatus.Good);
  assert.is((await run(t, { cdb: cdb.write10(0, 1), data: blk })).status, ScsiStatus.Good);
});

test('MODE SELECT WCE = 0 (write-through) is reported by MODE SENSE; MODE SELECT(10) works the same', async () => {
  const t = await ready();
  const cur = pages(data(await run(t, { cdb: cdb.modeSense10(0x08, 255, 0, true) })), true)[0][1];
  const page = Buffer.from(cur);
  page[2] &= ~0x04;
  const list = Buffer.concat([Buffer.alloc(8), page]);
  assert.is((await run(t, { cdb: cdb.modeSelect10(list.length), data: list })).status, ScsiStatus.Good);
  const now = pages(data(await run(t, { cdb: cdb.modeSense6(0x08, 255) })), false)[0][1];
  assert.is(now[2] & 0x04, 0);
  assert.is((await run(t, { cdb: cdb.write10(0, 1), data: new Uint8Array(BS) })).status, ScsiStatus.Good);
});

test('MODE SELECT checks: non-changeable bits, page length, SP, truncated list, block descriptor', async () => {
  const t = await ready();
  const cur = pages(data(await run(t, { cdb: cdb.modeSense6(0x0a, 255, 0, true) })), false)[0][1];
  const tst = Buffer.from(cur);
  tst[2] |= 0x20; // TST is not changeable
  let s = expectCheck(await run(t, { cdb: cdb.modeSelect6(16), data: Buffer.concat([Buffer.alloc(4), tst]) }), 0x5, 0x26, 0x00);
  assert.equal(s.field, { cdb: false, byte: 4 + 2, bit: undefined });
  const badLen = Buffer.from(cur);
  badLen[1] = 0x0b;
  s = expectCheck(await run(t, { cdb: cdb.modeSelect6(16), data: Buffer.concat([Buffer.alloc(4), badLen]) }), 0x5, 0x26, 0x00);
  assert.is(s.field?.byte, 5);
  expectCheck(await run(t, { cdb: cdb.modeSelect6(16, 0x11), data: Buffer.concat([Buffer.alloc(4), cur]) }), 0x5, 0x24, 0x00);
  expectCheck(await run(t, { cdb: cdb.modeSelect6(10), data: Buffer.concat([Buffer.alloc(4), cur]).subarray(0, 10) }), 0x5, 0x1a, 0x00);
  expectCheck(await run(t, { cdb: cdb.modeSelect6(3), data: Buffer.alloc(3) }), 0x5, 0x1a, 0x00);
  assert.is((await run(t, { cdb: cdb.modeSelect6(0) })).status, ScsiStatus.Good, 'PARAMETER LIST LENGTH 0');
  const bd = Buffer.alloc(12);
  bd[3] = 8;
  bd.writeUIntBE(4096, 9, 3); // a block length this LUN does not have
  expectCheck(await run(t, { cdb: cdb.modeSelect6(12), data: bd }), 0x5, 0x26, 0x00);
  bd.writeUIntBE(BS, 9, 3);
  bd.writeUInt32BE(BLOCKS, 4);
  assert.is((await run(t, { cdb: cdb.modeSelect6(12), data: bd })).status, ScsiStatus.Good, 'the current geometry is accepted');
  const none = await run(t, { cdb: cdb.tur(), nexus: NEXUS_B });
  assert.is(none.status, ScsiStatus.Good, 'nothing changed: no unit attention for the others');
});

test('LOGICAL UNIT RESET: mode parameters back to defaults, 29h/03h for every nexus (the issuer too)', async () => {
  const t = await ready();
  await controlSelect(t, { dSense: true, swp: true });
  await clearUa(t, NEXUS_B);
  t.lunReset(0, NEXUS_A);
  expectCheck(await run(t, { cdb: cdb.tur() }), 0x6, 0x29, 0x03);
  expectCheck(await run(t, { cdb: cdb.tur(), nexus: NEXUS_B }), 0x6, 0x29, 0x03);
  const control = pages(data(await run(t, { cdb: cdb.modeSense6(0x0a, 255) })), false)[0][1];
  assert.equal([control[2] & 0x04, control[4] & 0x08], [0, 0]);
});

test.run();

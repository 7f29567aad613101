/**
 * SCSI layer of the iSCSI target, SBC-3 block commands over the RAM backend: READ CAPACITY,
 * READ/WRITE 6/10/12/16, VERIFY and WRITE AND VERIFY, SYNCHRONIZE CACHE, PRE-FETCH, WRITE SAME,
 * UNMAP, GET LBA STATUS, COMPARE AND WRITE, ORWRITE, START STOP UNIT, PREVENT ALLOW. Expectations
 * from SBC-3 and libiscsi 1.19 (test_read*_*.c, test_write*_*.c, test_writesame*_*.c, test_unmap_*.c,
 * test_compareandwrite_*.c, test_get_lba_status_*.c).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createScsiTarget } from '../examples/iscsi/scsi/target';
import { RamBackend } from '../examples/iscsi/lun/ram';
import { ScsiStatus } from '../examples/iscsi/scsi/types';
import { run, data, parseSense, cdb, clearUa, pattern, unmapList, NEXUS_B, expectCheck } from './lib/scsi';

const BS = 512;
const BLOCKS = 8192; // 4 MiB
const LAST = BLOCKS - 1;

async function ready(size = BLOCKS * BS, blockSize = BS) {
  const t = createScsiTarget({ iqn: 'iqn.2024-01.org.example:sbc', luns: [{ lun: 0, size, blockSize }] });
  await clearUa(t);
  return t;
}

const oob = (r: { status: number; sense?: Uint8Array }) => expectCheck(r, 0x5, 0x21, 0x00);
const badCdb = (r: { status: number; sense?: Uint8Array }) => expectCheck(r, 0x5, 0x24, 0x00);

test('READ CAPACITY(10)/(16): last LBA and block length; RC16 LBPME = LBPRZ = 1, no protection, truncation', async () => {
  const t = await ready();
  const r10 = data(await run(t, { cdb: cdb.readCapacity10() }));
  assert.equal([r10.readUInt32BE(0), r10.readUInt32BE(4)], [LAST, BS]);
  const r16 = data(await run(t, { cdb: cdb.readCapacity16(32) }));
  assert.equal([Number(r16.readBigUInt64BE(0)), r16.readUInt32BE(8)], [LAST, BS]);
  assert.is(r16[12] & 0x0f, 0, 'P_TYPE 0, PROT_EN 0');
  assert.is(r16[13], 0, 'P_I_EXPONENT 0, LBPPBE 0');
  assert.is(r16[14] & 0xc0, 0xc0, 'LBPME and LBPRZ');
  for (let a = 0; a < 16; a++) {
    const r = await run(t, { cdb: cdb.readCapacity16(a) });
    assert.is(r.status, ScsiStatus.Good, `allocation length ${a}`);
    assert.equal(data(r), r16.subarray(0, a));
  }
  badCdb(await run(t, { cdb: [0x25, 0, 0, 0, 0, 1, 0, 0, 0, 0] })); // LBA without PMI
});

test('READ CAPACITY(10) of a LUN past 2^32 blocks returns FFFFFFFFh; READ CAPACITY(16) the real last LBA', async () => {
  const blocks = 2 ** 32 + 8;
  const t = await ready(blocks * BS);
  assert.is(data(await run(t, { cdb: cdb.readCapacity10() })).readUInt32BE(0), 0xffffffff);
  assert.is(Number(data(await run(t, { cdb: cdb.readCapacity16(32) })).readBigUInt64BE(0)), blocks - 1);
  // The block past 2^32 is addressable by READ/WRITE(16).
  const p = pattern(BS, 9);
  assert.is((await run(t, { cdb: cdb.write16(blocks - 1, 1), data: p })).status, ScsiStatus.Good);
  assert.equal(data(await run(t, { cdb: cdb.read16(blocks - 1, 1) })), Buffer.from(p));
});

test('READ/WRITE 6, 10, 12, 16 round-trip, with Data-Out split over many views', async () => {
  const t = await ready();
  const forms: [string, (l: number, n: number) => number[], (l: number, n: number) => number[]][] = [
    ['6', cdb.write6, cdb.read6], ['10', cdb.write10, cdb.read10], ['12', cdb.write12, cdb.read12], ['16', cdb.write16, cdb.read16],
  ];
  let seed = 1;
  for (const [name, w, r] of forms) {
    for (const [lba, n] of [[0, 1], [100, 7], [LAST - 3, 4]]) {
      const p = pattern(n * BS, seed++);
      const wr = await run(t, { cdb: w(lba, n), data: p, split: 1448 });
      assert.is(wr.status, ScsiStatus.Good, `WRITE(${name})`);
      assert.is(wr.transferLength, undefined, 'Data-Out length as the CDB asks');
      assert.equal(data(await run(t, { cdb: r(lba, n) })), Buffer.from(p), `READ(${name}) ${lba}+${n}`);
    }
  }
});

test('READ(6) TRANSFER LENGTH 0 means 256 blocks; READ(10) length 0 transfers nothing and is GOOD', async () => {
  const t = await ready();
  const r6 = await run(t, { cdb: cdb.read6(0, 0) });
  assert.is(data(r6).length, 256 * BS);
  const r10 = await run(t, { cdb: cdb.read10(0, 0) });
  assert.is(r10.status, ScsiStatus.Good);
  assert.is(data(r10).length, 0);
  assert.is((await run(t, { cdb: cdb.write10(0, 0) })).status, ScsiStatus.Good);
});

test('LBA range: last block readable; past the end, at 2^31, 2^63 and 2^64-1 (no wrap) LBA OUT OF RANGE', async () => {
  const t = await ready();
  assert.is((await run(t, { cdb: cdb.read10(LAST, 1) })).status, ScsiStatus.Good);
  oob(await run(t, { cdb: cdb.read10(LAST, 2) }));
  oob(await run(t, { cdb: cdb.read10(BLOCKS, 1) }));
  oob(await run(t, { cdb: cdb.read10(BLOCKS + 1, 0) }), );
  oob(await run(t, { cdb: cdb.read10(0x80000000, 1) }));
  oob(await run(t, { cdb: cdb.read10(0xffffffff, 1) }));
  oob(await run(t, { cdb: cdb.read16(2n ** 63n, 1) }));
  oob(await run(t, { cdb: cdb.read16(2n ** 64n - 1n, 2) }));
  oob(await run(t, { cdb: cdb.write16(2n ** 64n - 1n, 1), data: new Uint8Array(BS) }));
  oob(await run(t, { cdb: cdb.read6(0x1fffff, 1) }));
  oob(await run(t, { cdb: cdb.write10(LAST, 2), data: new Uint8Array(2 * BS) }));
});

test('TRANSFER LENGTH beyond the MAXIMUM TRANSFER LENGTH, and non-zero RDPROTECT/WRPROTECT: INVALID FIELD IN CDB', async () => {
  const t = await ready(64 << 20);
  const max = data(await run(t, { cdb: cdb.inquiry(255, 1, 0xb0) })).readUInt32BE(8);
  assert.is((await run(t, { cdb: cdb.read16(0, max) })).status, ScsiStatus.Good);
  const s = badCdb(await run(t, { cdb: cdb.read16(0, max + 1) }));
  assert.equal(s.field, { cdb: true, byte: 10, bit: undefined });
  for (let p = 1; p < 8; p++) {
    const r = badCdb(await run(t, { cdb: cdb.read10(0, 1, p << 5) }));
    assert.equal(r.field, { cdb: true, byte: 1, bit: 7 });
    badCdb(await run(t, { cdb: cdb.write10(0, 1, p << 5), data: new Uint8Array(BS) }));
    badCdb(await run(t, { cdb: cdb.verify10(0, 1, (p << 5) | 0x02), data: new Uint8Array(BS) }));
  }
});

test('DPO, FUA and FUA_NV are accepted (DPOFUA = 1 in MODE SENSE)', async () => {
  const t = await ready();
  const ms = data(await run(t, { cdb: cdb.modeSense6(0x3f, 255) }));
  assert.is(ms[2] & 0x10, 0x10, 'DPOFUA');
  for (const b1 of [0x10, 0x08, 0x18, 0x02, 0x1a]) {
    assert.is((await run(t, { cdb: cdb.write10(0, 1, b1), data: new Uint8Array(BS) })).status, ScsiStatus.Good);
    assert.is((await run(t, { cdb: cdb.read10(0, 1, b1) })).status, ScsiStatus.Good);
  }
});

test('Data-Out shorter than the CDB asks: the whole blocks received are written, the rest untouched; longer: the CDB length', async () => {
  const t = await ready();
  await run(t, { cdb: cdb.write10(0, 2), data: new Uint8Array(2 * BS).fill(0x61) });
  const r = await run(t, { cdb: cdb.write10(0, 2), data: new Uint8Array(BS).fill(0x62) });
  assert.is(r.status, ScsiStatus.Good);
  assert.is(r.transferLength, 2 * BS, 'the CDB asked for two blocks (the session reports the residual)');
  const back = data(await run(t, { cdb: cdb.read10(0, 2) }));
  assert.ok(back.subarray(0, BS).every((b) => b === 0x62));
  assert.ok(back.subarray(BS).every((b) => b === 0x61), 'second block not overwritten');
  const long = await run(t, { cdb: cdb.write10(4, 1), data: new Uint8Array(10000).fill(0x63) });
  assert.is(long.transferLength, BS);
  const b2 = data(await run(t, { cdb: cdb.read10(4, 2) }));
  assert.ok(b2.subarray(0, BS).every((b) => b === 0x63) && b2.subarray(BS).every((b) => b === 0));
  const none = await run(t, { cdb: cdb.write10(8, 1), expectedLength: 0 });
  assert.equal([none.status, none.transferLength], [ScsiStatus.Good, BS]);
});

test('VERIFY: BYTCHK 01b compares (MISCOMPARE, 1Dh/00h, offset in INFORMATION), 00b checks the range, 11b one block against each, 10b invalid', async () => {
  const t = await ready();
  const p = pattern(8 * BS, 3);
  await run(t, { cdb: cdb.write10(10, 8), data: p });
  assert.is((await run(t, { cdb: cdb.verify10(10, 8, 0x02), data: p, split: 1000 })).status, ScsiStatus.Good);
  const bad = Uint8Array.from(p);
  bad[3 * BS + 17] ^= 0x58;
  const s = expectCheck(await run(t, { cdb: cdb.verify16(10, 8, 0x02), data: bad }), 0xe, 0x1d, 0x00);
  assert.is(s.info, 3 * BS + 17, 'INFORMATION: offset of the first differing byte');
  assert.is((await run(t, { cdb: cdb.verify10(10, 8) })).status, ScsiStatus.Good, 'BYTCHK 0: no data, no compare');
  oob(await run(t, { cdb: cdb.verify10(LAST, 2) }));
  badCdb(await run(t, { cdb: cdb.verify10(10, 1, 0x04), data: p.subarray(0, BS) }));
  const same = new Uint8Array(BS).fill(0x5a);
  await run(t, { cdb: cdb.writeSame10(40, 4), data: same });
  assert.is((await run(t, { cdb: cdb.verify10(40, 4, 0x06), data: same })).status, ScsiStatus.Good, 'BYTCHK 11b');
  const s2 = expectCheck(await run(t, { cdb: cdb.verify10(39, 4, 0x06), data: same }), 0xe, 0x1d, 0x00);
  assert.is(s2.info, 0);
});

test('WRITE AND VERIFY 10/12/16 write the data', async () => {
  const t = await ready();
  const forms = [cdb.writeVerify10, cdb.writeVerify12, cdb.writeVerify16];
  for (let i = 0; i < forms.length; i++) {
    const p = pattern(3 * BS, 20 + i);
    assert.is((await run(t, { cdb: forms[i](50 + 3 * i, 3, 0x02), data: p })).status, ScsiStatus.Good);
    assert.equal(data(await run(t, { cdb: cdb.read10(50 + 3 * i, 3) })), Buffer.from(p));
  }
  oob(await run(t, { cdb: cdb.writeVerify10(BLOCKS, 0) }));
});

test('SYNCHRONIZE CACHE 10/16: range checked (0 blocks = to the end), IMMED accepted', async () => {
  const t = await ready();
  for (const c of [cdb.syncCache10(0, 0), cdb.syncCache10(LAST, 1), cdb.syncCache16(0, BLOCKS), cdb.syncCache10(0, 1, 0x02)]) {
    assert.is((await run(t, { cdb: c })).status, ScsiStatus.Good);
  }
  oob(await run(t, { cdb: cdb.syncCache10(LAST, 2) }));
  oob(await run(t, { cdb: cdb.syncCache16(2n ** 63n, 1) }));
});

test('PRE-FETCH on RAM: CONDITION MET (the blocks are in memory); range checked', async () => {
  const t = await ready();
  assert.is((await run(t, { cdb: cdb.preFetch10(0, 16) })).status, ScsiStatus.ConditionMet);
  assert.is((await run(t, { cdb: cdb.preFetch16(LAST, 1, 0x02) })).status, ScsiStatus.ConditionMet);
  assert.is((await run(t, { cdb: cdb.preFetch10(0, 0) })).status, ScsiStatus.Good);
  oob(await run(t, { cdb: cdb.preFetch10(LAST, 2) }));
  oob(await run(t, { cdb: cdb.preFetch16(2n ** 64n - 1n, 1) }));
});

async function lbaStatus(t: Awaited<ReturnType<typeof ready>>, lba: number | bigint, alloc = 1024) {
  const d = data(await run(t, { cdb: cdb.getLbaStatus(lba, alloc) }));
  const out: [number, number, number][] = [];
  assert.is(d.readUInt32BE(0) + 4, d.length > 8 ? d.length : d.readUInt32BE(0) + 4, 'PARAMETER DATA LENGTH');
  for (let o = 8; o + 16 <= d.length; o += 16) out.push([Number(d.readBigUInt64BE(o)), d.readUInt32BE(o + 8), d[o + 12] & 0x0f]);
  return out;
}

test('GET LBA STATUS: a fresh thin LUN is deallocated; written blocks become mapped; descriptors start at the requested LBA', async () => {
  const t = await ready();
  assert.equal(await lbaStatus(t, 0), [[0, BLOCKS, 1]]);
  await run(t, { cdb: cdb.write10(10, 10), data: new Uint8Array(10 * BS).fill(1) });
  assert.equal(await lbaStatus(t, 0), [[0, 10, 1], [10, 10, 0], [20, BLOCKS - 20, 1]]);
  assert.equal(await lbaStatus(t, 15), [[15, 5, 0], [20, BLOCKS - 20, 1]]);
  assert.equal(await lbaStatus(t, 0, 24), [[0, 10, 1]], 'as many descriptors as the allocation length holds');
  oob(await run(t, { cdb: cdb.getLbaStatus(BLOCKS, 24) }));
  oob(await run(t, { cdb: cdb.getLbaStatus(2n ** 64n - 1n, 24) }));
});

test('UNMAP: unmapped blocks read zeros (LBPRZ) and become deallocated; RAM chunks are freed', async () => {
  const t = await ready(8 << 20);
  const blocks = (8 << 20) / BS;
  const ram = t.unit(0)!.backend as RamBackend;
  await run(t, { cdb: cdb.write16(0, 4096), data: new Uint8Array(4096 * BS).fill(0x61) });
  assert.is(ram.allocatedBytes(), 2 << 20);
  const list = unmapList([[0, 2048], [3000, 5]]);
  assert.is((await run(t, { cdb: cdb.unmap(list.length), data: list })).status, ScsiStatus.Good);
  assert.is(ram.allocatedBytes(), 1 << 20, 'the fully unmapped 1 MiB chunk is freed');
  const back = data(await run(t, { cdb: cdb.read16(0, 4096) }));
  assert.ok(back.subarray(0, 2048 * BS).every((b) => b === 0));
  assert.ok(back.subarray(2048 * BS, 3000 * BS).every((b) => b === 0x61));
  assert.ok(back.subarray(3000 * BS, 3005 * BS).every((b) => b === 0));
  assert.ok(back.subarray(3005 * BS).every((b) => b === 0x61));
  assert.equal((await lbaStatus(t, 0)).slice(0, 4), [[0, 2048, 1], [2048, 952, 0], [3000, 5, 1], [3005, 1091, 0]]);
  assert.is(blocks, 16384);
});

test('UNMAP parameter list checks come before any unmapping', async () => {
  const t = await ready();
  await run(t, { cdb: cdb.write10(0, 4), data: new Uint8Array(4 * BS).fill(7) });
  assert.is((await run(t, { cdb: cdb.unmap(0) })).status, ScsiStatus.Good, 'PARAMETER LIST LENGTH 0: nothing to do');
  expectCheck(await run(t, { cdb: cdb.unmap(4), data: new Uint8Array(4) }), 0x5, 0x1a, 0x00);
  const beyond = unmapList([[0, 1], [LAST, 2]]);
  oob(await run(t, { cdb: cdb.unmap(beyond.length), data: beyond }));
  assert.ok(data(await run(t, { cdb: cdb.read10(0, 1) })).every((b) => b === 7), 'the valid first descriptor was not applied');
  const bl = data(await run(t, { cdb: cdb.inquiry(255, 1, 0xb0) }));
  const maxLbas = bl.readUInt32BE(20), maxDesc = bl.readUInt32BE(24);
  const many = unmapList(Array.from({ length: maxDesc + 1 }, (_, i): [number, number] => [i, 1]));
  expectCheck(await run(t, { cdb: cdb.unmap(many.length), data: many }), 0x5, 0x26, 0x00);
  if (maxLbas < BLOCKS) {
    const big = unmapList([[0, maxLbas + 1]]);
    expectCheck(await run(t, { cdb: cdb.unmap(big.length), data: big }), 0x5, 0x26, 0x00);
  }
  badCdb(await run(t, { cdb: cdb.unmap(24, 0x01), data: unmapList([[0, 1]]) }));
  const zero = unmapList([[BLOCKS, 0], [5, 0]]);
  assert.is((await run(t, { cdb: cdb.unmap(zero.length), data: zero })).status, ScsiStatus.Good, 'descriptors of 0 blocks do nothing');
  const empty = unmapList([]);
  assert.is((await run(t, { cdb: cdb.unmap(empty.length), data: empty })).status, ScsiStatus.Good);
});

test('WRITE SAME 10/16: the block repeated; UNMAP with zeros deallocates; 0 blocks = to the end within the maximum', async () => {
  const t = await ready();
  const blk = pattern(BS, 77);
  assert.is((await run(t, { cdb: cdb.writeSame10(100, 16), data: blk })).status, ScsiStatus.Good);
  const back = data(await run(t, { cdb: cdb.read10(100, 16) }));
  for (let i = 0; i < 16; i++) assert.equal(back.subarray(i * BS, (i + 1) * BS), Buffer.from(blk));
  assert.is((await run(t, { cdb: cdb.writeSame16(100, 8, 0x08), data: new Uint8Array(BS) })).status, ScsiStatus.Good);
  assert.ok(data(await run(t, { cdb: cdb.read10(100, 8) })).every((b) => b === 0));
  assert.equal((await lbaStatus(t, 100)).slice(0, 2), [[100, 8, 1], [108, 8, 0]]);
  // UNMAP = 1 deallocates whatever the block holds (SBC-3: the device server should deallocate;
  // libiscsi WriteSame10.UnmapUntilEnd sends FFh and expects zeros back with LBPRZ = 1).
  await run(t, { cdb: cdb.write10(200, 4), data: new Uint8Array(4 * BS).fill(0xff) });
  assert.is((await run(t, { cdb: cdb.writeSame10(200, 2, 0x08), data: blk })).status, ScsiStatus.Good);
  assert.ok(data(await run(t, { cdb: cdb.read10(200, 2) })).every((b) => b === 0));
  assert.equal((await lbaStatus(t, 200)).slice(0, 2), [[200, 2, 1], [202, 2, 0]]);
  // 0 blocks: from the LBA to the end (WSNZ = 0), here within MAXIMUM WRITE SAME LENGTH.
  assert.is((await run(t, { cdb: cdb.writeSame10(LAST - 9, 0), data: blk })).status, ScsiStatus.Good);
  assert.equal(data(await run(t, { cdb: cdb.read10(LAST, 1) })), Buffer.from(blk));
  oob(await run(t, { cdb: cdb.writeSame10(BLOCKS, 0), data: blk }));
  oob(await run(t, { cdb: cdb.writeSame16(2n ** 63n, 0), data: blk }));
  oob(await run(t, { cdb: cdb.writeSame10(LAST, 2), data: blk }));
  // NDOB (WRITE SAME(16) only): no Data-Out, zeros.
  await run(t, { cdb: cdb.write10(300, 1), data: blk });
  assert.is((await run(t, { cdb: cdb.writeSame16(300, 1, 0x01) })).status, ScsiStatus.Good);
  assert.ok(data(await run(t, { cdb: cdb.read10(300, 1) })).every((b) => b === 0));
});

test('WRITE SAME checks: ANCHOR (ANC_SUP = 0), WRPROTECT, Data-Out not one block, length over the maximum', async () => {
  const t = await ready(64 << 20);
  const blk = new Uint8Array(BS);
  badCdb(await run(t, { cdb: cdb.writeSame10(0, 1, 0x10), data: blk }));
  badCdb(await run(t, { cdb: cdb.writeSame10(0, 1, 0x18), data: blk }));
  badCdb(await run(t, { cdb: cdb.writeSame16(0, 1, 0x20), data: blk }));
  expectCheck(await run(t, { cdb: cdb.writeSame10(0, 1, 0x08), data: new Uint8Array(BS / 2) }), 0x5, 0x24, 0x00);
  expectCheck(await run(t, { cdb: cdb.writeSame10(0, 1, 0x08), data: new Uint8Array(BS * 2) }), 0x5, 0x24, 0x00);
  const max = Number(data(await run(t, { cdb: cdb.inquiry(255, 1, 0xb0) })).readBigUInt64BE(36));
  const blocks = (64 << 20) / BS;
  assert.ok(max < blocks, 'this LUN is larger than the maximum');
  badCdb(await run(t, { cdb: cdb.writeSame16(0, 0), data: blk }));
  badCdb(await run(t, { cdb: cdb.writeSame16(blocks - (max + 1), 0), data: blk }));
  assert.is((await run(t, { cdb: cdb.writeSame16(blocks - max, 0, 0x08), data: blk })).status, ScsiStatus.Good);
  badCdb(await run(t, { cdb: cdb.writeSame16(0, max + 1, 0x08), data: blk }));
});

test('COMPARE AND WRITE: writes on a match; on a miscompare writes nothing and reports the offset', async () => {
  const t = await ready();
  const a = new Uint8Array(4 * BS).fill(0x41);
  await run(t, { cdb: cdb.write16(20, 4), data: a });
  const buf = new Uint8Array(8 * BS);
  buf.fill(0x41, 0, 4 * BS);
  buf.fill(0x42, 4 * BS);
  const ok = await run(t, { cdb: cdb.compareAndWrite(20, 4), data: buf, split: 700 });
  assert.is(ok.status, ScsiStatus.Good);
  assert.ok(data(await run(t, { cdb: cdb.read16(20, 4) })).every((b) => b === 0x42));
  // The blocks now hold 'B'; compare against 'B' except one byte.
  const cmp = new Uint8Array(8 * BS).fill(0x42);
  cmp[4 * BS - 27] = 0x43;
  cmp.fill(0x44, 4 * BS);
  const s = expectCheck(await run(t, { cdb: cdb.compareAndWrite(20, 4), data: cmp }), 0xe, 0x1d, 0x00);
  assert.is(s.info, 4 * BS - 27);
  assert.ok(data(await run(t, { cdb: cdb.read16(20, 4) })).every((b) => b === 0x42), 'nothing written');
});

test('COMPARE AND WRITE checks: 0 blocks do nothing, Data-Out must be twice the blocks, range, maximum length', async () => {
  const t = await ready();
  assert.is((await run(t, { cdb: cdb.compareAndWrite(0, 0) })).status, ScsiStatus.Good);
  badCdb(await run(t, { cdb: cdb.compareAndWrite(0, 1), data: new Uint8Array(4 * BS) }));
  badCdb(await run(t, { cdb: cdb.compareAndWrite(0, 3), data: new Uint8Array(4 * BS) }));
  oob(await run(t, { cdb: cdb.compareAndWrite(LAST, 2), data: new Uint8Array(4 * BS) }));
  const max = data(await run(t, { cdb: cdb.inquiry(255, 1, 0xb0) }))[5];
  // 256 blocks do not fit the one-byte field: NUMBER OF LOGICAL BLOCKS reads 0 while 512 blocks
  // of Data-Out arrive (libiscsi CompareAndWrite.Simple expects INVALID FIELD IN CDB past the maximum).
  badCdb(await run(t, { cdb: cdb.compareAndWrite(0, 256 & 0xff), data: new Uint8Array(512 * BS) }));
  assert.is(max, 255);
  badCdb(await run(t, { cdb: cdb.compareAndWrite(0, 1, 0x20), data: new Uint8Array(2 * BS) }));
});

test('ORWRITE: each block becomes old OR new', async () => {
  const t = await ready();
  await run(t, { cdb: cdb.write10(0, 2), data: new Uint8Array(2 * BS).fill(0xa5) });
  assert.is((await run(t, { cdb: cdb.orWrite(0, 2), data: new Uint8Array(2 * BS).fill(0x5a) })).status, ScsiStatus.Good);
  assert.ok(data(await run(t, { cdb: cdb.read10(0, 2) })).every((b) => b === 0xff));
  assert.is((await run(t, { cdb: cdb.orWrite(LAST, 1), data: new Uint8Array(BS).fill(1) })).status, ScsiStatus.Good);
  assert.ok(data(await run(t, { cdb: cdb.read10(LAST, 1) })).every((b) => b === 1), 'OR with an unwritten (zero) block');
  oob(await run(t, { cdb: cdb.orWrite(2n ** 63n, 0) }));
  assert.is((await run(t, { cdb: cdb.orWrite(0, 0) })).status, ScsiStatus.Good);
});

test('PREVENT ALLOW MEDIUM REMOVAL: PREVENT 0/1 GOOD, 2/3 (obsolete) INVALID FIELD IN CDB', async () => {
  const t = await ready();
  assert.is((await run(t, { cdb: cdb.preventAllow(1) })).status, ScsiStatus.Good);
  assert.is((await run(t, { cdb: cdb.preventAllow(0) })).status, ScsiStatus.Good);
  badCdb(await run(t, { cdb: cdb.preventAllow(2) }));
});

test('4096-byte blocks: capacity, round-trip, partial Data-Out', async () => {
  const t = await ready(16 << 20, 4096);
  const rc = data(await run(t, { cdb: cdb.readCapacity16(32) }));
  assert.equal([Number(rc.readBigUInt64BE(0)), rc.readUInt32BE(8)], [4095, 4096]);
  const p = pattern(3 * 4096, 5);
  await run(t, { cdb: cdb.write10(4093, 3), data: p, split: 1448 });
  assert.equal(data(await run(t, { cdb: cdb.read10(4093, 3) })), Buffer.from(p));
  oob(await run(t, { cdb: cdb.read10(4094, 3) }));
});

test('growing a LUN: CAPACITY DATA HAS CHANGED for every nexus, data and provisioning kept, the new blocks usable', async () => {
  const t = await ready(BS * 1000);
  await clearUa(t, NEXUS_B);
  const p = pattern(4 * BS, 31);
  await run(t, { cdb: cdb.write10(996, 4), data: p });
  assert.throws(() => t.resize(0, BS * 999), /not smaller/);
  t.resize(0, BS * 5000);
  expectCheck(await run(t, { cdb: cdb.readCapacity10() }), 0x6, 0x2a, 0x09);
  expectCheck(await run(t, { cdb: cdb.tur(), nexus: NEXUS_B }), 0x6, 0x2a, 0x09);
  assert.is(data(await run(t, { cdb: cdb.readCapacity10() })).readUInt32BE(0), 4999);
  assert.equal(data(await run(t, { cdb: cdb.read10(996, 4) })), Buffer.from(p));
  assert.ok(data(await run(t, { cdb: cdb.read10(1000, 8) })).every((b) => b === 0));
  assert.is((await run(t, { cdb: cdb.write10(4999, 1), data: p.subarray(0, BS) })).status, ScsiStatus.Good);
  assert.equal((await lbaStatus(t, 990)).slice(0, 3), [[990, 6, 1], [996, 4, 0], [1000, 3999, 1]]);
});

test.run();

/**
 * SCSI layer of the iSCSI target, SPC-4 part: INQUIRY (standard and VPD), REPORT LUNS, REPORT
 * SUPPORTED OPERATION CODES, REQUEST SENSE, TEST UNIT READY, unsupported commands and LUNs, and
 * the power-on unit attention. Expectations come from SPC-4/SAM-5 and from what libiscsi 1.19's
 * iscsi-test-cu checks (test_inquiry_*.c, test_report_supported_opcodes_*.c).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createScsiTarget } from '../examples/iscsi/scsi/target';
import { ScsiStatus } from '../examples/iscsi/scsi/types';
import { run, data, parseSense, cdb, clearUa, NEXUS_A, NEXUS_B, expectCheck } from './lib/scsi';

const IQN = 'iqn.2024-01.org.example:disk1';
const MiB = 1 << 20;

function target() {
  return createScsiTarget({ iqn: IQN, luns: [{ lun: 0, size: 64 * MiB }, { lun: 1, size: 8 * MiB, serial: 'SER-0001' }, { lun: 300, size: MiB }] });
}

async function ready() {
  const t = target();
  await clearUa(t, NEXUS_A, 0);
  await clearUa(t, NEXUS_A, 1);
  return t;
}


test('the first command of a new I_T nexus reports POWER ON, RESET, OR BUS DEVICE RESET OCCURRED once (SAM-5)', async () => {
  const t = target();
  const r1 = await run(t, { cdb: cdb.tur() });
  const s = expectCheck(r1, 0x6, 0x29, 0x00);
  assert.is(s.format, 'fixed', 'D_SENSE is 0 by default: fixed format (70h)');
  assert.is((await run(t, { cdb: cdb.tur() })).status, ScsiStatus.Good);
  // Another nexus has its own condition; LUN 1 its own too (per I_T_L).
  expectCheck(await run(t, { cdb: cdb.tur(), nexus: NEXUS_B }), 0x6, 0x29, 0x00);
  expectCheck(await run(t, { lun: 1, cdb: cdb.tur() }), 0x6, 0x29, 0x00);
});

test('INQUIRY, REPORT LUNS and REQUEST SENSE neither report nor clear a pending unit attention', async () => {
  const t = target();
  assert.is((await run(t, { cdb: cdb.inquiry(96) })).status, ScsiStatus.Good);
  assert.is((await run(t, { cdb: cdb.reportLuns(256) })).status, ScsiStatus.Good);
  const rs = await run(t, { cdb: cdb.requestSense(252) });
  assert.is(rs.status, ScsiStatus.Good);
  assert.is(parseSense(data(rs)).key, 0, 'REQUEST SENSE data: NO SENSE');
  expectCheck(await run(t, { cdb: cdb.tur() }), 0x6, 0x29, 0x00);
  assert.is((await run(t, { cdb: cdb.tur() })).status, ScsiStatus.Good);
});

test('standard INQUIRY data: direct access, SPC-4 version, format 2, ASCII ids, SPC-4 and SBC-3 version descriptors', async () => {
  const t = await ready();
  const r = await run(t, { cdb: cdb.inquiry(260) });
  assert.is(r.status, ScsiStatus.Good);
  const d = data(r);
  assert.ok(d.length >= 36);
  assert.is(d[0], 0x00, 'peripheral qualifier 0, device type 0 (SBC)');
  assert.is(d[2], 0x06, 'VERSION: SPC-4');
  assert.is(d[3] & 0x0f, 2, 'RESPONSE DATA FORMAT 2');
  assert.is(d[3] & 0x80, 0, 'no AERC (SPC-3+)');
  assert.is(d[3] & 0x40, 0, 'no TRMTSK (SPC-2+)');
  assert.is(d[4], d.length - 5, 'ADDITIONAL LENGTH covers the rest');
  assert.is(d[5] & 0x01, 0, 'PROTECT = 0');
  for (let i = 8; i < 36; i++) assert.ok(d[i] === 0 || (d[i] >= 0x20 && d[i] <= 0x7e), `byte ${i} is ASCII`);
  assert.is(d.subarray(8, 16).toString('ascii'), 'XDPSTACK');
  const versions = [];
  for (let i = 58; i + 1 < Math.min(74, d.length); i += 2) versions.push(d.readUInt16BE(i));
  assert.ok(versions.includes(0x0460), 'claims SPC-4 (0460h)');
  assert.ok(versions.includes(0x04c0), 'claims SBC-3 (04C0h)');
});

test('INQUIRY allocation length truncates (5..255, and 511 gives what 512 gives)', async () => {
  const t = await ready();
  const full = data(await run(t, { cdb: cdb.inquiry(512) }));
  for (const n of [5, 36, 95, 96, 200, 255]) {
    const d = data(await run(t, { cdb: cdb.inquiry(n) }));
    assert.equal(d, full.subarray(0, Math.min(n, full.length)), `alloc ${n}`);
  }
  assert.equal(data(await run(t, { cdb: cdb.inquiry(511) })), full);
  assert.is((await run(t, { cdb: cdb.inquiry(0) })).dataIn?.length ?? 0, 0, 'allocation length 0: no data, not an error');
});

test('INQUIRY: EVPD = 0 with a page code, CmdDt, and an unknown VPD page are INVALID FIELD IN CDB', async () => {
  const t = await ready();
  let s = expectCheck(await run(t, { cdb: cdb.inquiry(256, 0, 1) }), 0x5, 0x24, 0x00);
  assert.equal(s.field, { cdb: true, byte: 2, bit: undefined });
  s = expectCheck(await run(t, { cdb: cdb.inquiry(256, 0, 0, 0x02) }), 0x5, 0x24, 0x00);
  assert.is(s.field?.byte, 1);
  expectCheck(await run(t, { cdb: cdb.inquiry(256, 1, 0x99) }), 0x5, 0x24, 0x00);
});

test('VPD 00h lists 00h, 80h, 83h, B0h, B1h, B2h in ascending order and every listed page answers', async () => {
  const t = await ready();
  const d = data(await run(t, { cdb: cdb.inquiry(255, 1, 0x00) }));
  assert.is(d[1], 0x00);
  const pages = [...d.subarray(4, 4 + d.readUInt16BE(2))];
  assert.equal(pages, [0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2]);
  for (const p of pages) {
    const r = await run(t, { cdb: cdb.inquiry(255, 1, p) });
    assert.is(r.status, ScsiStatus.Good, `page ${p.toString(16)}`);
    const v = data(r);
    assert.is(v[0], 0x00, 'peripheral qualifier/type');
    assert.is(v[1], p, 'PAGE CODE');
    assert.is(v.readUInt16BE(2) + 4, v.length, 'PAGE LENGTH matches the data (alloc 255 is enough)');
  }
});

test('VPD 80h: unit serial number, configured or derived (stable, different per LUN)', async () => {
  const t = await ready();
  const s1 = data(await run(t, { lun: 1, cdb: cdb.inquiry(255, 1, 0x80) }));
  assert.is(s1.subarray(4).toString('ascii'), 'SER-0001');
  const s0 = data(await run(t, { cdb: cdb.inquiry(255, 1, 0x80) })).subarray(4).toString('ascii');
  assert.match(s0, /^[\x21-\x7e]+$/);
  const again = target();
  const s0b = data(await run(again, { cdb: cdb.inquiry(255, 1, 0x80) })).subarray(4).toString('ascii');
  assert.is(s0b, s0, 'derived from IQN and LUN: the same after a restart');
  const s300 = data(await run(t, { lun: 300, cdb: cdb.inquiry(255, 1, 0x80) })).subarray(4).toString('ascii');
  assert.is.not(s300, s0);
});

interface Designator { proto: number; codeSet: number; piv: boolean; assoc: number; type: number; value: Buffer }
function designators(page: Buffer): Designator[] {
  const out: Designator[] = [];
  let p = 4;
  const end = 4 + page.readUInt16BE(2);
  while (p + 4 <= end) {
    const len = page[p + 3];
    out.push({
      proto: page[p] >> 4, codeSet: page[p] & 0x0f, piv: (page[p + 1] & 0x80) !== 0, assoc: (page[p + 1] >> 4) & 3,
      type: page[p + 1] & 0x0f, value: page.subarray(p + 4, p + 4 + len),
    });
    p += 4 + len;
  }
  assert.is(p, end, 'designators fill the page exactly');
  return out;
}

test('VPD 83h: NAA and T10 vendor ID for the LU; relative port, port group and SCSI names for the iSCSI port', async () => {
  const t = await ready();
  const ds = designators(data(await run(t, { cdb: cdb.inquiry(255, 1, 0x83) })));
  const naa = ds.find((d) => d.assoc === 0 && d.type === 3);
  assert.ok(naa, 'an NAA designator associated with the logical unit (libiscsi multipath check)');
  assert.is(naa!.codeSet, 1, 'binary');
  assert.is(naa!.value.length, 8);
  assert.is(naa!.value[0] >> 4, 3, 'NAA 3h: locally assigned');
  const t10 = ds.find((d) => d.assoc === 0 && d.type === 1)!;
  assert.is(t10.codeSet, 2, 'ASCII');
  assert.is(t10.value.subarray(0, 8).toString('ascii'), 'XDPSTACK', 'T10 VENDOR IDENTIFICATION first');
  const rel = ds.find((d) => d.type === 4)!;
  assert.equal([rel.proto, rel.piv, rel.assoc, rel.value.readUInt16BE(2)], [5, true, 1, 1], 'relative target port 1, iSCSI');
  const tpg = ds.find((d) => d.type === 5)!;
  assert.equal([tpg.proto, tpg.piv, tpg.assoc], [5, true, 1]);
  const names = ds.filter((d) => d.type === 8);
  assert.ok(names.some((d) => d.assoc === 1 && d.value.toString('utf8').replace(/\0+$/, '') === `${IQN},t,0x0001`));
  assert.ok(names.every((d) => d.codeSet === 3 && d.value.length % 4 === 0 && d.value[d.value.length - 1] === 0));
  const other = designators(data(await run(t, { lun: 1, cdb: cdb.inquiry(255, 1, 0x83) }))).find((d) => d.assoc === 0 && d.type === 3)!;
  assert.is.not(other.value.toString('hex'), naa!.value.toString('hex'), 'each LU its own NAA identifier');
});

test('VPD B0h (block limits, SBC-3 length 3Ch), B1h (non-rotating) and B2h (thin: LBPU, LBPWS, LBPWS10, LBPRZ)', async () => {
  const t = await ready();
  const bl = data(await run(t, { cdb: cdb.inquiry(255, 1, 0xb0) }));
  assert.is(bl.readUInt16BE(2), 0x3c);
  assert.is(bl[4] & 1, 0, 'WSNZ = 0');
  const maxXfer = bl.readUInt32BE(8);
  assert.ok(maxXfer >= 256, 'MAXIMUM TRANSFER LENGTH allows the 256-block tests');
  const maxUnmap = bl.readUInt32BE(20), maxDesc = bl.readUInt32BE(24);
  assert.ok(maxUnmap > 0 && maxUnmap <= 1024 * 1024, 'MAXIMUM UNMAP LBA COUNT > 0 and sane (libiscsi)');
  assert.ok(maxDesc > 0 && maxDesc <= 1024 * 1024, 'MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT > 0 and sane');
  assert.ok(Number(bl.readBigUInt64BE(36)) >= 256, 'MAXIMUM WRITE SAME LENGTH');
  assert.ok(bl[5] > 0, 'MAXIMUM COMPARE AND WRITE LENGTH');
  const bdc = data(await run(t, { cdb: cdb.inquiry(255, 1, 0xb1) }));
  assert.is(bdc.readUInt16BE(4), 1, 'MEDIUM ROTATION RATE 1: non-rotating');
  const lbp = data(await run(t, { cdb: cdb.inquiry(255, 1, 0xb2) }));
  assert.is(lbp[5] & 0xe4, 0xe4, 'LBPU, LBPWS, LBPWS10, LBPRZ');
  assert.is(lbp[5] & 0x02, 0, 'ANC_SUP = 0');
  assert.is(lbp[6] & 0x07, 2, 'PROVISIONING TYPE: thin');
});

test('REPORT LUNS: the inventory with peripheral and flat addressing; SELECT REPORT; allocation length < 16 is invalid', async () => {
  const t = await ready();
  const d = data(await run(t, { cdb: cdb.reportLuns(1024) }));
  assert.is(d.readUInt32BE(0), 24, 'LUN LIST LENGTH: three LUNs');
  assert.equal([...d.subarray(8, 16)], [0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal([...d.subarray(16, 24)], [0, 1, 0, 0, 0, 0, 0, 0]);
  assert.equal([...d.subarray(24, 32)], [0x41, 0x2c, 0, 0, 0, 0, 0, 0], 'LUN 300: flat space addressing');
  const wk = data(await run(t, { cdb: cdb.reportLuns(1024, 1) }));
  assert.is(wk.readUInt32BE(0), 0, 'no well known logical units');
  assert.is(data(await run(t, { cdb: cdb.reportLuns(1024, 2) })).readUInt32BE(0), 24);
  expectCheck(await run(t, { cdb: cdb.reportLuns(1024, 3) }), 0x5, 0x24, 0x00);
  expectCheck(await run(t, { cdb: cdb.reportLuns(15) }), 0x5, 0x24, 0x00);
  const short = data(await run(t, { cdb: cdb.reportLuns(16) }));
  assert.is(short.length, 16);
  assert.is(short.readUInt32BE(0), 24, 'LUN LIST LENGTH is not cut by the allocation length');
});

test('a LUN that does not exist: INQUIRY qualifier 011b, REPORT LUNS works, REQUEST SENSE and others say LOGICAL UNIT NOT SUPPORTED', async () => {
  const t = target();
  const inq = data(await run(t, { lun: 7, cdb: cdb.inquiry(96) }));
  assert.is(inq[0], 0x7f);
  assert.is(data(await run(t, { lun: 7, cdb: cdb.reportLuns(64) })).readUInt32BE(0), 24);
  const rs = await run(t, { lun: 7, cdb: cdb.requestSense(18) });
  assert.is(rs.status, ScsiStatus.Good);
  const s = parseSense(data(rs));
  assert.equal([s.key, s.asc, s.ascq], [0x5, 0x25, 0x00]);
  expectCheck(await run(t, { lun: 7, cdb: cdb.tur() }), 0x5, 0x25, 0x00);
  expectCheck(await run(t, { lun: 7, cdb: cdb.read10(0, 1) }), 0x5, 0x25, 0x00);
});

test('unsupported operation codes: ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE; unknown service action, NACA: INVALID FIELD IN CDB', async () => {
  const t = await ready();
  for (const op of [0x04 /* FORMAT UNIT */, 0x3b /* WRITE BUFFER */, 0x83 /* EXTENDED COPY */, 0x9c /* WRITE ATOMIC(16) */, 0xc0, 0xff]) {
    expectCheck(await run(t, { cdb: [op, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] }), 0x5, 0x20, 0x00);
  }
  const s = expectCheck(await run(t, { cdb: [0x9e, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0] }), 0x5, 0x24, 0x00);
  assert.is(s.field?.byte, 1, 'field pointer at the service action (libiscsi: "not implemented")');
  expectCheck(await run(t, { cdb: [0x00, 0, 0, 0, 0, 0x04] }), 0x5, 0x24, 0x00);
  assert.ok((t.counters.get('invalid-opcode') ?? 0) >= 6, 'counted with a reason');
});

test('REPORT SUPPORTED OPERATION CODES, all commands: lengths by group code, SERVACTV only with service actions, RCTD timeouts', async () => {
  const t = await ready();
  const d = data(await run(t, { cdb: cdb.rsoc(0) }));
  const len = d.readUInt32BE(0);
  assert.is(len + 4, d.length);
  const seen = new Set<string>();
  for (let o = 4; o < d.length; o += 8) {
    const op = d[o], sa = d.readUInt16BE(o + 2), servactv = d[o + 5] & 1, cdbLen = d.readUInt16BE(o + 6);
    const group = op >> 5;
    const expect = group === 0 ? 6 : group <= 2 ? 10 : group === 4 ? 16 : 12;
    assert.is(cdbLen, expect, `CDB LENGTH of ${op.toString(16)}`);
    if (!servactv) assert.is(sa, 0, 'no service action without SERVACTV');
    assert.is(d[o + 5] & 2, 0, 'CTDP = 0 without RCTD');
    seen.add(servactv ? `${op.toString(16)}/${sa.toString(16)}` : op.toString(16));
  }
  for (const k of ['0', '12', '28', '2a', '88', '8a', '89', '41', '93', '42', '9e/10', '9e/12', 'a0', 'a3/c', '5e/0', '5f/6', '1a', '5a', '15', '35', '91']) {
    assert.ok(seen.has(k), `lists ${k}`);
  }
  const r = data(await run(t, { cdb: cdb.rsoc(0, 0, 0, 65535, true) }));
  for (let o = 4; o < r.length; o += 20) {
    assert.is(r[o + 5] & 2, 2, 'CTDP');
    assert.is(r.readUInt16BE(o + 8), 0x0a, 'timeouts descriptor length 0Ah');
  }
  assert.is((await run(t, { cdb: cdb.rsoc(0, 0, 0, 1024) })).status, ScsiStatus.Good);
});

test('REPORT SUPPORTED OPERATION CODES, one command: usage data with DPO/FUA; options checked against service actions', async () => {
  const t = await ready();
  const one = data(await run(t, { cdb: cdb.rsoc(1, 0x28) }));
  assert.is(one[1] & 0x07, 3, 'SUPPORT 011b');
  assert.is(one.readUInt16BE(2), 10);
  assert.is(one[4], 0x28, 'usage data starts with the operation code');
  assert.is(one[5] & 0x18, 0x18, 'DPO and FUA (libiscsi *_dpofua tests)');
  assert.is(data(await run(t, { cdb: cdb.rsoc(1, 0x2f) }))[5] & 0x10, 0x10, 'VERIFY(10): DPO');
  let s = expectCheck(await run(t, { cdb: cdb.rsoc(1, 0x9e, 0x10) }), 0x5, 0x24, 0x00);
  assert.is.not(s.field?.byte, 1, 'not the "not implemented" pointer libiscsi looks for');
  s = expectCheck(await run(t, { cdb: cdb.rsoc(2, 0x28) }), 0x5, 0x24, 0x00);
  const rc16 = data(await run(t, { cdb: cdb.rsoc(2, 0x9e, 0x10) }));
  assert.equal([rc16[1] & 7, rc16.readUInt16BE(2), rc16[4], rc16[5] & 0x1f], [3, 16, 0x9e, 0x1f]);
  const none = data(await run(t, { cdb: cdb.rsoc(1, 0xc0) }));
  assert.is(none[1] & 7, 1, 'SUPPORT 001b: not supported');
  const timed = data(await run(t, { cdb: cdb.rsoc(1, 0x2a, 0, 65535, true) }));
  assert.is(timed[1] & 0x80, 0x80, 'CTDP');
  assert.is(timed.readUInt16BE(4 + 10), 0x0a);
  expectCheck(await run(t, { cdb: cdb.rsoc(5, 0x28) }), 0x5, 0x24, 0x00);
});

test('REQUEST SENSE: NO SENSE in fixed or descriptor format (DESC), cut to the allocation length', async () => {
  const t = await ready();
  const f = data(await run(t, { cdb: cdb.requestSense(252) }));
  assert.is(f[0] & 0x7f, 0x70);
  assert.is(f.length, 18);
  assert.equal([f[2] & 0xf, f[12], f[13]], [0, 0, 0]);
  const d = data(await run(t, { cdb: cdb.requestSense(252, true) }));
  assert.is(d[0], 0x72);
  assert.is(data(await run(t, { cdb: cdb.requestSense(8) })).length, 8);
});

test('TEST UNIT READY: GOOD when started; a stopped unit is NOT READY, INITIALIZING COMMAND REQUIRED until started', async () => {
  const t = await ready();
  assert.is((await run(t, { cdb: cdb.tur() })).status, ScsiStatus.Good);
  assert.is((await run(t, { cdb: cdb.startStop(0x00) })).status, ScsiStatus.Good, 'STOP');
  expectCheck(await run(t, { cdb: cdb.tur() }), 0x2, 0x04, 0x02);
  expectCheck(await run(t, { cdb: cdb.read10(0, 1) }), 0x2, 0x04, 0x02);
  assert.is((await run(t, { cdb: cdb.inquiry(36) })).status, ScsiStatus.Good, 'INQUIRY still answers');
  const rs = parseSense(data(await run(t, { cdb: cdb.requestSense(18) })));
  assert.equal([rs.key, rs.asc, rs.ascq], [0x2, 0x04, 0x02], 'REQUEST SENSE reports the state');
  assert.is((await run(t, { cdb: cdb.startStop(0x01) })).status, ScsiStatus.Good, 'START');
  assert.is((await run(t, { cdb: cdb.tur() })).status, ScsiStatus.Good);
  expectCheck(await run(t, { cdb: cdb.startStop(0x40) }), 0x5, 0x24, 0x00);
});

test('a handler that throws ends its command with HARDWARE ERROR, INTERNAL TARGET FAILURE, and the target keeps working', async () => {
  const t = await ready();
  const lu = t.unit(0)!;
  const orig = lu.backend.read;
  lu.backend.read = () => { throw new Error('injected'); };
  expectCheck(await run(t, { cdb: cdb.read10(0, 1) }), 0x4, 0x44, 0x00);
  lu.backend.read = orig;
  assert.is((await run(t, { cdb: cdb.read10(0, 1) })).status, ScsiStatus.Good);
  assert.is(t.counters.get('internal-failure'), 1);
});

test.run();

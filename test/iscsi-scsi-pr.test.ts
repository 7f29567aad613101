/**
 * SCSI layer of the iSCSI target: persistent reservations with two I_T nexuses (SPC-4 PERSISTENT
 * RESERVE IN/OUT and the tables of commands allowed under each reservation type), RESERVE(6)/
 * RELEASE(6) (SPC-2), and unit attentions around resets and nexus loss (SAM-5). The access and
 * ownership matrices are those of libiscsi 1.19 test_prout_reserve_access.c / _ownership.c.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createScsiTarget } from '../examples/iscsi/scsi/target';
import { ScsiStatus } from '../examples/iscsi/scsi/types';
import { run, data, parseSense, cdb, clearUa, prParams, NEXUS_A, NEXUS_B, expectCheck } from './lib/scsi';

const BS = 512;
type T = Awaited<ReturnType<typeof ready>>;
const KA = 0x1122334455667788n;
const KB = 0x0a0b0c0d0e0f1011n;

const enum Sa { Register = 0, Reserve = 1, Release = 2, Clear = 3, Preempt = 4, PreemptAbort = 5, RegisterIgnore = 6 }
const WE = 1, EA = 3, WE_RO = 5, EA_RO = 6, WE_AR = 7, EA_AR = 8;

async function ready() {
  const t = createScsiTarget({ iqn: 'iqn.2024-01.org.example:pr', luns: [{ lun: 0, size: 1 << 20 }] });
  await clearUa(t, NEXUS_A);
  await clearUa(t, NEXUS_B);
  return t;
}

function prOut(t: T, nexus: string, sa: number, key: bigint, sark: bigint, type = 0, flags = 0) {
  return run(t, { cdb: cdb.prOut(sa, type), data: prParams(key, sark, flags), nexus });
}
async function keys(t: T, nexus = NEXUS_A): Promise<{ gen: number; keys: bigint[] }> {
  const d = data(await run(t, { cdb: cdb.prIn(0), nexus }));
  const n = d.readUInt32BE(4) / 8;
  return { gen: d.readUInt32BE(0), keys: Array.from({ length: n }, (_, i) => d.readBigUInt64BE(8 + 8 * i)) };
}
async function reservation(t: T, nexus = NEXUS_A): Promise<{ key: bigint; type: number } | null> {
  const d = data(await run(t, { cdb: cdb.prIn(1), nexus }));
  if (d.readUInt32BE(4) === 0) return null;
  assert.is(d.readUInt32BE(4), 16);
  return { key: d.readBigUInt64BE(8), type: d[21] & 0x0f };
}
const good = (r: { status: number }) => assert.is(r.status, ScsiStatus.Good);
const conflict = (r: { status: number }) => assert.is(r.status, ScsiStatus.ReservationConflict);

test('REGISTER / REGISTER AND IGNORE EXISTING KEY: keys listed, PRGENERATION counts, re-register with a wrong key conflicts', async () => {
  const t = await ready();
  const g0 = (await keys(t)).gen;
  good(await prOut(t, NEXUS_A, Sa.RegisterIgnore, 0n, KA));
  assert.equal(await keys(t), { gen: g0 + 1, keys: [KA] });
  conflict(await prOut(t, NEXUS_A, Sa.Register, 0n, KA + 1n));
  good(await prOut(t, NEXUS_B, Sa.Register, 0n, KB));
  assert.equal((await keys(t, NEXUS_B)).keys, [KA, KB]);
  good(await prOut(t, NEXUS_A, Sa.Register, KA, KA + 5n));
  assert.equal((await keys(t)).keys, [KA + 5n, KB], 'key replaced in place');
  good(await prOut(t, NEXUS_A, Sa.Register, KA + 5n, 0n));
  good(await prOut(t, NEXUS_B, Sa.RegisterIgnore, 0n, 0n));
  assert.equal(await keys(t), { gen: g0 + 5, keys: [] });
  const g = (await keys(t)).gen;
  good(await prOut(t, NEXUS_A, Sa.Register, 0n, 0n));
  assert.is((await keys(t)).gen, g, 'unregistering an unregistered nexus changes nothing');
  conflict(await prOut(t, NEXUS_A, Sa.Register, 7n, KA));
});

test('PR IN: READ KEYS ADDITIONAL LENGTH is not cut by the allocation length; SAs 0-3 work, 4-1Fh are invalid; REPORT CAPABILITIES', async () => {
  const t = await ready();
  good(await prOut(t, NEXUS_A, Sa.RegisterIgnore, 0n, KA));
  const d = data(await run(t, { cdb: cdb.prIn(0, 8) }));
  assert.is(d.length, 8);
  assert.is(d.readUInt32BE(4), 8);
  for (let sa = 0; sa < 4; sa++) good(await run(t, { cdb: cdb.prIn(sa) }));
  for (let sa = 4; sa < 0x20; sa++) expectCheck(await run(t, { cdb: cdb.prIn(sa) }), 0x5, 0x24, 0x00);
  const caps = data(await run(t, { cdb: cdb.prIn(2) }));
  assert.is(caps.readUInt16BE(0), 8, 'LENGTH');
  assert.ok(((caps[3] >> 4) & 7) <= 5, 'ALLOW COMMANDS');
  assert.is(caps.readUInt16BE(4), (1 << 15) | (1 << 14) | (1 << 13) | (1 << 11) | (1 << 9) | 1, 'all six types');
  assert.is(caps[2] & 0x0d, 0, 'no SIP_C, ATP_C, PTPL_C');
});

test('RESERVE and RELEASE each type; READ RESERVATION shows the holder key (zero for all-registrants types)', async () => {
  const t = await ready();
  good(await prOut(t, NEXUS_A, Sa.RegisterIgnore, 0n, KA));
  const g = (await keys(t)).gen;
  for (const type of [WE, EA, WE_RO, EA_RO, WE_AR, EA_AR]) {
    good(await prOut(t, NEXUS_A, Sa.Reserve, KA, 0n, type));
    assert.equal(await reservation(t), { key: type >= WE_AR ? 0n : KA, type });
    good(await prOut(t, NEXUS_A, Sa.Reserve, KA, 0n, type)); // same holder, same type: no change
    good(await prOut(t, NEXUS_A, Sa.Release, KA, 0n, type));
    assert.is(await reservation(t), null);
  }
  assert.is((await keys(t)).gen, g, 'RESERVE and RELEASE do not count');
  expectCheck(await prOut(t, NEXUS_A, Sa.Reserve, KA, 0n, 2), 0x5, 0x24, 0x00);
  conflict(await prOut(t, NEXUS_A, Sa.Reserve, KA + 1n, 0n, WE));
  conflict(await prOut(t, NEXUS_B, Sa.Reserve, 0n, 0n, WE));
});

/** libiscsi verify_persistent_reserve_access: [registered B read, write, unregistered B read, write]. */
const ACCESS: [number, string, boolean[]][] = [
  [EA, 'EA', [false, false, false, false]],
  [WE, 'WE', [true, false, true, false]],
  [EA_RO, 'EA-RO', [true, true, false, false]],
  [WE_RO, 'WE-RO', [true, true, true, false]],
  [EA_AR, 'EA-AR', [true, true, false, false]],
  [WE_AR, 'WE-AR', [true, true, true, false]],
];

for (const [type, name, expect] of ACCESS) {
  test(`access under ${name}: the holder reads and writes; other nexuses as SPC-4 allows`, async () => {
    const t = await ready();
    const rd = (n: string) => run(t, { cdb: cdb.read10(1, 1), nexus: n });
    const wr = (n: string) => run(t, { cdb: cdb.write10(1, 1), data: new Uint8Array(BS), nexus: n });
    const ok = (r: { status: number }) => r.status === ScsiStatus.Good;
    good(await prOut(t, NEXUS_A, Sa.RegisterIgnore, 0n, KA));
    good(await prOut(t, NEXUS_B, Sa.RegisterIgnore, 0n, KB));
    good(await prOut(t, NEXUS_A, Sa.Reserve, KA, 0n, type));
    good(await rd(NEXUS_A));
    good(await wr(NEXUS_A));
    const got = [ok(await rd(NEXUS_B)), ok(await wr(NEXUS_B))];
    const denied = await wr(NEXUS_B);
    if (!ok(denied)) conflict(denied);
    good(await prOut(t, NEXUS_B, Sa.Register, KB, 0n));
    got.push(ok(await rd(NEXUS_B)), ok(await wr(NEXUS_B)));
    assert.equal(got, expect);
    // TEST UNIT READY, INQUIRY, READ CAPACITY and the PR commands themselves always pass.
    for (const c of [cdb.tur(), cdb.inquiry(36), cdb.readCapacity10(), cdb.prIn(0), cdb.reportLuns(64)]) good(await run(t, { cdb: c, nexus: NEXUS_B }));
    good(await prOut(t, NEXUS_A, Sa.Release, KA, 0n, type));
    good(await wr(NEXUS_B));
  });
}

test('under Exclusive Access by another nexus: START (START = 1) and PREVENT = 0 pass; STOP and a prevent conflict', async () => {
  const t = await ready();
  good(await prOut(t, NEXUS_A, Sa.RegisterIgnore, 0n, KA));
  good(await prOut(t, NEXUS_A, Sa.Reserve, KA, 0n, EA));
  good(await run(t, { cdb: cdb.startStop(0x01), nexus: NEXUS_B }));
  conflict(await run(t, { cdb: cdb.startStop(0x00), nexus: NEXUS_B }));
  good(await run(t, { cdb: cdb.preventAllow(0), nexus: NEXUS_B }));
  conflict(await run(t, { cdb: cdb.preventAllow(1), nexus: NEXUS_B }));
  good(await run(t, { cdb: cdb.preventAllow(1) }));
});

test('ownership: an all-registrants reservation outlives its reserver; others end when the holder unregisters', async () => {
  for (const type of [EA, WE, EA_RO, WE_RO, EA_AR, WE_AR]) {
    const t = await ready();
    good(await prOut(t, NEXUS_A, Sa.RegisterIgnore, 0n, KA));
    good(await prOut(t, NEXUS_B, Sa.RegisterIgnore, 0n, KB));
    good(await prOut(t, NEXUS_A, Sa.Reserve, KA, 0n, type));
    good(await prOut(t, NEXUS_A, Sa.Register, KA, 0n));
    if (type >= WE_AR) {
      assert.equal(await reservation(t), { key: 0n, type }, `type ${type} stays`);
      good(await prOut(t, NEXUS_B, Sa.Release, KB, 0n, type));
    } else {
      assert.is(await reservation(t), null, `type ${type} released`);
      const r = await run(t, { cdb: cdb.tur(), nexus: NEXUS_B });
      if (type === EA_RO || type === WE_RO) expectCheck(r, 0x6, 0x2a, 0x04); // RESERVATIONS RELEASED
      else good(r);
    }
    assert.is(await reservation(t), null);
  }
});

test('RELEASE: by a non-holder does nothing; with another type INVALID RELEASE OF PERSISTENT RESERVATION; RO release tells registrants', async () => {
  const t = await ready();
  good(await prOut(t, NEXUS_A, Sa.RegisterIgnore, 0n, KA));
  good(await prOut(t, NEXUS_B, Sa.RegisterIgnore, 0n, KB));
  good(await prOut(t, NEXUS_A, Sa.Reserve, KA, 0n, WE_RO));
  good(await prOut(t, NEXUS_B, Sa.Release, KB, 0n, WE_RO));
  assert.equal(await reservation(t), { key: KA, type: WE_RO });
  expectCheck(await prOut(t, NEXUS_A, Sa.Release, KA, 0n, EA), 0x5, 0x26, 0x04);
  conflict(await prOut(t, NEXUS_A, Sa.Release, KB, 0n, WE_RO));
  good(await prOut(t, NEXUS_A, Sa.Release, KA, 0n, WE_RO));
  expectCheck(await run(t, { cdb: cdb.tur(), nexus: NEXUS_B }), 0x6, 0x2a, 0x04);
  good(await run(t, { cdb: cdb.tur() }));
});

test('CLEAR: every registration and the reservation go, PRGENERATION + 1, RESERVATIONS PREEMPTED for the others', async () => {
  const t = await ready();
  good(await prOut(t, NEXUS_A, Sa.RegisterIgnore, 0n, KA));
  good(await prOut(t, NEXUS_B, Sa.RegisterIgnore, 0n, KB));
  good(await prOut(t, NEXUS_A, Sa.Reserve, KA, 0n, EA));
  const g = (await keys(t)).gen;
  conflict(await prOut(t, NEXUS_A, Sa.Clear, KB, 0n));
  good(await prOut(t, NEXUS_A, Sa.Clear, KA, 0n));
  assert.equal(await keys(t), { gen: g + 1, keys: [] });
  assert.is(await reservation(t), null);
  expectCheck(await run(t, { cdb: cdb.tur(), nexus: NEXUS_B }), 0x6, 0x2a, 0x03);
  good(await run(t, { cdb: cdb.tur() }));
});

test('PREEMPT without a reservation removes the registrations of the key (REGISTRATIONS PREEMPTED), PRGENERATION + 1', async () => {
  const t = await ready();
  good(await prOut(t, NEXUS_A, Sa.RegisterIgnore, 0n, KA));
  good(await prOut(t, NEXUS_B, Sa.RegisterIgnore, 0n, KB));
  const g = (await keys(t)).gen;
  good(await prOut(t, NEXUS_B, Sa.Preempt, KB, KA, EA));
  assert.equal(await keys(t, NEXUS_B), { gen: g + 1, keys: [KB] });
  expectCheck(await run(t, { cdb: cdb.tur() }), 0x6, 0x2a, 0x05);
  conflict(await prOut(t, NEXUS_B, Sa.Preempt, KB, 0x999n, EA));
  expectCheck(await prOut(t, NEXUS_B, Sa.Preempt, KB, 0n, EA), 0x5, 0x26, 0x00);
});

test("PREEMPT the holder's key: the reservation moves to the preempting nexus with the new type", async () => {
  const t = await ready();
  good(await prOut(t, NEXUS_A, Sa.RegisterIgnore, 0n, KA));
  good(await prOut(t, NEXUS_B, Sa.RegisterIgnore, 0n, KB));
  good(await prOut(t, NEXUS_A, Sa.Reserve, KA, 0n, WE));
  good(await prOut(t, NEXUS_B, Sa.PreemptAbort, KB, KA, EA));
  assert.equal(await reservation(t, NEXUS_B), { key: KB, type: EA });
  assert.equal((await keys(t, NEXUS_B)).keys, [KB]);
  expectCheck(await run(t, { cdb: cdb.tur() }), 0x6, 0x2a, 0x05);
  conflict(await run(t, { cdb: cdb.read10(0, 1) }), );
  // All-registrants reservation preempted with key 0: the others go, the preempter holds it.
  good(await prOut(t, NEXUS_A, Sa.RegisterIgnore, 0n, KA));
  good(await prOut(t, NEXUS_B, Sa.Release, KB, 0n, EA));
  good(await prOut(t, NEXUS_A, Sa.Reserve, KA, 0n, WE_AR));
  good(await prOut(t, NEXUS_B, Sa.Preempt, KB, 0n, EA));
  assert.equal(await reservation(t, NEXUS_B), { key: KB, type: EA });
  assert.equal((await keys(t, NEXUS_B)).keys, [KB]);
});

test('PERSISTENT RESERVE OUT checks: parameter list length 24, SPEC_I_PT / ALL_TG_PT / APTPL unsupported, unknown service action', async () => {
  const t = await ready();
  expectCheck(await run(t, { cdb: cdb.prOut(Sa.RegisterIgnore, 0, 20), data: prParams(0n, KA).subarray(0, 20) }), 0x5, 0x1a, 0x00);
  expectCheck(await prOut(t, NEXUS_A, Sa.RegisterIgnore, 0n, KA, 0, 0x01), 0x5, 0x26, 0x00);
  expectCheck(await prOut(t, NEXUS_A, Sa.RegisterIgnore, 0n, KA, 0, 0x04), 0x5, 0x26, 0x00);
  expectCheck(await prOut(t, NEXUS_A, Sa.RegisterIgnore, 0n, KA, 0, 0x08), 0x5, 0x26, 0x00);
  expectCheck(await prOut(t, NEXUS_A, 7, 0n, KA), 0x5, 0x24, 0x00);
  assert.equal((await keys(t)).keys, []);
});

test('READ FULL STATUS: one descriptor per registration with R_HOLDER and an iSCSI initiator port TransportID', async () => {
  const t = await ready();
  good(await prOut(t, NEXUS_A, Sa.RegisterIgnore, 0n, KA));
  good(await prOut(t, NEXUS_B, Sa.RegisterIgnore, 0n, KB));
  good(await prOut(t, NEXUS_A, Sa.Reserve, KA, 0n, WE));
  const d = data(await run(t, { cdb: cdb.prIn(3) }));
  assert.is(d.readUInt32BE(4) + 8, d.length);
  const found: [bigint, number, string][] = [];
  for (let o = 8; o < d.length;) {
    const idLen = d.readUInt32BE(o + 20);
    const tid = d.subarray(o + 24, o + 24 + idLen);
    assert.equal([tid[0], tid.readUInt16BE(2) + 4], [0x45, idLen], 'FORMAT CODE 01b, iSCSI; ADDITIONAL LENGTH');
    assert.is(idLen % 4, 0);
    found.push([d.readBigUInt64BE(o), d[o + 12] & 1, tid.subarray(4).toString('utf8').replace(/\0+$/, '')]);
    o += 24 + idLen;
  }
  assert.equal(found, [[KA, 1, NEXUS_A], [KB, 0, NEXUS_B]]);
});

test('persistent reservations survive a LUN reset, a target reset and the loss of the holder nexus', async () => {
  const t = await ready();
  good(await prOut(t, NEXUS_A, Sa.RegisterIgnore, 0n, KA));
  good(await prOut(t, NEXUS_A, Sa.Reserve, KA, 0n, EA));
  t.lunReset(0, NEXUS_B);
  t.targetReset(NEXUS_B);
  t.nexusLost(NEXUS_A);
  await clearUa(t, NEXUS_B);
  conflict(await run(t, { cdb: cdb.read10(0, 1), nexus: NEXUS_B }));
  assert.equal(await reservation(t, NEXUS_B), { key: KA, type: EA });
});

test('RESERVE(6)/RELEASE(6): exclusive to the holder; others conflict except INQUIRY, REPORT LUNS, REQUEST SENSE and RELEASE', async () => {
  const t = await ready();
  good(await run(t, { cdb: cdb.reserve6() }));
  good(await run(t, { cdb: cdb.reserve6() }));
  conflict(await run(t, { cdb: cdb.reserve6(), nexus: NEXUS_B }));
  good(await run(t, { cdb: cdb.release6(), nexus: NEXUS_B }));
  for (const c of [cdb.modeSense6(0x3f, 255), cdb.tur(), cdb.read10(0, 1), cdb.readCapacity10(), cdb.prIn(0)]) conflict(await run(t, { cdb: c, nexus: NEXUS_B }));
  for (const c of [cdb.inquiry(36), cdb.reportLuns(64), cdb.requestSense(18)]) good(await run(t, { cdb: c, nexus: NEXUS_B }));
  good(await run(t, { cdb: cdb.modeSense6(0x3f, 255) }));
  good(await run(t, { cdb: cdb.release6() }));
  good(await run(t, { cdb: cdb.reserve6(), nexus: NEXUS_B }));
  good(await run(t, { cdb: cdb.release6(), nexus: NEXUS_B }));
});

test('RESERVE(6) ends with the nexus, a LUN reset and a target reset; it conflicts with persistent registrations', async () => {
  const t = await ready();
  good(await run(t, { cdb: cdb.reserve6() }));
  t.nexusLost(NEXUS_A);
  good(await run(t, { cdb: cdb.reserve6(), nexus: NEXUS_B }));
  t.lunReset(0, NEXUS_A);
  await clearUa(t, NEXUS_A);
  good(await run(t, { cdb: cdb.reserve6() }));
  t.targetReset(NEXUS_B);
  await clearUa(t, NEXUS_B);
  good(await run(t, { cdb: cdb.reserve6(), nexus: NEXUS_B }));
  good(await run(t, { cdb: cdb.release6(), nexus: NEXUS_B }));
  await clearUa(t, NEXUS_A);
  good(await prOut(t, NEXUS_A, Sa.RegisterIgnore, 0n, KA));
  conflict(await run(t, { cdb: cdb.reserve6(), nexus: NEXUS_B }));
  conflict(await run(t, { cdb: cdb.reserve6() }), );
});

test('unit attentions: target reset 29h/00h for every nexus; a lost nexus starts over with 29h/00h; queued conditions one per command', async () => {
  const t = await ready();
  t.targetReset(NEXUS_A);
  expectCheck(await run(t, { cdb: cdb.tur() }), 0x6, 0x29, 0x00);
  expectCheck(await run(t, { cdb: cdb.read10(0, 1), nexus: NEXUS_B }), 0x6, 0x29, 0x00);
  good(await run(t, { cdb: cdb.read10(0, 1), nexus: NEXUS_B }));
  t.nexusLost(NEXUS_B);
  expectCheck(await run(t, { cdb: cdb.tur(), nexus: NEXUS_B }), 0x6, 0x29, 0x00);
  // Two events for A: reported in order, one per command.
  good(await prOut(t, NEXUS_A, Sa.RegisterIgnore, 0n, KA));
  good(await prOut(t, NEXUS_B, Sa.RegisterIgnore, 0n, KB));
  good(await prOut(t, NEXUS_A, Sa.Reserve, KA, 0n, WE_RO));
  good(await prOut(t, NEXUS_A, Sa.Release, KA, 0n, WE_RO));
  good(await prOut(t, NEXUS_A, Sa.Reserve, KA, 0n, WE));
  good(await prOut(t, NEXUS_A, Sa.Clear, KA, 0n));
  expectCheck(await run(t, { cdb: cdb.tur(), nexus: NEXUS_B }), 0x6, 0x2a, 0x04);
  expectCheck(await run(t, { cdb: cdb.tur(), nexus: NEXUS_B }), 0x6, 0x2a, 0x03);
  good(await run(t, { cdb: cdb.tur(), nexus: NEXUS_B }));
  // A reset supersedes what was queued.
  good(await prOut(t, NEXUS_B, Sa.RegisterIgnore, 0n, KB));
  good(await prOut(t, NEXUS_A, Sa.RegisterIgnore, 0n, KA));
  good(await prOut(t, NEXUS_A, Sa.Clear, KA, 0n));
  t.lunReset(0, NEXUS_A);
  expectCheck(await run(t, { cdb: cdb.tur(), nexus: NEXUS_B }), 0x6, 0x29, 0x03);
  good(await run(t, { cdb: cdb.tur(), nexus: NEXUS_B }));
});

test.run();

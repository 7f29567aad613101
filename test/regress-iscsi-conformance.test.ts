/**
 * iSCSI target conformance regressions (RFC 7143): numerical key values in hex, a key repeated in
 * one Text Request, a non-immediate NOP-Out with the reserved ITT, our own offers for keys the
 * initiator leaves at their defaults, and a TSIH that belongs to another initiator's session.
 * Sans-IO, through the rig's initiator side (test/lib/iscsi-rig.ts).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Rig, makePortal, senseOf, IQN, INI } from './lib/iscsi-rig';
import { bhs, pattern, read10, text, u32, write10, TPdu } from './lib/iscsi-wire';
import { parseNumber } from '../examples/iscsi/keys';
import { ConnOptions } from '../examples/iscsi/session';

const OP = { NopIn: 0x20, ScsiRsp: 0x21, LoginRsp: 0x23, TextRsp: 0x24, DataIn: 0x25, R2t: 0x31, Reject: 0x3f };
const TUR = new Uint8Array(16);

function loggedIn(extra: Array<[string, string]> = [], opts: ConnOptions = {}) {
  const { portal, scsi } = makePortal();
  const rig = new Rig(portal, opts);
  const r = rig.login(extra);
  assert.is(r.status, 0, 'login status');
  return { rig, portal, scsi: scsi.get(IQN)!, login: r };
}

/** Every key=value of a text data segment, in order, repeats kept. */
function pairsOf(d: Uint8Array): Array<[string, string]> {
  return Buffer.from(d).toString('utf8').split('\0').filter((s) => s).map((s) => {
    const i = s.indexOf('=');
    return [s.slice(0, i), s.slice(i + 1)] as [string, string];
  });
}

function textReq(rig: Rig, pairs: Array<[string, string]>, itt = 0x500): Uint8Array {
  const h = bhs(0x04, 0x80, { itt, cmdSN: rig.cmdSN++ });
  rig.send(h, text(pairs));
  return h;
}

function isReject(p: TPdu, reason: number, h: Uint8Array): void {
  assert.is(p.op, OP.Reject, 'a Reject PDU');
  assert.is(p.bhs[2], reason, 'reason');
  // The rejected header comes back (11.17); the data segment length is the encoder's to fill.
  assert.is(p.data.length, 48);
  assert.equal([...p.data.subarray(0, 4), ...p.data.subarray(8, 48)], [...h.subarray(0, 4), ...h.subarray(8, 48)], 'the rejected header comes back (11.17)');
}

// ---- RFC 7143 6.1: numerical values in decimal or hex -----------------------------------------------

test('6.1 numerical values: decimal and "0x" hex of any length (leading zeros), never 2^64 or more', () => {
  assert.is(parseNumber('8192'), 8192);
  assert.is(parseNumber('0x2000'), 8192);
  assert.is(parseNumber('0X00002000'), 8192);
  assert.is(parseNumber('0x0000000000002000'), 8192, '16 hex digits');
  assert.is(parseNumber('0x00000000000000000000000000002000'), 8192, 'leading zeros beyond 16 digits');
  assert.is(parseNumber('0xffffffffffff'), 0xffffffffffff);
  assert.ok(Number.isNaN(parseNumber('0x10000000000000000')), '2^64');
  assert.ok(Number.isNaN(parseNumber('18446744073709551616')), '2^64 in decimal');
  assert.is(parseNumber('0bIAA='), 8192, 'base64 big-endian bytes 0x20 0x00');
  for (const bad of ['', '0x', '0xg1', '-1', '1e3', ' 1', '1 ', '0b', '0b!!!!', '12a']) assert.ok(Number.isNaN(parseNumber(bad)), JSON.stringify(bad));
});

test('login: MaxRecvDataSegmentLength and the other numerical keys in hex are taken (RFC 7143 6.1), not Rejected', () => {
  const { rig, scsi, login } = loggedIn([
    ['MaxRecvDataSegmentLength', '0x400'], ['MaxBurstLength', '0x0000000000000800'], ['FirstBurstLength', '0X200'],
    ['MaxOutstandingR2T', '0x1'], ['DefaultTime2Retain', '0x0'], ['ErrorRecoveryLevel', '0x0'],
  ]);
  const k = login.keys;
  assert.is(k.get('MaxBurstLength'), '2048');
  assert.is(k.get('FirstBurstLength'), '512');
  assert.is(k.get('MaxOutstandingR2T'), '1');
  assert.is(k.get('DefaultTime2Retain'), '0');
  assert.is(k.get('ErrorRecoveryLevel'), '0');
  for (const [key, v] of k) assert.is.not(v, 'Reject', key);
  // The hex MaxRecvDataSegmentLength (1024) bounds every Data-In; F at each 2048-byte burst.
  scsi.disk.set(pattern(4096, 3), 0);
  rig.cmd({ cdb: read10(0, 8), E: 4096, r: true });
  const ps = rig.take();
  assert.is(ps.length, 4);
  for (const p of ps) { assert.is(p.op, OP.DataIn); assert.is(p.data.length, 1024); }
  assert.equal(Buffer.concat(ps.map((p) => p.data)), Buffer.from(pattern(4096, 3)));
});

test('login: a numerical value of 2^64 or more, or out of the key\'s range, is answered Reject', () => {
  const { login } = loggedIn([['MaxBurstLength', '0x10000000000000000'], ['MaxOutstandingR2T', '0x0']]);
  assert.is(login.keys.get('MaxBurstLength'), 'Reject');
  assert.is(login.keys.get('MaxOutstandingR2T'), 'Reject', '13.17: 1 to 65535');
});

test('full feature Text: MaxRecvDataSegmentLength in hex is taken (RFC 7143 6.1, 13.12) and bounds later Data-In', () => {
  const { rig, scsi } = loggedIn([['MaxRecvDataSegmentLength', '65536']]);
  textReq(rig, [['MaxRecvDataSegmentLength', '0x00000800']]);
  const t = rig.one();
  assert.is(t.op, OP.TextRsp);
  assert.is(t.flags & 0x80, 0x80, 'F');
  const ans = pairsOf(t.data);
  assert.is(ans.length, 1);
  assert.is(ans[0][0], 'MaxRecvDataSegmentLength');
  assert.ok(/^[0-9]+$/.test(ans[0][1]) && Number(ans[0][1]) >= 512, `our declared value, not Reject: ${ans[0][1]}`);
  scsi.disk.set(pattern(4096, 5), 0);
  rig.cmd({ cdb: read10(0, 8), E: 4096, r: true });
  const ps = rig.take();
  assert.is(ps.length, 2, 'two 2048-byte Data-In PDUs');
  for (const p of ps) assert.is(p.data.length, 2048);
  // Out of range (13.12: 512 to 2^24-1) in any form: Reject, the value unchanged.
  textReq(rig, [['MaxRecvDataSegmentLength', '0x1000000']]);
  assert.equal(pairsOf(rig.one().data), [['MaxRecvDataSegmentLength', 'Reject']]);
});

// ---- RFC 7143 6.2: a key offered twice in one negotiation ---------------------------------------------

test('full feature Text: a key repeated in one request is a protocol error (Reject 0x04), not answered twice; the session goes on', () => {
  for (const pairs of [
    [['SendTargets', 'All'], ['SendTargets', 'All']],
    [['MaxRecvDataSegmentLength', '8192'], ['X-com.example.k', '1'], ['MaxRecvDataSegmentLength', '16384']],
  ] as Array<Array<[string, string]>>) {
    const { rig } = loggedIn();
    const h = textReq(rig, pairs);
    const ps = rig.take();
    assert.is(ps.length, 1, 'one PDU back');
    isReject(ps[0], 0x04, h);
    assert.is(rig.closedByTarget, 0);
    // The Text Request's CmdSN was consumed: the next command runs at once.
    rig.cmd({ cdb: TUR, E: 0 });
    const r = rig.one();
    assert.is(r.op, OP.ScsiRsp);
    assert.is(r.bhs[3], 0, 'GOOD');
    assert.is(r.expCmdSN, rig.cmdSN);
    // A single SendTargets in a later request is answered once.
    textReq(rig, [['SendTargets', 'All']]);
    const names = pairsOf(rig.one().data).filter(([k]) => k === 'TargetName');
    assert.equal(names, [['TargetName', IQN]]);
  }
});

// ---- RFC 7143 11.18: NOP-Out with the reserved ITT and no I bit ---------------------------------------

test('NOP-Out with ITT 0xffffffff and the I bit clear: Reject 0x04, and its CmdSN is consumed so later commands are not stalled', () => {
  const { rig } = loggedIn();
  const sn = rig.cmdSN++;
  const h = bhs(0x00, 0x80, { itt: 0xffffffff, cmdSN: sn });
  rig.send(h);
  const ps = rig.take();
  assert.is(ps.length, 1, 'the Reject only: no NOP-In');
  isReject(ps[0], 0x04, h);
  // The next command carries the following CmdSN, as an initiator that numbered the NOP-Out sends it.
  rig.cmd({ cdb: TUR, E: 0 });
  const r = rig.take();
  assert.is(r.length, 1, 'the TUR ran without waiting for the NOP-Out\'s CmdSN');
  assert.is(r[0].op, OP.ScsiRsp);
  assert.is(r[0].expCmdSN, (sn + 2) >>> 0, 'ExpCmdSN past the NOP-Out and the TUR');
  assert.is(rig.portal.sessions.counters.get('nop-out-reserved-itt-not-immediate'), 1);
  // The same PDU with the I bit set is a ping wanting no reply: nothing back, no CmdSN taken.
  rig.send(bhs(0x00, 0x80, { imm: true, itt: 0xffffffff, cmdSN: rig.cmdSN }));
  assert.is(rig.take().length, 0);
  rig.cmd({ cdb: TUR, E: 0 });
  assert.is(rig.one().expCmdSN, rig.cmdSN);
});

test.run();

/**
 * iSCSI target conformance regressions (RFC 7143): numerical key values in hex, a key repeated in
 * one Text Request, a non-immediate NOP-Out with the reserved ITT, our own offers for keys the
 * initiator leaves at their defaults, and a TSIH that belongs to another initiator's session.
 * Sans-IO, through the rig's initiator side (test/lib/iscsi-rig.ts).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Rig, makePortal, senseOf, IQN, INI } from './lib/iscsi-rig';
import { bhs, encode, pattern, read10, text, u32, write10, TPdu } from './lib/iscsi-wire';
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

function encodeLogin(flags: number, data: Uint8Array, cmdSN: number): Uint8Array {
  return encode(Rig.loginBhs(flags, { cmdSN, itt: 0x77 }), data);
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

// ---- RFC 7143 6.2 / 13: keys left at their defaults while our limits differ ----------------------------

const OPER = 0x87; // T=1 CSG=1 NSG=3

test('ImmediateData: with our No and an initiator that does not offer the key, the target offers No and does not transit until answered', () => {
  const { portal } = makePortal();
  const rig = new Rig(portal, { immediateData: false });
  const a = rig.loginStep(OPER, [['InitiatorName', INI], ['TargetName', IQN], ['HeaderDigest', 'None'], ['DataDigest', 'None']]);
  assert.is(a.status, 0);
  assert.is(a.rsp.flags & 0x80, 0, 'T clear: our offer needs an answer (6.3)');
  assert.is((a.rsp.flags >> 2) & 3, 1, 'CSG operational');
  assert.is(a.keys.get('ImmediateData'), 'No');
  assert.is(a.keys.get('HeaderDigest'), 'None', 'the initiator\'s keys are still answered');
  assert.is(rig.conn.phase, 'login');
  // The initiator answers (AND: No) and asks again to enter full feature phase.
  const b = rig.loginStep(OPER, [['ImmediateData', 'No']]);
  assert.is(b.status, 0);
  assert.is(b.rsp.flags, 0x87, 'T=1 CSG=1 NSG=3');
  assert.is(b.keys.has('ImmediateData'), false, 'an answer is not answered');
  assert.is(rig.conn.phase, 'ffp');
  assert.is(rig.conn.immediateData, false);
  // Immediate data is now refused as the negotiation says (11.4.7.2), nothing written.
  rig.cmd({ cdb: write10(0, 1), E: 512, w: true, data: pattern(512, 1) });
  const r = rig.take().find((p) => p.op === OP.ScsiRsp)!;
  assert.ok(r, 'a SCSI Response');
  assert.is(r.bhs[3], 0x02, 'CHECK CONDITION');
  assert.equal(senseOf(r), [0x0b, 0x0c, 0x0c]);
});

test('ImmediateData: an initiator answering Yes to our No gets No (AND, 13.11); one that Rejects our offer fails the login', () => {
  {
    const { portal } = makePortal();
    const rig = new Rig(portal, { immediateData: false });
    assert.is(rig.loginStep(OPER, [['InitiatorName', INI], ['TargetName', IQN]]).keys.get('ImmediateData'), 'No');
    const b = rig.loginStep(OPER, [['ImmediateData', 'Yes']]);
    assert.is(b.status, 0);
    assert.is(rig.conn.phase, 'ffp');
    assert.is(rig.conn.immediateData, false);
  }
  {
    const { portal } = makePortal();
    const rig = new Rig(portal, { immediateData: false });
    rig.loginStep(OPER, [['InitiatorName', INI], ['TargetName', IQN]]);
    const b = rig.loginStep(OPER, [['ImmediateData', 'Reject']]);
    assert.is(b.status, 0x0200);
    assert.is(rig.closedByTarget, 1);
    assert.is(portal.sessions.size, 0);
  }
});

test('ImmediateData offered by the initiator: answered in one step, no offer of ours (AND with our No)', () => {
  const { portal } = makePortal();
  const rig = new Rig(portal, { immediateData: false });
  const a = rig.loginStep(OPER, [['InitiatorName', INI], ['TargetName', IQN], ['ImmediateData', 'Yes']]);
  assert.is(a.rsp.flags, 0x87);
  assert.equal(pairsOf(a.rsp.data).filter(([k]) => k === 'ImmediateData'), [['ImmediateData', 'No']]);
  assert.is(rig.conn.phase, 'ffp');
});

test('defaults: with our limits at the RFC defaults nothing is offered and a bare login completes in one step', () => {
  const { portal } = makePortal();
  const rig = new Rig(portal);
  const a = rig.loginStep(OPER, [['InitiatorName', INI], ['TargetName', IQN]]);
  assert.is(a.rsp.flags, 0x87);
  for (const k of ['ImmediateData', 'MaxBurstLength', 'FirstBurstLength', 'DefaultTime2Wait', 'DefaultTime2Retain']) assert.is(a.keys.has(k), false, k);
  assert.is(rig.conn.phase, 'ffp');
});

test('MaxBurstLength / FirstBurstLength below the defaults are offered; the write then gets R2Ts of our MaxBurstLength', () => {
  const { portal } = makePortal();
  const rig = new Rig(portal, { maxBurstLength: 16384, firstBurstLength: 4096 });
  const a = rig.loginStep(OPER, [['InitiatorName', INI], ['TargetName', IQN], ['InitialR2T', 'Yes']]);
  assert.is(a.rsp.flags & 0x80, 0);
  assert.is(a.keys.get('MaxBurstLength'), '16384');
  assert.is(a.keys.get('FirstBurstLength'), '4096');
  const b = rig.loginStep(OPER, [['MaxBurstLength', '8192'], ['FirstBurstLength', '8192']]);
  assert.is(b.rsp.flags, 0x87);
  assert.is(rig.conn.maxBurstLength, 8192, 'minimum of our offer and the answer');
  assert.is(rig.conn.firstBurstLength, 4096, 'minimum: our 4096');
  const itt = rig.cmd({ cdb: write10(0, 32), E: 16384, w: true });
  const r2ts = rig.take().filter((p) => p.op === OP.R2t);
  assert.ok(r2ts.length >= 1);
  assert.is(u32(r2ts[0].bhs, 16), itt);
  assert.is(u32(r2ts[0].bhs, 44), 8192, 'Desired Data Transfer Length = MaxBurstLength');
});

test('security stage asking for full feature phase while we have offers: the target selects operational negotiation (NSG 1)', () => {
  const { portal } = makePortal();
  const rig = new Rig(portal, { immediateData: false });
  const a = rig.loginStep(0x83, [['InitiatorName', INI], ['TargetName', IQN], ['AuthMethod', 'None']]);
  assert.is(a.status, 0);
  assert.is(a.rsp.flags, 0x81, 'T=1 CSG=0 NSG=1');
  assert.is(a.keys.get('AuthMethod'), 'None');
  assert.is(((a.rsp.bhs[14] << 8) | a.rsp.bhs[15]), 0, 'no TSIH before the final response');
  const b = rig.loginStep(OPER, []);
  assert.is(b.rsp.flags & 0x80, 0);
  assert.is(b.keys.get('ImmediateData'), 'No');
  const c = rig.loginStep(OPER, [['ImmediateData', 'No']]);
  assert.is(c.rsp.flags, 0x87);
  assert.is(rig.conn.phase, 'ffp');
});

test('Discovery sessions: no offers (the keys are irrelevant), SendTargets works after a one-step login', () => {
  const { portal } = makePortal();
  const rig = new Rig(portal, { immediateData: false, maxBurstLength: 8192 });
  const a = rig.loginStep(OPER, [['InitiatorName', INI], ['SessionType', 'Discovery']]);
  assert.is(a.rsp.flags, 0x87);
  assert.is(a.keys.has('ImmediateData'), false);
  textReq(rig, [['SendTargets', 'All']]);
  assert.equal(pairsOf(rig.one().data).filter(([k]) => k === 'TargetName'), [['TargetName', IQN]]);
});

// ---- RFC 7143 6.3.1: TSIH of a session that is not the initiator's ---------------------------------

test('login with the TSIH of another initiator\'s (or another ISID\'s) session: "session does not exist" (0x020a)', () => {
  const { portal } = makePortal();
  const a = new Rig(portal);
  assert.is(a.login().status, 0);
  const live = portal.sessions.all()[0].tsih;
  const other = new Rig(portal);
  assert.is(other.loginStep(OPER, [['InitiatorName', 'iqn.2024-01.test.xdpstack:someone-else'], ['TargetName', IQN]], { tsih: live }).status, 0x020a);
  const isid = new Rig(portal);
  assert.is(isid.loginStep(OPER, [['InitiatorName', INI], ['TargetName', IQN]], { tsih: live, isid: Uint8Array.of(0x80, 0, 0, 0, 0, 9) }).status, 0x020a);
  const same = new Rig(portal);
  assert.is(same.loginStep(OPER, [['InitiatorName', INI], ['TargetName', IQN]], { tsih: live }).status, 0x0206, 'its own session: MaxConnections=1');
  // The live session was not disturbed.
  a.cmd({ cdb: TUR, E: 0 });
  assert.is(a.one().op, OP.ScsiRsp);
});

// ---- RFC 7143 11.10 / 11.11: the F and C bits of a Text exchange ------------------------------------

test('Text Request with F clear: answered with F clear and a TTT (11.11.1), the follow-on request with F set ends the exchange', () => {
  const { rig } = loggedIn();
  const h1 = bhs(0x04, 0x00, { itt: 0x600, cmdSN: rig.cmdSN++ });
  rig.send(h1, text([['MaxRecvDataSegmentLength', '16384']]));
  const a = rig.one();
  assert.is(a.op, OP.TextRsp);
  assert.is(a.flags & 0xc0, 0, 'F and C clear: a Text Response with F set to a request with F clear is a protocol error');
  assert.ok(a.ttt !== 0xffffffff, 'a TTT to continue with');
  assert.is(a.itt, 0x600);
  assert.equal(pairsOf(a.data).map(([k]) => k), ['MaxRecvDataSegmentLength'], 'the keys are answered');
  // The initiator continues the same negotiation (its TTT copied) with a new key and F set.
  rig.send(bhs(0x04, 0x80, { itt: 0x600, ttt: a.ttt, cmdSN: rig.cmdSN++ }), text([['X-com.example.k', '1']]));
  const b = rig.one();
  assert.is(b.flags, 0x80, 'F set: the exchange is over');
  assert.is(b.ttt, 0xffffffff);
  assert.equal(pairsOf(b.data), [['X-com.example.k', 'NotUnderstood']]);
  // The exchange is closed: its TTT is no longer valid (Reject, Invalid PDU Field).
  const h3 = bhs(0x04, 0x80, { itt: 0x600, ttt: a.ttt, cmdSN: rig.cmdSN++ });
  rig.send(h3);
  isReject(rig.one(), 0x09, h3);
});

test('Text: a key offered again in a later request of the same open negotiation is a protocol error (6.2)', () => {
  const { rig } = loggedIn();
  rig.send(bhs(0x04, 0x00, { itt: 0x610, cmdSN: rig.cmdSN++ }), text([['MaxRecvDataSegmentLength', '16384']]));
  const a = rig.one();
  assert.ok(a.ttt !== 0xffffffff);
  const h = bhs(0x04, 0x80, { itt: 0x610, ttt: a.ttt, cmdSN: rig.cmdSN++ });
  rig.send(h, text([['MaxRecvDataSegmentLength', '8192']]));
  isReject(rig.one(), 0x04, h);
  // A new exchange (TTT 0xffffffff) may negotiate it again.
  textReq(rig, [['MaxRecvDataSegmentLength', '8192']]);
  const c = rig.one();
  assert.is(c.flags, 0x80);
  assert.is(pairsOf(c.data)[0][0], 'MaxRecvDataSegmentLength');
});

test('Text Request with both C and F set: Reject, Protocol Error (11.10.2: with C set, F must be 0)', () => {
  const { rig } = loggedIn();
  const h = bhs(0x04, 0xc0, { itt: 0x620, cmdSN: rig.cmdSN++ });
  rig.send(h, text([['SendTargets', 'All']]));
  isReject(rig.one(), 0x04, h);
  rig.cmd({ cdb: TUR, E: 0 });
  assert.is(rig.one().op, OP.ScsiRsp, 'the session goes on');
});

// ---- RFC 7143 13.12: the default MaxRecvDataSegmentLength holds during login -------------------------

test('login: a Login Request with more than 8192 bytes of data fails (13.12 default during login), even with a larger MaxRecvDataSegmentLength of ours; the same text split with C is taken', () => {
  const filler = (n: number): Array<[string, string]> => [['X-com.example.pad', 'p'.repeat(n)]];
  const base: Array<[string, string]> = [['InitiatorName', INI], ['TargetName', IQN]];
  const size = (pairs: Array<[string, string]>) => text(pairs).length;
  {
    const { portal } = makePortal();
    const rig = new Rig(portal, { maxRecvDataSegmentLength: 262144 });
    const pad = filler(8200 - size(base));
    assert.ok(size([...base, ...pad]) > 8192);
    const r = rig.loginStep(OPER, [...base, ...pad]);
    assert.is(r.status, 0x0200);
    assert.is(rig.closedByTarget, 1);
    assert.is(portal.sessions.counters.get('login-data-too-long'), 1);
  }
  {
    // Exactly 8192 bytes: taken.
    const { portal } = makePortal();
    const rig = new Rig(portal, { maxRecvDataSegmentLength: 262144 });
    const body = [...base, ...filler(0)];
    const pad = filler(8192 - size(body));
    assert.is(size([...base, ...pad]), 8192);
    const r = rig.loginStep(OPER, [...base, ...pad]);
    assert.is(r.status, 0);
    assert.is(r.keys.get('X-com.example.pad'), 'NotUnderstood');
  }
  {
    // 12 KiB of text in two Login Requests, the first with C set (11.12.2): answered empty, then taken.
    const { portal } = makePortal();
    const rig = new Rig(portal);
    const all = text([...base, ...filler(12000)]);
    rig.raw(encodeLogin(0x44, all.subarray(0, 8000), rig.cmdSN));
    const a = rig.one();
    assert.is(a.op, OP.LoginRsp);
    assert.is((a.bhs[36] << 8) | a.bhs[37], 0);
    assert.is(a.data.length, 0, 'an empty answer while the request continues');
    rig.raw(encodeLogin(OPER, all.subarray(8000), rig.cmdSN));
    const b = rig.one();
    assert.is((b.bhs[36] << 8) | b.bhs[37], 0);
    assert.is(b.flags, 0x87);
    assert.is(rig.conn.phase, 'ffp');
  }
});

// ---- RFC 7143 11.17.1 note 2 / 11.5.1: TTTs and task tags that name nothing ---------------------------

test('Data-Out with a TTT the target never gave: Reject, Invalid PDU Field (11.17.1 note 2); the task still completes with its R2T\'s data', () => {
  const { rig, scsi } = loggedIn([['InitialR2T', 'Yes']]);
  const itt = rig.cmd({ cdb: write10(0, 1), E: 512, w: true });
  const r2t = rig.one();
  assert.is(r2t.op, OP.R2t);
  const bad = r2t.ttt ^ 0x5a5a;
  rig.dataOut(itt, bad, 0, 0, pattern(512, 7), true);
  const rej = rig.one();
  assert.is(rej.op, OP.Reject);
  assert.is(rej.bhs[2], 0x09, 'Invalid PDU field');
  assert.is(u32(rej.data, 20), bad, 'the rejected header (its TTT) comes back');
  // A Reject never ends a task implicitly: the right Data-Out completes the write.
  rig.dataOut(itt, r2t.ttt, 0, 0, pattern(512, 7), true);
  const rsp = rig.one();
  assert.is(rsp.op, OP.ScsiRsp);
  assert.is(rsp.bhs[3], 0, 'GOOD');
  assert.equal(Buffer.from(scsi.disk.subarray(0, 512)), Buffer.from(pattern(512, 7)));
});

test('ABORT TASK names a task by tag and LUN (SAM-5 I_T_L_Q): a tag of another LUN aborts nothing ("Task does not exist")', () => {
  const { rig } = loggedIn([['InitialR2T', 'Yes']]);
  const itt = rig.cmd({ cdb: write10(0, 1), E: 512, w: true });
  const r2t = rig.one();
  const wrong = rig.tmf(1, { ref: itt, lun: 3, refCmdSN: rig.cmdSN - 1 });
  assert.is(wrong.op, 0x22);
  assert.is(wrong.bhs[2], 1, 'Task does not exist');
  // The task on LUN 0 was not touched: its data completes it.
  rig.dataOut(itt, r2t.ttt, 0, 0, pattern(512, 8), true);
  assert.is(rig.one().bhs[3], 0, 'GOOD');
  // Aborting on the right LUN works.
  const itt2 = rig.cmd({ cdb: write10(1, 1), E: 512, w: true });
  rig.one();
  const ok = rig.tmf(1, { ref: itt2, lun: 0, refCmdSN: rig.cmdSN - 1 });
  assert.is(ok.bhs[2], 0, 'Function complete');
});

test('full feature Text: InitiatorAlias (13.7, declarative, Use: ALL) is taken unanswered; login-only keys, TaskReporting and iSCSIProtocolLevel included, are Reject', () => {
  const { rig } = loggedIn();
  textReq(rig, [['InitiatorAlias', 'host-7'], ['TaskReporting', 'RFC3720'], ['iSCSIProtocolLevel', '1'], ['ImmediateData', 'No'], ['X-com.example.k', 'v']]);
  const t = rig.one();
  assert.is(t.op, OP.TextRsp);
  assert.equal(pairsOf(t.data), [['TaskReporting', 'Reject'], ['iSCSIProtocolLevel', 'Reject'], ['ImmediateData', 'Reject'], ['X-com.example.k', 'NotUnderstood']]);
});

test('Discovery login naming a TargetName gets the TargetPortalGroupTag in the first Login Response (6.3: "for all session types when TargetName is given")', () => {
  const { portal } = makePortal();
  const rig = new Rig(portal, { portalGroupTag: 7 });
  const a = rig.loginStep(OPER, [['InitiatorName', INI], ['SessionType', 'Discovery'], ['TargetName', IQN]]);
  assert.is(a.status, 0);
  assert.is(a.keys.get('TargetPortalGroupTag'), '7');
  const normal = new Rig(makePortal().portal, { portalGroupTag: 7 });
  assert.is(normal.loginStep(OPER, [['InitiatorName', INI], ['TargetName', IQN]]).keys.get('TargetPortalGroupTag'), '7');
});

test('login: names declared again in a later Login Request in another letter case are the same iSCSI names (case-insensitive); a different name fails', () => {
  const mixed = IQN.toUpperCase().replace('IQN.', 'iqn.');
  {
    const { portal } = makePortal();
    const rig = new Rig(portal);
    const a = rig.loginStep(0x81, [['InitiatorName', INI.toUpperCase()], ['TargetName', mixed], ['AuthMethod', 'None']]);
    assert.is(a.status, 0);
    assert.is(a.rsp.flags, 0x81);
    // As libiscsi does after the security stage: the names again, with the operational keys.
    const b = rig.loginStep(OPER, [['InitiatorName', INI.toUpperCase()], ['TargetName', mixed], ['SessionType', 'Normal'], ['HeaderDigest', 'None']]);
    assert.is(b.status, 0);
    assert.is(b.rsp.flags, 0x87);
    assert.is(rig.conn.phase, 'ffp');
  }
  {
    const { portal } = makePortal([{ iqn: IQN }, { iqn: IQN + '-other' }]);
    const rig = new Rig(portal);
    assert.is(rig.loginStep(0x81, [['InitiatorName', INI], ['TargetName', IQN], ['AuthMethod', 'None']]).status, 0);
    assert.is(rig.loginStep(OPER, [['TargetName', IQN + '-other']]).status, 0x0200, 'another target: a redeclaration');
    assert.is(rig.closedByTarget, 1);
  }
});

test('a Login Request without the I bit (11.12: always 1) fails the login with an initiator error and closes', () => {
  const { portal } = makePortal();
  const rig = new Rig(portal);
  const h = Rig.loginBhs(OPER, { cmdSN: rig.cmdSN, itt: 0x77 });
  h[0] = 0x03; // I clear
  rig.raw(encode(h, text([['InitiatorName', INI], ['TargetName', IQN]])));
  const r = rig.one();
  assert.is(r.op, OP.LoginRsp);
  assert.is((r.bhs[36] << 8) | r.bhs[37], 0x0200);
  assert.is(r.flags & 0x80, 0, 'no transit');
  assert.is(rig.closedByTarget, 1);
  assert.is(portal.sessions.size, 0);
});

test('a Login Request with an AHS (11.12 defines none) is answered with a Login reject, initiator error (0x0200), not dropped unanswered', () => {
  for (const first of [true, false]) {
    const { portal } = makePortal();
    const rig = new Rig(portal);
    if (!first) assert.is(rig.loginStep(0x01, [['InitiatorName', INI], ['TargetName', IQN], ['AuthMethod', 'None']]).status, 0);
    const h = Rig.loginBhs(first ? OPER : 0x81, { cmdSN: rig.cmdSN, itt: 0x77 });
    rig.raw(encode(h, text(first ? [['InitiatorName', INI], ['TargetName', IQN]] : []), {}, Uint8Array.of(0, 4, 0x7f, 0, 0, 0, 0, 0)));
    const r = rig.one();
    assert.is(r.op, OP.LoginRsp);
    assert.is((r.bhs[36] << 8) | r.bhs[37], 0x0200, first ? 'first request' : 'a later request');
    assert.is(rig.closedByTarget, 1);
    assert.is(portal.sessions.counters.get('login-ahs'), 1);
  }
});

test.run();

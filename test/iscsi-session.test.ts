import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { Rig, makePortal, senseOf, IQN, IQN2, INI } from './lib/iscsi-rig';
import { bhs, encode, lunField, p32, pattern, read10, write10, text, u32, TPdu } from './lib/iscsi-wire';

const OP = { NopIn: 0x20, ScsiRsp: 0x21, TmfRsp: 0x22, LoginRsp: 0x23, TextRsp: 0x24, DataIn: 0x25, LogoutRsp: 0x26, R2t: 0x31, Reject: 0x3f };
const TUR = new Uint8Array(16);

function loggedIn(extra: Array<[string, string]> = [], opts = {}) {
  const { portal, scsi } = makePortal();
  const rig = new Rig(portal, opts);
  const r = rig.login(extra);
  assert.is(r.status, 0, 'login status');
  return { rig, portal, scsi: scsi.get(IQN)!, login: r };
}

// ---- login --------------------------------------------------------------------------------------

test('login: every offered key is answered explicitly with the RFC 7143 13 result functions', () => {
  const { portal } = makePortal();
  const rig = new Rig(portal, { maxBurstLength: 262144, firstBurstLength: 65536, maxOutstandingR2T: 4, maxRecvDataSegmentLength: 262144 });
  const offered: Array<[string, string]> = [
    ['HeaderDigest', 'None,CRC32C'], ['DataDigest', 'None'], ['MaxConnections', '4'], ['InitialR2T', 'No'],
    ['ImmediateData', 'Yes'], ['MaxRecvDataSegmentLength', '65536'], ['MaxBurstLength', '1048576'],
    ['FirstBurstLength', '524288'], ['DefaultTime2Wait', '1'], ['DefaultTime2Retain', '30'],
    ['MaxOutstandingR2T', '16'], ['DataPDUInOrder', 'Yes'], ['DataSequenceInOrder', 'Yes'],
    ['ErrorRecoveryLevel', '2'], ['IFMarker', 'No'], ['OFMarker', 'No'], ['X-com.example.foo', 'bar'],
  ];
  const { rsp, keys, status } = rig.loginStep(0x87, [['InitiatorName', INI], ['TargetName', IQN], ['SessionType', 'Normal'], ...offered]);
  assert.is(status, 0);
  assert.is(rsp.op, OP.LoginRsp);
  assert.is(rsp.flags, 0x87, 'T=1 CSG=1 NSG=3');
  assert.is(rsp.bhs[2], 0); assert.is(rsp.bhs[3], 0); // Version-max / Version-active
  assert.equal([...rsp.bhs.subarray(8, 14)], [0x80, 0x12, 0x34, 0x56, 0x00, 0x01], 'ISID echoed');
  assert.ok(((rsp.bhs[14] << 8) | rsp.bhs[15]) !== 0, 'TSIH set in the final response');
  assert.is(rsp.itt, 0x77);
  assert.is(rsp.statSN, 5000);
  assert.is(rsp.expCmdSN, 1000, 'ExpCmdSN = the login CmdSN');
  assert.ok(((rsp.maxCmdSN - rsp.expCmdSN) | 0) >= 0);
  for (const [k] of offered) assert.ok(keys.has(k), `answer for ${k}`);
  assert.is(keys.get('HeaderDigest'), 'None'); // first supported value of the initiator's list (13.1)
  assert.is(keys.get('DataDigest'), 'None');
  assert.is(keys.get('MaxConnections'), '1');
  assert.is(keys.get('InitialR2T'), 'No'); // OR of No and our No
  assert.is(keys.get('ImmediateData'), 'Yes'); // AND
  assert.is(keys.get('MaxRecvDataSegmentLength'), '262144'); // ours, declarative
  assert.is(keys.get('MaxBurstLength'), '262144'); // minimum
  assert.is(keys.get('FirstBurstLength'), '65536'); // minimum, <= MaxBurstLength
  assert.is(keys.get('DefaultTime2Wait'), '2'); // maximum
  assert.is(keys.get('DefaultTime2Retain'), '20'); // minimum
  assert.is(keys.get('MaxOutstandingR2T'), '4'); // minimum
  assert.is(keys.get('DataPDUInOrder'), 'Yes');
  assert.is(keys.get('DataSequenceInOrder'), 'Yes');
  assert.is(keys.get('ErrorRecoveryLevel'), '0'); // minimum
  assert.is(keys.get('X-com.example.foo'), 'NotUnderstood'); // 6.2.1
  assert.is(keys.get('TargetPortalGroupTag'), '1');
  assert.is(rig.conn.phase, 'ffp');
});

test('login: an initiator that offers nothing still learns our MaxRecvDataSegmentLength; InitialR2T OR with our Yes', () => {
  const { portal } = makePortal();
  const rig = new Rig(portal, { initialR2T: true, maxRecvDataSegmentLength: 65536 });
  const { keys, status } = rig.loginStep(0x87, [['InitiatorName', INI], ['TargetName', IQN], ['InitialR2T', 'No'], ['ImmediateData', 'No']]);
  assert.is(status, 0);
  assert.is(keys.get('MaxRecvDataSegmentLength'), '65536');
  assert.is(keys.get('InitialR2T'), 'Yes');
  assert.is(keys.get('ImmediateData'), 'No');
});

test('login: CRC32C header and data digests both ways once negotiated; a bad header digest closes the connection', () => {
  const { rig, portal } = loggedIn([['HeaderDigest', 'CRC32C,None'], ['DataDigest', 'CRC32C']]);
  assert.ok(rig.wire.hd && rig.wire.dd);
  // NOP-Out with ping data: the parser checks both digests of the NOP-In.
  rig.send(bhs(0x00, 0x80, { itt: 5, cmdSN: rig.cmdSN++ }), Uint8Array.from(Buffer.from('nopping\0')));
  const nop = rig.one();
  assert.is(nop.op, OP.NopIn);
  assert.is(Buffer.from(nop.data).toString(), 'nopping\0');
  // Corrupt the header digest of the next PDU.
  const bad = encode(bhs(0x00, 0x80, { itt: 6, cmdSN: rig.cmdSN }), undefined, { hd: true });
  bad[49] ^= 0x40;
  rig.raw(bad);
  assert.is(rig.closedByTarget, 1);
  assert.is(portal.sessions.counters.get('header-digest'), 1);
  assert.is(rig.take().length, 0);
});

test('login: HeaderDigest answered CRC32C only when the initiator lists it first or alone', () => {
  for (const [offer, want] of [['CRC32C', 'CRC32C'], ['None,CRC32C', 'None'], ['CRC32C,None', 'CRC32C'], ['None', 'None']]) {
    const { portal } = makePortal();
    const rig = new Rig(portal);
    const r = rig.loginStep(0x87, [['InitiatorName', INI], ['TargetName', IQN], ['HeaderDigest', offer]]);
    assert.is(r.keys.get('HeaderDigest'), want, offer);
  }
});

test('login failures answer Status-Class/Detail and close: missing names 0x0207, unknown target 0x0203, version 0x0205', () => {
  const cases: Array<[Array<[string, string]>, number, object?]> = [
    [[['TargetName', IQN]], 0x0207],
    [[['InitiatorName', INI]], 0x0207],
    [[['InitiatorName', INI], ['TargetName', 'iqn.2024-01.test:nope']], 0x0203],
    [[['InitiatorName', INI], ['TargetName', IQN], ['SessionType', 'Weird']], 0x0209],
    [[['InitiatorName', INI], ['TargetName', IQN]], 0x0205, { vmin: 1 }],
  ];
  for (const [pairs, want, o] of cases) {
    const { portal } = makePortal();
    const rig = new Rig(portal);
    const r = rig.loginStep(0x87, pairs, o);
    assert.is(r.status, want, JSON.stringify(pairs));
    assert.is(r.rsp.flags & 0x80, 0, 'no transit on failure');
    assert.is(rig.closedByTarget, 1);
    assert.is(portal.sessions.size, 0);
  }
});

test('login in the wrong stage, bad NSG, and non-login PDUs before/during login', () => {
  {
    const { portal } = makePortal();
    const rig = new Rig(portal);
    // Security stage without transit: the target stays in stage 0 (T=0 CSG=0).
    const a = rig.loginStep(0x01, [['InitiatorName', INI], ['TargetName', IQN], ['AuthMethod', 'None']]);
    assert.is(a.status, 0);
    assert.is(a.rsp.flags & 0x80, 0);
    assert.is((a.rsp.flags >> 2) & 3, 0);
    assert.is(a.keys.get('AuthMethod'), 'None');
    // Now claims CSG=1 without the transition: initiator error (RFC 7143 6.3).
    const b = rig.loginStep(0x87, [['HeaderDigest', 'None']]);
    assert.is(b.status, 0x0200);
    assert.is(rig.closedByTarget, 1);
  }
  {
    const { portal } = makePortal();
    const rig = new Rig(portal);
    assert.is(rig.loginStep(0x86, [['InitiatorName', INI], ['TargetName', IQN]]).status, 0x0200, 'NSG=2 is reserved');
  }
  {
    const { portal } = makePortal();
    const rig = new Rig(portal);
    assert.is(rig.loginStep(0x8f, [['InitiatorName', INI], ['TargetName', IQN]]).status, 0x0200, 'CSG=3');
  }
  {
    // A SCSI command before any Login Request: the connection is closed without an answer (RFC 7143 6).
    const { portal } = makePortal();
    const rig = new Rig(portal);
    rig.cmd({ cdb: TUR, E: 0 });
    assert.is(rig.take().length, 0);
    assert.is(rig.closedByTarget, 1);
  }
  {
    // After login started: Login reject "Invalid during login" (0x020b), then close.
    const { portal } = makePortal();
    const rig = new Rig(portal);
    rig.loginStep(0x01, [['InitiatorName', INI], ['TargetName', IQN], ['AuthMethod', 'None']]);
    rig.cmd({ cdb: TUR, E: 0 });
    const r = rig.one();
    assert.is(r.op, OP.LoginRsp);
    assert.is((r.bhs[36] << 8) | r.bhs[37], 0x020b);
    assert.is(rig.closedByTarget, 1);
  }
});

test('login: a non-zero TSIH (adding a connection) is refused with MaxConnections=1', () => {
  const { portal } = makePortal();
  const a = new Rig(portal);
  assert.is(a.login().status, 0);
  const live = portal.sessions.all()[0].tsih;
  const b = new Rig(portal);
  assert.is(b.loginStep(0x87, [['InitiatorName', INI], ['TargetName', IQN]], { tsih: live }).status, 0x0206);
  const c = new Rig(portal);
  assert.is(c.loginStep(0x87, [['InitiatorName', INI], ['TargetName', IQN]], { tsih: 0x7777 }).status, 0x020a);
});

// ---- CHAP -----------------------------------------------------------------------------------------

function chapRig(secret = 'secret-of-16-bytes') {
  const { portal } = makePortal([{ iqn: IQN, chap: { user: 'alice', secret: 'secret-of-16-bytes' } }]);
  const rig = new Rig(portal);
  // As libiscsi: CSG=0 NSG=1 T=1 with AuthMethod=CHAP,None.
  const a = rig.loginStep(0x81, [['InitiatorName', INI], ['TargetName', IQN], ['SessionType', 'Normal'], ['AuthMethod', 'CHAP,None']]);
  assert.is(a.status, 0);
  assert.is(a.keys.get('AuthMethod'), 'CHAP');
  assert.is(a.rsp.flags & 0x80, 0, 'no transit before authentication');
  const b = rig.loginStep(0x01, [['CHAP_A', '5']]);
  assert.is(b.status, 0);
  assert.is(b.keys.get('CHAP_A'), '5');
  const id = Number(b.keys.get('CHAP_I'));
  const c = b.keys.get('CHAP_C')!;
  assert.match(c, /^0x[0-9a-f]{32,}$/);
  const resp = createHash('md5').update(Uint8Array.of(id)).update(secret).update(Buffer.from(c.slice(2), 'hex')).digest();
  return { rig, portal, resp };
}

test('CHAP: one-way MD5 with hex response, then operational stage and full feature phase', () => {
  const { rig, resp } = chapRig();
  const d = rig.loginStep(0x81, [['CHAP_N', 'alice'], ['CHAP_R', '0x' + resp.toString('hex')]]);
  assert.is(d.status, 0);
  assert.is(d.rsp.flags, 0x81, 'T=1 CSG=0 NSG=1');
  const e = rig.loginStep(0x87, [['HeaderDigest', 'None'], ['DataDigest', 'None']]);
  assert.is(e.status, 0);
  assert.is(e.rsp.flags, 0x87);
  assert.is(rig.conn.phase, 'ffp');
});

test('CHAP: base64 response (RFC 7143 6.1 "0b" form) is accepted', () => {
  const { rig, resp } = chapRig();
  assert.is(rig.loginStep(0x81, [['CHAP_N', 'alice'], ['CHAP_R', '0b' + resp.toString('base64')]]).status, 0);
});

test('CHAP failures: wrong secret, wrong name, skipping security, no MD5 in CHAP_A all answer 0x0201', () => {
  {
    const { rig, resp } = chapRig('wrong-secret');
    assert.is(rig.loginStep(0x81, [['CHAP_N', 'alice'], ['CHAP_R', '0x' + resp.toString('hex')]]).status, 0x0201);
    assert.is(rig.closedByTarget, 1);
  }
  {
    const { rig, resp } = chapRig();
    assert.is(rig.loginStep(0x81, [['CHAP_N', 'mallory'], ['CHAP_R', '0x' + resp.toString('hex')]]).status, 0x0201);
  }
  {
    const { portal } = makePortal([{ iqn: IQN, chap: { user: 'alice', secret: 'secret-of-16-bytes' } }]);
    const rig = new Rig(portal);
    assert.is(rig.login().status, 0x0201, 'operational stage without authentication');
  }
  {
    const { portal } = makePortal([{ iqn: IQN, chap: { user: 'alice', secret: 'secret-of-16-bytes' } }]);
    const rig = new Rig(portal);
    rig.loginStep(0x81, [['InitiatorName', INI], ['TargetName', IQN], ['AuthMethod', 'CHAP,None']]);
    const r = rig.loginStep(0x01, [['CHAP_A', '7']]);
    assert.is(r.status, 0x0201);
    assert.is(r.keys.get('CHAP_A'), 'Reject');
  }
});

// ---- discovery ------------------------------------------------------------------------------------

function sendTargets(rig: Rig, value = 'All'): TPdu {
  rig.send(bhs(0x04, 0x80, { imm: true, itt: 42, ttt: 0xffffffff, cmdSN: rig.cmdSN }), text([['SendTargets', value]]));
  return rig.one();
}

test('discovery: SendTargets=All is one Text Response (F, TTT reserved) with TargetName and TargetAddress per target', () => {
  const { portal } = makePortal([{ iqn: IQN }, { iqn: IQN2 }]);
  const rig = new Rig(portal);
  const r = rig.loginStep(0x87, [['InitiatorName', INI], ['SessionType', 'Discovery'], ['HeaderDigest', 'None'], ['DataDigest', 'None']]);
  assert.is(r.status, 0);
  const t = sendTargets(rig);
  assert.is(t.op, OP.TextRsp);
  assert.is(t.flags, 0x80);
  assert.is(t.itt, 42);
  assert.is(t.ttt, 0xffffffff);
  const lines = Buffer.from(t.data).toString().split('\0').filter(Boolean);
  assert.equal(lines, [`TargetName=${IQN}`, 'TargetAddress=10.0.0.1:3260,1', `TargetName=${IQN2}`, 'TargetAddress=10.0.0.1:3260,1']);
  // SCSI commands have no place in a discovery session.
  rig.cmd({ cdb: TUR, E: 0 });
  assert.is(rig.one().op, OP.Reject);
});

test('discovery: IPv6 portal addresses are bracketed; a Normal session lists only its own target', () => {
  const { portal } = makePortal([{ iqn: IQN }, { iqn: IQN2 }]);
  const rig = new Rig(portal, {}, { address: 'fd00::1', port: 3260 });
  rig.loginStep(0x87, [['InitiatorName', INI], ['SessionType', 'Discovery']]);
  assert.match(Buffer.from(sendTargets(rig).data).toString(), 'TargetAddress=[fd00::1]:3260,1');
  const n = new Rig(portal);
  n.login([], { isid: Uint8Array.of(0x80, 0, 0, 0, 0, 9) });
  const lines = Buffer.from(sendTargets(n, '').data).toString().split('\0').filter(Boolean);
  assert.equal(lines, [`TargetName=${IQN}`, 'TargetAddress=10.0.0.1:3260,1']);
});

test('SendTargets in a normal session (as iscsi-test-cu iSCSISendTargets): All lists the session target; bad keys and values are not answered with targets', () => {
  const { rig } = loggedIn();
  const ok = sendTargets(rig, 'All');
  assert.equal(Buffer.from(ok.data).toString().split('\0').filter(Boolean), [`TargetName=${IQN}`, 'TargetAddress=10.0.0.1:3260,1']);
  const ask = (pairs: Array<[string, string]>) => {
    rig.send(bhs(0x04, 0x80, { imm: true, itt: 43, ttt: 0xffffffff, cmdSN: rig.cmdSN }), text(pairs));
    const p = rig.one();
    assert.is(p.op, OP.TextRsp);
    assert.is(p.flags, 0x80);
    return Buffer.from(p.data).toString().split('\0').filter(Boolean);
  };
  assert.equal(ask([['SendTargetsPlease', 'All']]), ['SendTargetsPlease=NotUnderstood']);
  assert.equal(ask([['SendTargets', 'Alle']]), ['SendTargets=Reject']);
  assert.equal(ask([['SendTargets', 'A']]), ['SendTargets=Reject']);
  assert.equal(ask([['sENDtARGETS', 'aLL']]), ['sENDtARGETS=NotUnderstood']);
  assert.equal(ask([['SendTargets', 'iqn.2024-01.test:other']]), []);
  assert.equal(ask([['MaxBurstLength', '4096']]), ['MaxBurstLength=Reject'], 'login-only key in full feature phase');
});

test('Text: a response longer than the initiator MaxRecvDataSegmentLength continues with C and a TTT (11.11)', () => {
  const many = Array.from({ length: 40 }, (_, i) => ({ iqn: `iqn.2024-01.test.xdpstack:some-long-target-name-${i}` }));
  const { portal } = makePortal(many);
  const rig = new Rig(portal);
  rig.loginStep(0x87, [['InitiatorName', INI], ['SessionType', 'Discovery'], ['MaxRecvDataSegmentLength', '512']]);
  let p = sendTargets(rig);
  let all = Buffer.from(p.data);
  let rounds = 0;
  while (p.flags !== 0x80 && rounds++ < 20) {
    assert.is(p.flags, 0x40, 'C set, F clear');
    assert.ok(p.ttt !== 0xffffffff);
    assert.ok(p.data.length <= 512);
    rig.send(bhs(0x04, 0x80, { imm: true, itt: 42, ttt: p.ttt, cmdSN: rig.cmdSN }));
    p = rig.one();
    all = Buffer.concat([all, p.data]);
  }
  assert.is(p.ttt, 0xffffffff);
  const names = all.toString().split('\0').filter((l) => l.startsWith('TargetName='));
  assert.is(names.length, 40);
});

// ---- writes and R2T -------------------------------------------------------------------------------

function r2tOf(p: TPdu) {
  assert.is(p.op, OP.R2t);
  return { ttt: p.ttt, r2tsn: u32(p.bhs, 36), off: u32(p.bhs, 40), len: u32(p.bhs, 44), statSN: p.statSN };
}

test('write with InitialR2T=Yes, ImmediateData=No: an R2T solicits all data; StatSN not advanced by R2T; GOOD after the F bit', () => {
  const { rig, scsi } = loggedIn([['InitialR2T', 'Yes'], ['ImmediateData', 'No'], ['MaxOutstandingR2T', '1']]);
  const data = pattern(4096, 1);
  const itt = rig.cmd({ cdb: write10(10, 8), E: 4096, w: true });
  const r = r2tOf(rig.one());
  assert.ok(r.ttt !== 0xffffffff);
  assert.is(r.r2tsn, 0);
  assert.is(r.off, 0);
  assert.is(r.len, 4096);
  rig.dataOut(itt, r.ttt, 0, 0, data.subarray(0, 2048), false);
  assert.is(rig.take().length, 0);
  rig.dataOut(itt, r.ttt, 1, 2048, data.subarray(2048), true);
  const rsp = rig.one();
  assert.is(rsp.op, OP.ScsiRsp);
  assert.is(rsp.itt, itt);
  assert.is(rsp.flags, 0x80);
  assert.is(rsp.bhs[2], 0); // command completed at target
  assert.is(rsp.bhs[3], 0); // GOOD
  assert.is(rsp.statSN, r.statSN, 'the R2T carried the next StatSN without advancing it (11.8.3)');
  assert.is(u32(rsp.bhs, 36), 0, 'ExpDataSN 0: no Data-In sent (11.4.8)');
  assert.equal(scsi.disk.subarray(10 * 512, 18 * 512), data);
});

test('write with InitialR2T=No, ImmediateData=Yes: immediate + unsolicited data up to FirstBurstLength, R2T for the rest', () => {
  const { rig, scsi, login } = loggedIn([['InitialR2T', 'No'], ['ImmediateData', 'Yes'], ['FirstBurstLength', '8192']]);
  assert.is(login.keys.get('InitialR2T'), 'No');
  assert.is(login.keys.get('FirstBurstLength'), '8192');
  const data = pattern(16384, 2);
  const itt = rig.cmd({ cdb: write10(0, 32), E: 16384, w: true, f: false, data: data.subarray(0, 4096) });
  assert.is(rig.take().length, 0, 'no R2T while the unsolicited burst is open');
  rig.dataOut(itt, 0xffffffff, 0, 4096, data.subarray(4096, 8192), true);
  const r = r2tOf(rig.one());
  assert.is(r.off, 8192);
  assert.is(r.len, 8192);
  assert.is(r.r2tsn, 0);
  rig.dataOut(itt, r.ttt, 0, 8192, data.subarray(8192), true);
  const rsp = rig.one();
  assert.is(rsp.bhs[3], 0);
  assert.equal(scsi.disk.subarray(0, 16384), data);
});

test('write with immediate data only (F set on the command): R2T from the end of the immediate data', () => {
  const { rig, scsi } = loggedIn([['InitialR2T', 'Yes'], ['ImmediateData', 'Yes']]);
  const data = pattern(8192, 3);
  const itt = rig.cmd({ cdb: write10(40, 16), E: 8192, w: true, data: data.subarray(0, 1024) });
  const r = r2tOf(rig.one());
  assert.is(r.off, 1024);
  assert.is(r.len, 7168);
  rig.dataOut(itt, r.ttt, 0, 1024, data.subarray(1024), true);
  assert.is(rig.one().bhs[3], 0);
  assert.equal(scsi.disk.subarray(40 * 512, 56 * 512), data);
  // All data immediate: no R2T at all.
  const d2 = pattern(512, 4);
  rig.cmd({ cdb: write10(1, 1), E: 512, w: true, data: d2 });
  const p = rig.one();
  assert.is(p.op, OP.ScsiRsp);
  assert.equal(scsi.disk.subarray(512, 1024), d2);
});

test('unsolicited data the negotiation forbids: CHECK CONDITION, ABORTED COMMAND, 0x0C/0x0C (RFC 7143 11.4.7.2); nothing written', () => {
  {
    const { rig, scsi } = loggedIn([['ImmediateData', 'No']]);
    rig.cmd({ cdb: write10(0, 1), E: 512, w: true, data: pattern(512, 5) });
    const p = rig.one();
    assert.is(p.op, OP.ScsiRsp);
    assert.is(p.bhs[3], 2);
    assert.equal(senseOf(p), [0x0b, 0x0c, 0x0c]);
    assert.is(scsi.commands.length, 0);
  }
  {
    const { rig, scsi } = loggedIn([['InitialR2T', 'Yes'], ['ImmediateData', 'No']], { initialR2T: true });
    const itt = rig.cmd({ cdb: write10(0, 2), E: 1024, w: true, f: false });
    assert.is(rig.take().length, 0, 'waits for the unsolicited burst to end');
    rig.dataOut(itt, 0xffffffff, 0, 0, pattern(1024, 6), true);
    const p = rig.one();
    assert.is(p.bhs[3], 2);
    assert.equal(senseOf(p), [0x0b, 0x0c, 0x0c]);
    assert.is(scsi.commands.length, 0);
  }
});

test('data longer than the expected transfer length: CHECK CONDITION, incorrect amount of data (0x0C/0x0D)', () => {
  const { rig, scsi } = loggedIn([['InitialR2T', 'Yes']]);
  rig.cmd({ cdb: write10(0, 1), E: 512, w: true, data: pattern(1024, 7) });
  const p = rig.one();
  assert.is(p.bhs[3], 2);
  assert.equal(senseOf(p), [0x0b, 0x0c, 0x0d]);
  assert.is(scsi.commands.length, 0);
  // Beyond the R2T's desired length.
  const itt = rig.cmd({ cdb: write10(0, 1), E: 512, w: true });
  const r = r2tOf(rig.one());
  rig.dataOut(itt, r.ttt, 0, 0, pattern(1024, 8), true);
  const q = rig.one();
  assert.equal(senseOf(q), [0x0b, 0x0c, 0x0d]);
  assert.is(scsi.commands.length, 0);
});

test('R2T sequencing: MaxBurstLength per R2T, at most MaxOutstandingR2T open, R2TSN counting up, distinct TTTs', () => {
  const { rig, scsi } = loggedIn([['InitialR2T', 'Yes'], ['ImmediateData', 'No'], ['MaxBurstLength', '4096'], ['MaxOutstandingR2T', '2']]);
  const E = 20480;
  const data = pattern(E, 9);
  const itt = rig.cmd({ cdb: write10(100, 40), E, w: true });
  let open = rig.take().map(r2tOf);
  assert.equal(open.map((r) => [r.r2tsn, r.off, r.len]), [[0, 0, 4096], [1, 4096, 4096]]);
  const seen = new Set<number>();
  let next = 2;
  while (open.length) {
    const r = open.shift()!;
    assert.not.ok(seen.has(r.ttt));
    seen.add(r.ttt);
    rig.dataOut(itt, r.ttt, 0, r.off, data.subarray(r.off, r.off + 2048), false);
    rig.dataOut(itt, r.ttt, 1, r.off + 2048, data.subarray(r.off + 2048, r.off + r.len), true);
    for (const p of rig.take()) {
      if (p.op === OP.ScsiRsp) { assert.is(p.bhs[3], 0); continue; }
      const n = r2tOf(p);
      assert.is(n.r2tsn, next);
      assert.is(n.off, next * 4096);
      assert.is(n.len, 4096);
      next++;
      open.push(n);
      assert.ok(open.length <= 2, 'MaxOutstandingR2T');
    }
  }
  assert.is(next, 5);
  assert.equal(scsi.disk.subarray(100 * 512, 100 * 512 + E), data);
});

test('Data-Out DataSN errors (as iscsi-test-cu iSCSIDataSnInvalid): CHECK CONDITION 0x47/0x05 after the F bit, nothing written', () => {
  for (const sns of [[0, 0], [27], [0xffffffff], [1, 0]]) {
    const { rig, scsi } = loggedIn([['InitialR2T', 'Yes'], ['ImmediateData', 'No']]);
    const len = sns.length * 512;
    const itt = rig.cmd({ cdb: write10(100, sns.length), E: len, w: true });
    const r = r2tOf(rig.one());
    sns.forEach((sn, i) => {
      const last = i === sns.length - 1;
      const off = i * 512;
      rig.dataOut(itt, r.ttt, sn, off, pattern(512, i), last);
      if (!last) assert.is(rig.take().length, 0, 'no answer before the F bit');
    });
    const p = rig.one();
    assert.is(p.op, OP.ScsiRsp, JSON.stringify(sns));
    assert.is(p.bhs[3], 2);
    assert.equal(senseOf(p), [0x0b, 0x47, 0x05]);
    assert.is(scsi.commands.length, 0);
  }
});

test('bounded memory: a write above maxTransferLength ends with INVALID FIELD IN CDB; solicited data waits for the connection budget', () => {
  const { rig, scsi } = loggedIn([['InitialR2T', 'Yes'], ['ImmediateData', 'No']], { maxTransferLength: 8192, dataOutBudget: 8192 });
  rig.cmd({ cdb: write10(0, 32), E: 16384, w: true });
  const p = rig.one();
  assert.is(p.op, OP.ScsiRsp);
  assert.equal(senseOf(p), [0x05, 0x24, 0x00]);
  const a = rig.cmd({ cdb: write10(0, 16), E: 8192, w: true });
  const ra = r2tOf(rig.one());
  const b = rig.cmd({ cdb: write10(16, 16), E: 8192, w: true });
  assert.is(rig.take().length, 0, 'no room for the second write yet');
  rig.dataOut(a, ra.ttt, 0, 0, pattern(8192, 1), true);
  const ps = rig.take();
  const rspA = ps.find((x) => x.op === OP.ScsiRsp)!;
  const r2tB = ps.find((x) => x.op === OP.R2t)!;
  assert.is(ps.length, 2);
  assert.is(rspA.itt, a);
  assert.is(r2tB.itt, b);
  rig.dataOut(b, r2tOf(r2tB).ttt, 0, 0, pattern(8192, 2), true);
  assert.is(rig.one().bhs[3], 0);
  assert.equal(scsi.disk.subarray(16 * 512, 32 * 512), pattern(8192, 2));
});

// ---- reads and residuals --------------------------------------------------------------------------

test('read: Data-In split by the initiator MaxRecvDataSegmentLength, F at each MaxBurstLength, status in the last PDU', () => {
  const { rig, scsi } = loggedIn([['MaxRecvDataSegmentLength', '1024'], ['MaxBurstLength', '2048']]);
  scsi.disk.set(pattern(4096, 11), 0);
  const itt = rig.cmd({ cdb: read10(0, 8), E: 4096, r: true });
  const ps = rig.take();
  assert.is(ps.length, 4, 'no separate SCSI Response');
  ps.forEach((p, i) => {
    assert.is(p.op, OP.DataIn);
    assert.is(p.itt, itt);
    assert.is(p.data.length, 1024);
    assert.is(u32(p.bhs, 36), i, 'DataSN');
    assert.is(u32(p.bhs, 40), i * 1024, 'Buffer Offset');
    assert.is((p.flags & 0x80) !== 0, i === 1 || i === 3, 'F ends each 2048-byte burst');
    assert.is((p.flags & 0x01) !== 0, i === 3, 'S only on the last');
  });
  assert.is(ps[3].bhs[3], 0);
  assert.is(ps[3].flags & 0x06, 0, 'no residual');
  assert.equal(Buffer.concat(ps.map((p) => p.data)), Buffer.from(pattern(4096, 11)));
  // The status PDU took a StatSN: the next status carries the one after it.
  rig.cmd({ cdb: TUR, E: 0 });
  assert.is(rig.one().statSN, ps[3].statSN + 1);
});

test('residuals (RFC 7143 11.4.5): underflow and overflow on reads with S, on writes in the SCSI Response', () => {
  const { rig } = loggedIn();
  rig.cmd({ cdb: read10(0, 1), E: 1024, r: true });
  let p = rig.one();
  assert.is(p.data.length, 512);
  assert.is(p.flags & 0x07, 0x02 | 0x01, 'U and S');
  assert.is(u32(p.bhs, 44), 512);
  rig.cmd({ cdb: read10(0, 1), E: 256, r: true });
  p = rig.one();
  assert.is(p.data.length, 256, 'truncated to the expected length');
  assert.is(p.flags & 0x07, 0x04 | 0x01, 'O and S');
  assert.is(u32(p.bhs, 44), 256);
  // Write of one block with 1024 bytes expected: the CDB asks for 512, underflow 512.
  rig.cmd({ cdb: write10(0, 1), E: 1024, w: true, data: pattern(1024, 1) });
  p = rig.one();
  assert.is(p.op, OP.ScsiRsp);
  assert.is(p.flags & 0x06, 0x02);
  assert.is(u32(p.bhs, 44), 512);
});

test('read error: a SCSI Response with CHECK CONDITION and SenseLength-prefixed sense, no Data-In', () => {
  const { rig } = loggedIn();
  rig.cmd({ cdb: read10(100000, 1), E: 512, r: true });
  const p = rig.one();
  assert.is(p.op, OP.ScsiRsp);
  assert.is(p.bhs[3], 2);
  assert.is(u32(p.bhs, 36), 0, 'ExpDataSN');
  assert.is((p.data[0] << 8) | p.data[1], 18);
  assert.equal(senseOf(p), [0x05, 0x21, 0x00]);
});

// ---- CmdSN window ---------------------------------------------------------------------------------

test('CmdSN: out-of-order commands wait for the gap, then run in order; outside the window silently ignored (3.2.2.1)', () => {
  const { rig, portal } = loggedIn();
  const c = rig.cmdSN;
  rig.cmd({ cdb: TUR, E: 0, itt: 2, cmdSN: c + 1 });
  assert.is(rig.take().length, 0, 'CmdSN+1 waits');
  rig.cmd({ cdb: TUR, E: 0, itt: 1, cmdSN: c });
  const ps = rig.take();
  assert.equal(ps.map((p) => p.itt), [1, 2]);
  assert.is(ps[1].expCmdSN, c + 2);
  const max = ps[1].maxCmdSN;
  rig.cmd({ cdb: TUR, E: 0, itt: 3, cmdSN: max + 1 });
  assert.is(rig.take().length, 0, 'beyond MaxCmdSN');
  rig.cmd({ cdb: TUR, E: 0, itt: 4, cmdSN: c + 1 });
  assert.is(rig.take().length, 0, 'below ExpCmdSN');
  assert.ok((portal.sessions.counters.get('cmdsn-outside-window') ?? 0) >= 2);
  rig.cmd({ cdb: TUR, E: 0, itt: 5, cmdSN: c + 2 });
  assert.is(rig.one().itt, 5, 'in window works again');
  // Immediate: answered at once, ExpCmdSN does not move.
  rig.cmd({ cdb: TUR, E: 0, itt: 6, cmdSN: c + 3, imm: true });
  const im = rig.one();
  assert.is(im.itt, 6);
  assert.is(im.expCmdSN, c + 3);
});

test('CmdSN: MaxCmdSN bounds the commands in progress and never goes back', () => {
  const { rig, scsi } = loggedIn([], { cmdWindow: 4 });
  scsi.deferred = [];
  const c = rig.cmdSN;
  for (let i = 0; i < 4; i++) rig.cmd({ cdb: TUR, E: 0 });
  rig.cmd({ cdb: TUR, E: 0 }); // the fifth is outside the window of 4
  assert.is(scsi.commands.length, 4);
  const fns = scsi.deferred.splice(0);
  fns[0]();
  const p = rig.one();
  assert.is(p.expCmdSN, c + 4);
  assert.is(p.maxCmdSN, c + 4, 'one slot freed: MaxCmdSN = ExpCmdSN');
  for (const f of fns.slice(1)) f();
  const rest = rig.take();
  assert.is(rest[rest.length - 1].maxCmdSN, c + 7);
});

// ---- NOP ------------------------------------------------------------------------------------------

test('NOP-Out ping answered by NOP-In echoing ITT, LUN and data, TTT reserved, StatSN advancing (11.18/11.19)', () => {
  const { rig } = loggedIn();
  const c = rig.cmdSN++;
  rig.send(bhs(0x00, 0x80, { itt: 0x55, cmdSN: c, lun: lunField(3) }), Uint8Array.from(Buffer.from('nopping\0')));
  const a = rig.one();
  assert.is(a.op, OP.NopIn);
  assert.is(a.itt, 0x55);
  assert.is(a.ttt, 0xffffffff);
  assert.is(a.bhs[9], 3);
  assert.is(Buffer.from(a.data).toString(), 'nopping\0');
  assert.is(a.expCmdSN, c + 1);
  rig.send(bhs(0x00, 0x80, { itt: 0x56, cmdSN: rig.cmdSN++ }));
  const b = rig.one();
  assert.is(b.data.length, 0);
  assert.is(b.statSN, a.statSN + 1);
  // ITT 0xffffffff with I: no answer.
  rig.send(bhs(0x00, 0x80, { imm: true, itt: 0xffffffff, cmdSN: rig.cmdSN }));
  assert.is(rig.take().length, 0);
});

test('target NOP-In ping on idle; answered keeps the connection, unanswered closes it (dead initiator)', () => {
  const { rig, portal, scsi } = loggedIn([], { nopInterval: 1000, nopTimeout: 500 });
  assert.is(rig.conn.advance(500), 1000);
  assert.is(rig.take().length, 0);
  const deadline = rig.conn.advance(1000);
  const ping = rig.one();
  assert.is(ping.op, OP.NopIn);
  assert.is(ping.itt, 0xffffffff);
  assert.ok(ping.ttt !== 0xffffffff);
  assert.is(deadline, 1500);
  rig.now = 1200;
  rig.send(bhs(0x00, 0x80, { imm: true, itt: 0xffffffff, ttt: ping.ttt, cmdSN: rig.cmdSN }));
  assert.is(rig.take().length, 0);
  rig.conn.advance(1600);
  assert.is(rig.closedByTarget, 0);
  // StatSN was not advanced by the ping (11.19: ITT 0xffffffff).
  rig.cmd({ cdb: TUR, E: 0 });
  assert.is(rig.one().statSN, ping.statSN);
  // Next ping goes unanswered.
  rig.conn.advance(1200 + 1000);
  assert.is(rig.one().op, OP.NopIn);
  rig.conn.advance(2200 + 499);
  assert.is(rig.closedByTarget, 0);
  assert.is(rig.conn.advance(2200 + 500), Infinity);
  assert.is(rig.closedByTarget, 1);
  assert.is(portal.sessions.counters.get('nop-timeout'), 1);
  assert.ok(scsi.log.some((l) => l.startsWith('nexusLost')));
});

test('login timeout closes a connection that never completes login', () => {
  const { portal } = makePortal();
  const rig = new Rig(portal, { loginTimeout: 1000 });
  assert.is(rig.conn.advance(999), 1000);
  rig.conn.advance(1000);
  assert.is(rig.closedByTarget, 1);
});

// ---- logout ---------------------------------------------------------------------------------------

test('logout (close session): Logout Response 0, then the connection closes and the I_T nexus ends', () => {
  const { rig, portal, scsi } = loggedIn();
  assert.is(portal.sessions.size, 1);
  const h = bhs(0x06, 0x80 | 0, { imm: true, itt: 0x99, cmdSN: rig.cmdSN });
  rig.send(h);
  const p = rig.one();
  assert.is(p.op, OP.LogoutRsp);
  assert.is(p.bhs[2], 0);
  assert.is(p.itt, 0x99);
  assert.is(rig.closedByTarget, 1);
  assert.is(portal.sessions.size, 0);
  assert.equal(scsi.log, [`nexusLost ${INI},i,0x801234560001`]);
  rig.cmd({ cdb: TUR, E: 0 });
  assert.is(rig.take().length, 0, 'nothing after logout');
});

test('logout: close connection with a wrong CID answers 1, recovery removal answers 2 (ERL 0)', () => {
  const { rig } = loggedIn();
  const h = bhs(0x06, 0x80 | 1, { imm: true, itt: 1, cmdSN: rig.cmdSN });
  h[20] = 0; h[21] = 9;
  rig.send(h);
  assert.is(rig.one().bhs[2], 1);
  rig.send(bhs(0x06, 0x80 | 2, { imm: true, itt: 2, cmdSN: rig.cmdSN }));
  assert.is(rig.one().bhs[2], 2);
  assert.is(rig.closedByTarget, 0);
});

// ---- task management ------------------------------------------------------------------------------

test('ABORT TASK of a write waiting for R2T data: Function complete; the task is never answered, later Data-Out discarded', () => {
  const { rig, scsi } = loggedIn([['InitialR2T', 'Yes'], ['ImmediateData', 'No']]);
  const c = rig.cmdSN;
  const itt = rig.cmd({ cdb: write10(0, 8), E: 4096, w: true });
  const r = r2tOf(rig.one());
  const t = rig.tmf(1, { ref: itt, refCmdSN: c });
  assert.is(t.op, OP.TmfRsp);
  assert.is(t.flags, 0x80);
  assert.is(t.bhs[2], 0, 'Function complete');
  assert.is(t.itt, 900);
  rig.dataOut(itt, r.ttt, 0, 0, pattern(4096, 1), true);
  assert.is(rig.take().length, 0);
  assert.is(scsi.commands.length, 0);
  assert.is(rig.conn.taskCount, 0);
});

test('ABORT TASK of a command the SCSI layer is still executing: Function complete only once it returned (SAM-5: no further effect), the command unanswered', () => {
  const { rig, scsi } = loggedIn();
  scsi.deferred = [];
  const c = rig.cmdSN;
  const itt = rig.cmd({ cdb: read10(0, 1), E: 512, r: true });
  rig.sendTmf(1, { ref: itt, refCmdSN: c });
  assert.is(rig.take().length, 0, 'no TMF response while the command may still take effect');
  for (const f of scsi.deferred.splice(0)) f();
  const out = rig.take();
  assert.equal(out.map((p) => [p.op, p.itt, p.bhs[2]]), [[OP.TmfRsp, 900, 0]], 'then Function complete, and nothing for the aborted command');
  // The session goes on.
  scsi.deferred = null;
  rig.cmd({ cdb: TUR, E: 0 });
  assert.is(rig.one().op, OP.ScsiRsp);
});

test('ABORT TASK of an unknown task: "Task does not exist" when RefCmdSN is outside the window; a lost CmdSN in the window is plugged (11.5.1 b)', () => {
  const { rig } = loggedIn();
  const c = rig.cmdSN;
  rig.cmd({ cdb: TUR, E: 0 });
  rig.one();
  assert.is(rig.tmf(1, { ref: 0x1234, refCmdSN: c }).bhs[2], 1, 'completed before: does not exist');
  // CmdSN c+1 "lost"; TMF carries CmdSN c+2 (the initiator's next).
  rig.cmdSN = c + 2;
  assert.is(rig.tmf(1, { ref: 0x4321, refCmdSN: c + 1 }).bhs[2], 0);
  rig.cmd({ cdb: TUR, E: 0, itt: 77, cmdSN: c + 2 });
  const p = rig.one();
  assert.is(p.itt, 77, 'the gap at c+1 no longer blocks c+2');
  assert.is(p.expCmdSN, c + 3);
});

test('ABORT TASK SET / LUN RESET / TARGET WARM RESET abort tasks, reach the SCSI layer, answer 0; unknown LUN answers 2', () => {
  const { rig, scsi } = loggedIn([['InitialR2T', 'Yes'], ['ImmediateData', 'No']]);
  rig.cmd({ cdb: write10(0, 1), E: 512, w: true });
  rig.one(); // R2T
  assert.is(rig.conn.taskCount, 1);
  assert.is(rig.tmf(2, { lun: 0 }).bhs[2], 0);
  assert.is(rig.conn.taskCount, 0);
  assert.is(rig.tmf(2, { lun: 5 }).bhs[2], 2, 'LUN does not exist');
  rig.cmd({ cdb: write10(0, 1), E: 512, w: true });
  rig.one();
  assert.is(rig.tmf(5, { lun: 0 }).bhs[2], 0);
  assert.is(rig.conn.taskCount, 0);
  assert.is(rig.tmf(6).bhs[2], 0);
  assert.equal(scsi.log, [`lunReset 0 ${INI},i,0x801234560001`, `targetReset ${INI},i,0x801234560001`]);
  assert.is(rig.tmf(4, { lun: 0 }).bhs[2], 0, 'CLEAR TASK SET');
});

test('TMF responses for unsupported functions: TASK REASSIGN 4 (ERL 0), CLEAR ACA and undefined 5', () => {
  const { rig } = loggedIn();
  assert.is(rig.tmf(8).bhs[2], 4);
  assert.is(rig.tmf(3).bhs[2], 5);
  assert.is(rig.tmf(20).bhs[2], 5);
});

test('LUN RESET from one session aborts the other session\'s tasks on that LUN; TARGET COLD RESET closes every session', () => {
  const { portal, scsi } = makePortal();
  const a = new Rig(portal);
  a.login([['InitialR2T', 'Yes'], ['ImmediateData', 'No']], { isid: Uint8Array.of(0x80, 0, 0, 0, 0, 1) });
  const b = new Rig(portal);
  b.login([], { isid: Uint8Array.of(0x80, 0, 0, 0, 0, 2) });
  const itt = a.cmd({ cdb: write10(0, 1), E: 512, w: true });
  const r = r2tOf(a.one());
  assert.is(b.tmf(5, { lun: 0 }).bhs[2], 0);
  a.dataOut(itt, r.ttt, 0, 0, pattern(512, 1), true);
  assert.is(a.take().length, 0, 'the aborted task is not answered');
  assert.is(scsi.get(IQN)!.commands.length, 0);
  assert.is(b.tmf(7).bhs[2], 0);
  assert.is(a.closedByTarget, 1);
  assert.is(b.closedByTarget, 1);
  assert.is(portal.sessions.size, 0);
});

// ---- Reject and malformed PDUs --------------------------------------------------------------------

function rejectOf(p: TPdu, reason: number, offending: Uint8Array) {
  assert.is(p.op, OP.Reject);
  assert.is(p.flags, 0x80);
  assert.is(p.bhs[2], reason);
  assert.is(p.itt, 0xffffffff);
  assert.is(p.data.length, 48);
  assert.equal([...p.data.subarray(0, 4)], [...offending.subarray(0, 4)]);
  assert.equal([...p.data.subarray(8, 48)], [...offending.subarray(8, 48)]);
}

test('Reject (RFC 7143 11.17): SNACK at ERL 0 is a protocol error, reserved opcodes are not supported, the header comes back', () => {
  const { rig } = loggedIn();
  const snack = bhs(0x10, 0x80, { itt: 3 });
  rig.send(snack);
  rejectOf(rig.one(), 0x04, snack);
  for (const op of [0x07, 0x1c, 0x21]) {
    const h = bhs(op, 0x80, { itt: 4 });
    rig.send(h);
    rejectOf(rig.one(), 0x05, h);
  }
  const login = Rig.loginBhs(0x87);
  rig.send(login);
  rejectOf(rig.one(), 0x04, login);
  assert.is(rig.closedByTarget, 0);
  rig.cmd({ cdb: TUR, E: 0 });
  assert.is(rig.one().op, OP.ScsiRsp, 'the session goes on');
});

test('Reject: a command with an AHS (extended CDB) is not supported, its CmdSN consumed; data beyond MaxRecvDataSegmentLength is a protocol error', () => {
  const { rig } = loggedIn([], { maxRecvDataSegmentLength: 8192 });
  const c = rig.cmdSN++;
  const h = bhs(0x01, 0x80, { itt: 9, cmdSN: c });
  const ahs = new Uint8Array(20); ahs[1] = 17; ahs[2] = 1; // ExtendedCDB AHS (11.2.2.3)
  rig.raw(encode(h, undefined, {}, ahs));
  rejectOf(rig.one(), 0x05, h);
  rig.cmd({ cdb: TUR, E: 0 });
  assert.is(rig.one().expCmdSN, c + 2, 'the rejected command consumed its CmdSN');
  const nop = bhs(0x00, 0x80, { itt: 10, cmdSN: rig.cmdSN });
  rig.send(nop, new Uint8Array(9000));
  rejectOf(rig.one(), 0x04, nop);
  rig.send(bhs(0x00, 0x80, { itt: 11, cmdSN: rig.cmdSN++ }), new Uint8Array(8192));
  assert.is(rig.one().data.length, 8192, 'exactly MaxRecvDataSegmentLength is fine');
});

test('Reject: a data digest error discards the PDU (Reject 0x02); a lost Data-Out fails its task with 0x47/0x05', () => {
  const { rig, scsi } = loggedIn([['DataDigest', 'CRC32C'], ['InitialR2T', 'Yes'], ['ImmediateData', 'No']]);
  const nop = bhs(0x00, 0x80, { itt: 12, cmdSN: rig.cmdSN });
  const b = encode(nop, new Uint8Array(16).fill(1), rig.wire);
  b[50] ^= 1;
  rig.raw(b);
  rejectOf(rig.one(), 0x02, nop);
  const itt = rig.cmd({ cdb: write10(0, 1), E: 512, w: true });
  const r = r2tOf(rig.one());
  const h = bhs(0x05, 0x80, { itt, ttt: r.ttt, lun: lunField(0) });
  const d = encode(h, pattern(512, 3), rig.wire);
  d[60] ^= 0xff;
  rig.raw(d);
  const ps = rig.take();
  assert.is(ps.length, 2);
  rejectOf(ps[0], 0x02, h);
  assert.is(ps[1].op, OP.ScsiRsp);
  assert.equal(senseOf(ps[1]), [0x0b, 0x47, 0x05]);
  assert.is(scsi.commands.length, 0);
});

test('Reject: a Data-Out longer than MaxRecvDataSegmentLength is rejected and its task ends with CHECK CONDITION, nothing written', () => {
  const { rig, scsi } = loggedIn([['InitialR2T', 'Yes'], ['ImmediateData', 'No']], { maxRecvDataSegmentLength: 4096 });
  const itt = rig.cmd({ cdb: write10(0, 16), E: 8192, w: true });
  const r = r2tOf(rig.one());
  const h = bhs(0x05, 0x80, { itt, ttt: r.ttt, lun: lunField(0) });
  rig.send(h, pattern(8192, 1));
  const ps = rig.take();
  assert.is(ps.length, 2);
  rejectOf(ps[0], 0x04, h);
  assert.is(ps[1].op, OP.ScsiRsp);
  assert.is(ps[1].bhs[3], 2);
  assert.is(scsi.commands.length, 0);
});

// ---- connection life ------------------------------------------------------------------------------

test('connection closed mid-PDU: counted, pinned Data-Out released, nexus lost, later input ignored', () => {
  const { rig, portal, scsi } = loggedIn([['InitialR2T', 'Yes'], ['ImmediateData', 'No']]);
  let pins = 0, releases = 0;
  const hold = () => { pins++; return () => { releases++; }; };
  const itt = rig.cmd({ cdb: write10(0, 8), E: 4096, w: true });
  const r = r2tOf(rig.one());
  rig.dataOut(itt, r.ttt, 0, 0, pattern(1024, 1), false, hold);
  const h = bhs(0x05, 0, { itt, ttt: r.ttt, lun: lunField(0) });
  p32(h, 36, 1); p32(h, 40, 1024);
  rig.raw(encode(h, pattern(1024, 2)).subarray(0, 300), hold);
  assert.is(pins, 2, 'the first PDU kept by the task, the partial second one pinned by the reader');
  assert.is(releases, 0);
  rig.conn.closed(rig.now);
  assert.is(releases, 2);
  assert.is(portal.sessions.counters.get('closed-mid-pdu'), 1);
  assert.is(portal.sessions.size, 0);
  assert.ok(scsi.log.includes(`nexusLost ${INI},i,0x801234560001`));
  rig.cmd({ cdb: TUR, E: 0 });
  assert.is(rig.take().length, 0);
  assert.is(scsi.commands.length, 0);
});

test('session reinstatement: a new login with the same initiator name and ISID ends the old session', () => {
  const { portal, scsi } = makePortal();
  const a = new Rig(portal);
  a.login([['InitialR2T', 'Yes'], ['ImmediateData', 'No']]);
  const itt = a.cmd({ cdb: write10(0, 1), E: 512, w: true });
  const r = r2tOf(a.one());
  const b = new Rig(portal);
  const l = b.login();
  assert.is(l.status, 0);
  assert.is(a.closedByTarget, 1);
  assert.is(portal.sessions.size, 1);
  assert.is(portal.sessions.counters.get('session-reinstated'), 1);
  assert.equal(scsi.get(IQN)!.log, [`nexusLost ${INI},i,0x801234560001`]);
  a.dataOut(itt, r.ttt, 0, 0, pattern(512, 1), true);
  assert.is(a.take().length, 0);
  b.cmd({ cdb: TUR, E: 0 });
  assert.is(b.one().bhs[3], 0);
});

test('zero copy: Data-Out payloads reach the SCSI layer as views of the received chunks, released after completion', () => {
  const { rig, scsi } = loggedIn([['InitialR2T', 'No'], ['ImmediateData', 'Yes'], ['FirstBurstLength', '65536']]);
  scsi.deferred = [];
  let pins = 0, releases = 0;
  const chunks: Uint8Array[] = [];
  const hold = () => { pins++; return () => { releases++; }; };
  const data = pattern(8192, 5);
  const c1 = encode((() => { const h = bhs(0x01, 0x20 | 1, { itt: 50, cmdSN: rig.cmdSN++, lun: lunField(0) }); p32(h, 20, 8192); h.set(write10(0, 16), 32); return h; })(), data.subarray(0, 4096));
  chunks.push(c1);
  rig.raw(c1, hold);
  const h2 = bhs(0x05, 0x80, { itt: 50, ttt: 0xffffffff, lun: lunField(0) });
  p32(h2, 40, 4096);
  const c2 = encode(h2, data.subarray(4096));
  chunks.push(c2);
  rig.raw(c2, hold);
  assert.is(scsi.commands.length, 1);
  const views = scsi.seenDataOut[0];
  assert.is(views.length, 2);
  assert.is(views[0].buffer, c1.buffer);
  assert.is(views[1].buffer, c2.buffer);
  assert.is(pins, 2);
  assert.is(releases, 0, 'held until the SCSI layer is done');
  for (const f of scsi.deferred.splice(0)) f();
  assert.is(releases, 2);
  assert.is(rig.one().bhs[3], 0);
  assert.equal(scsi.disk.subarray(0, 8192), data);
});

test('responses of concurrent commands complete out of order, each command\'s own PDUs stay in order', () => {
  const { rig, scsi } = loggedIn([['MaxRecvDataSegmentLength', '512']]);
  scsi.deferred = [];
  const a = rig.cmd({ cdb: read10(0, 2), E: 1024, r: true });
  const b = rig.cmd({ cdb: read10(2, 2), E: 1024, r: true });
  const [fa, fb] = scsi.deferred.splice(0);
  const before = rig.sends;
  fb(); fa();
  assert.is(rig.sends - before, 2, 'each completion goes out in one host.send');
  const ps = rig.take();
  assert.equal(ps.map((p) => [p.itt, u32(p.bhs, 36)]), [[b, 0], [b, 1], [a, 0], [a, 1]]);
  assert.is(ps[3].statSN, ps[1].statSN + 1);
});

test.run();

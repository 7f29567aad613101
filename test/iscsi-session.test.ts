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

test.run();

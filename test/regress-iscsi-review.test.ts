/**
 * Regressions found by a review of the iSCSI target against RFC 7143:
 * - a login key named like an Object.prototype member ("__proto__", "hasOwnProperty") threw out
 *   of IscsiConnection.input (the service process would have died); "toString" and "constructor"
 *   were answered with nonsense instead of NotUnderstood (6.2.1);
 * - FirstBurstLength offered in a later Login Request than MaxBurstLength was not bounded by the
 *   negotiated MaxBurstLength (13.14);
 * - a Text Request continued with C (11.10.2) lost its later parts: the initiator copies our TTT
 *   into them (11.10.4), and they were taken as a request for more of our answer;
 * - immediate SCSI commands, outside the CmdSN window, could pile up without bound (11.17.1
 *   reason 0x06 exists for this);
 * - nothing caught an exception thrown below IscsiConnection.input: one bug reached the event loop.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Rig, makePortal, IQN, INI } from './lib/iscsi-rig';
import { bhs, parseKeys, read10, text, write10 } from './lib/iscsi-wire';

const OP = { TextRsp: 0x24, R2t: 0x31, Reject: 0x3f };

test('login: keys named like Object.prototype members are unknown keys, answered NotUnderstood (RFC 7143 6.2.1), never a crash', () => {
  for (const k of ['__proto__', 'hasOwnProperty', 'toString', 'constructor', 'valueOf']) {
    const { portal } = makePortal();
    const rig = new Rig(portal);
    let r: ReturnType<Rig['login']> | undefined;
    assert.not.throws(() => { r = rig.login([[k, '1']]); }, k);
    assert.is(r!.status, 0, `${k}: the login succeeds`);
    assert.is(r!.keys.get(k), 'NotUnderstood', k);
    assert.is(rig.closedByTarget, 0, k);
  }
});

test('login: FirstBurstLength never exceeds a MaxBurstLength negotiated in an earlier Login Request (RFC 7143 13.14)', () => {
  const { portal } = makePortal();
  const rig = new Rig(portal);
  // CSG=1 (operational), no transit: MaxBurstLength first.
  const a = rig.loginStep(0x04, [['InitiatorName', INI], ['TargetName', IQN], ['SessionType', 'Normal'], ['MaxBurstLength', '4096']]);
  assert.is(a.status, 0);
  assert.is(a.keys.get('MaxBurstLength'), '4096');
  // Then FirstBurstLength, with T and NSG=3.
  const b = rig.loginStep(0x87, [['FirstBurstLength', '65536'], ['InitialR2T', 'No']]);
  assert.is(b.status, 0);
  const fbl = Number(b.keys.get('FirstBurstLength'));
  assert.ok(fbl >= 512 && fbl <= 4096, `FirstBurstLength ${fbl} must not exceed MaxBurstLength 4096`);
});

function discovery(): Rig {
  const { portal } = makePortal();
  const rig = new Rig(portal);
  const r = rig.loginStep(0x87, [['InitiatorName', INI], ['SessionType', 'Discovery'], ['HeaderDigest', 'None'], ['DataDigest', 'None']]);
  assert.is(r.status, 0);
  return rig;
}

test('Text: a request continued with C (11.10.2) is answered as a whole; its later parts carry our TTT (11.10.4)', () => {
  const rig = discovery();
  const all = text([['SendTargets', 'All']]);
  const parts = [all.subarray(0, 5), all.subarray(5, 11), all.subarray(11)];
  let ttt = 0xffffffff;
  for (let i = 0; i < parts.length; i++) {
    const last = i === parts.length - 1;
    // C set (0x40), F clear on all but the last part; F set on the last.
    rig.send(bhs(0x04, last ? 0x80 : 0x40, { imm: true, itt: 42, ttt, cmdSN: rig.cmdSN }), parts[i]);
    const p = rig.one();
    assert.is(p.op, OP.TextRsp, `part ${i}`);
    assert.is(p.itt, 42);
    if (!last) {
      // 11.11: an empty answer with F clear and a TTT the initiator copies into its next part.
      assert.is(p.flags & 0x80, 0, 'F clear while the request continues');
      assert.is(p.data.length, 0, 'empty while the request continues');
      assert.is.not(p.ttt, 0xffffffff);
      ttt = p.ttt;
    } else {
      assert.is(p.flags & 0x80, 0x80, 'the final answer');
      assert.is(p.ttt, 0xffffffff);
      const keys = parseKeys(p.data);
      assert.is(keys.get('TargetName'), IQN, 'SendTargets=All, reassembled from three parts');
      assert.is(keys.get('TargetAddress'), '10.0.0.1:3260,1');
    }
  }
  // A new request (TTT 0xffffffff) starts afresh: nothing of the old one is left (11.10.4).
  rig.send(bhs(0x04, 0x80, { imm: true, itt: 43, ttt: 0xffffffff, cmdSN: rig.cmdSN }), text([['SendTargets', 'All']]));
  assert.is(parseKeys(rig.one().data).get('TargetName'), IQN);
});

test('Text: a continued request abandoned by a new one (TTT 0xffffffff) leaves nothing behind (11.10.4)', () => {
  const rig = discovery();
  rig.send(bhs(0x04, 0x40, { imm: true, itt: 42, ttt: 0xffffffff, cmdSN: rig.cmdSN }), Uint8Array.from(Buffer.from('Garbage')));
  const p = rig.one();
  assert.is(p.op, OP.TextRsp);
  // The initiator starts a new request instead of continuing: the garbage must not be prepended.
  rig.send(bhs(0x04, 0x80, { imm: true, itt: 44, ttt: 0xffffffff, cmdSN: rig.cmdSN }), text([['SendTargets', 'All']]));
  const q = rig.one();
  assert.is(q.op, OP.TextRsp, 'answered, not rejected as malformed');
  assert.is(parseKeys(q.data).get('TargetName'), IQN);
  // The old TTT is no longer valid.
  rig.send(bhs(0x04, 0x80, { imm: true, itt: 42, ttt: p.ttt, cmdSN: rig.cmdSN }), text([['SendTargets', 'All']]));
  assert.is(rig.one().op, OP.Reject);
});

test('immediate SCSI commands are bounded: past the window, Reject "too many immediate commands" (RFC 7143 11.17.1 reason 0x06)', () => {
  const { portal } = makePortal();
  const window = 4;
  const rig = new Rig(portal, { cmdWindow: window, immediateData: false, initialR2T: true });
  assert.is(rig.login([['InitialR2T', 'Yes'], ['ImmediateData', 'No']]).status, 0);
  // Immediate WRITEs whose data never comes: each stays open, waiting for its Data-Out.
  const itts: number[] = [];
  for (let i = 0; i < window; i++) {
    itts.push(rig.cmd({ cdb: write10(i, 1), E: 512, w: true, imm: true }));
    const ps = rig.take();
    assert.ok(ps.every((p) => p.op === OP.R2t), `command ${i}: an R2T, no Reject`);
  }
  assert.is(rig.conn.taskCount, window);
  const over = rig.cmd({ cdb: write10(9, 1), E: 512, w: true, imm: true });
  const rj = rig.one();
  assert.is(rj.op, OP.Reject);
  assert.is(rj.bhs[2], 0x06, 'Immediate command reject - too many immediate commands');
  assert.is(((rj.data[16] << 24) | (rj.data[17] << 16) | (rj.data[18] << 8) | rj.data[19]) >>> 0, over, 'the rejected header');
  assert.is(rig.conn.taskCount, window, 'no task was created for it');
  // Non-immediate commands still go through the CmdSN window.
  rig.cmd({ cdb: write10(10, 1), E: 512, w: true });
  assert.ok(rig.take().some((p) => p.op === OP.R2t), 'a non-immediate command is accepted');
  // Ending one immediate task makes room again.
  rig.tmf(1, { ref: itts[0] });
  rig.cmd({ cdb: write10(11, 1), E: 512, w: true, imm: true });
  assert.ok(rig.take().every((p) => p.op === OP.R2t), 'accepted once one ended');
});

test('a throw below the connection (here a SCSI layer bug in LUN RESET) ends that connection, counted, and never reaches the caller', () => {
  const { portal, scsi } = makePortal();
  const rig = new Rig(portal);
  assert.is(rig.login().status, 0);
  scsi.get(IQN)!.lunReset = () => { throw new Error('bug'); };
  assert.not.throws(() => rig.send(bhs(0x02, 0x80 | 5, { imm: true, itt: 900, cmdSN: rig.cmdSN })));
  assert.is(rig.closedByTarget, 1, 'the connection is closed');
  assert.is(portal.sessions.counters.get('internal-error'), 1);
  assert.is(portal.sessions.size, 0, 'the session is gone (error recovery level 0)');
});

test('a throw while a completion is answered (a backend callback, later) or in a timer ends that connection, counted, and never reaches the caller', () => {
  const { portal, scsi } = makePortal();
  const rig = new Rig(portal);
  assert.is(rig.login().status, 0);
  const fake = scsi.get(IQN)!;
  fake.deferred = [];
  rig.cmd({ cdb: read10(0, 1), E: 512, r: true });
  const done = fake.deferred.splice(0);
  assert.is(done.length, 1);
  // A bug on the answer's path surfaces only when the backend completes, from its own callback.
  (rig.conn as unknown as { send: () => void }).send = () => { throw new Error('bug'); };
  assert.not.throws(() => done[0]!());
  assert.is(portal.sessions.counters.get('internal-error'), 1);
  assert.is(rig.closedByTarget, 1, 'the connection is closed');
  assert.not.throws(() => rig.conn.advance(rig.now + 60_000), 'a timer after that is harmless');
});

test.run();

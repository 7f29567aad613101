/**
 * Regression: an initiator that sends READs (or pings) and never reads the answers made the
 * target hold every answer in memory: 120 READs of 8 MiB from a file LUN held 960 MiB for one
 * connection (found by test/iscsi-lab.test.ts over real TCP). Now a connection starts a read only
 * within its Data-In budget, and starts no task while its transport holds more than the high
 * water mark unsent (ConnHost.backlog); tasks keep their arrival order while they wait.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Rig, makePortal, IQN } from './lib/iscsi-rig';
import { read10 } from './lib/iscsi-wire';

const OP = { ScsiRsp: 0x21, TmfRsp: 0x22, DataIn: 0x25 };
const TUR = new Uint8Array(16);
const KiB64 = 65536;

/** A logged-in connection whose reads are at most 64 KiB and whose Data-In budget is 128 KiB. */
function rig(opts = {}) {
  const { portal, scsi } = makePortal();
  const r = new Rig(portal, { maxTransferLength: KiB64, dataInBudget: 2 * KiB64, outputHighWater: 1 << 20, ...opts });
  assert.is(r.login().status, 0);
  const s = scsi.get(IQN)!;
  s.deferred = []; // completions wait until the test lets them go
  return { r, s, portal };
}

/** Statuses by ITT of the SCSI Responses / final Data-In PDUs received. */
function answered(r: Rig): number[] {
  return r.take().filter((p) => p.op === OP.ScsiRsp || (p.op === OP.DataIn && (p.flags & 1))).map((p) => p.itt);
}

test('reads start only within the Data-In budget: 5 reads of 64 KiB with 128 KiB of room run two at a time, in order', () => {
  const { r, s, portal } = rig();
  const itts = [0, 1, 2, 3, 4].map(() => r.cmd({ cdb: read10(0, 128), E: KiB64, r: true }));
  assert.is(s.commands.length, 2, 'two reads executing, three waiting');
  assert.ok((portal.sessions.counters.get('task-wait-data-in-budget') ?? 0) >= 1, 'the wait is counted with its reason');
  const done: number[] = [];
  for (let i = 0; i < 5; i++) {
    s.deferred!.shift()!();
    done.push(...answered(r));
    assert.ok(s.commands.length <= Math.min(5, i + 3), 'never more than two executing');
  }
  assert.equal(done, itts, 'every read answered, in arrival order');
  assert.equal(s.commands.map((c) => c.taskTag), itts, 'and executed in arrival order');
});

test('a transport backlog above the high water mark holds new tasks (reads and others, in order) until advance() sees it drained', () => {
  const { r, s, portal } = rig();
  r.backlog = 2 << 20;
  const a = r.cmd({ cdb: read10(0, 8), E: 4096, r: true });
  const b = r.cmd({ cdb: TUR, E: 0 });
  assert.is(s.commands.length, 0, 'nothing starts while the initiator has not taken 2 MiB of answers');
  assert.ok((portal.sessions.counters.get('task-wait-output') ?? 0) >= 1);
  r.now += 10;
  r.conn.advance(r.now);
  assert.is(s.commands.length, 0, 'still backed up');
  r.backlog = 0;
  r.conn.advance(r.now);
  assert.equal(s.commands.map((c) => c.taskTag), [a, b], 'both start once drained, the READ first');
  s.deferred!.splice(0).forEach((f) => f());
  assert.equal(answered(r), [a, b]);
});

test('aborting the task at the head of the wait lets the next one start; a connection loss with tasks waiting starts nothing', () => {
  const { r, s } = rig();
  const a = r.cmd({ cdb: read10(0, 128), E: KiB64, r: true });
  r.cmd({ cdb: read10(0, 128), E: KiB64, r: true });
  const c = r.cmd({ cdb: read10(0, 128), E: KiB64, r: true }); // waits for room
  const d = r.cmd({ cdb: TUR, E: 0 }); // waits behind c
  assert.is(s.commands.length, 2);
  // RFC 7143 11.5.1 ABORT TASK: the referenced task (c) is aborted; 11.6.1 response 0: complete.
  const rsp = r.tmf(1, { ref: c, refCmdSN: 1002 });
  assert.is(rsp.op, OP.TmfRsp);
  assert.is(rsp.bhs[2], 0, 'Function complete');
  assert.equal(s.commands.map((x) => x.taskTag).slice(2), [d], 'the TEST UNIT READY behind it started');
  s.deferred!.splice(0).forEach((f) => f());
  const got = answered(r);
  assert.ok(got.includes(a) && got.includes(d) && !got.includes(c), `answers: ${got}`);

  const { r: r2, s: s2 } = rig();
  r2.backlog = 2 << 20;
  r2.cmd({ cdb: read10(0, 8), E: 4096, r: true });
  r2.cmd({ cdb: TUR, E: 0 });
  r2.conn.closed(r2.now);
  r2.backlog = 0;
  r2.conn.advance(r2.now + 1);
  assert.is(s2.commands.length, 0, 'no waiting task runs after the connection ended');
});

test.run();

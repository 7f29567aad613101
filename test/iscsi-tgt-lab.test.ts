/**
 * The iSCSI lab harness proven against a real target: tgtd (Debian tgt 1.0.85) in its own
 * namespace over kernel TCP, driven by libiscsi's tools from the initiator namespace
 * (test/lib/iscsi-lab.ts). Discovery, the fast subset of iscsi-test-cu with verdicts read from the
 * text (pass / fail / skip), bounded runs, iscsi-perf and iscsi-load, coexisting tgtd instances,
 * clean stops; and xdpstack TCP relaying the same iSCSI traffic to tgtd without changing a verdict.
 * When the stack has its `iscsi` service, the fast subset also runs against it, side by side.
 * Root only (network namespaces, AF_XDP).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { canRunPrivileged, labPrefix } from './lib/env';
import { labImpair } from '../stack/lab/lab';
import { privilegedTest } from './lib/lab-stack';
import {
  FAST_SUBSET, iscsiLabUp, iscsiLoad, iscsiLoadPath, iscsiLs, iscsiPerf, iscsiServiceAvailable, iscsiUrl, IscsiLab, runTestCu,
  stackStarter, startTgt, TargetUnavailableError, TargetUnderTest, testList, tgtStarter, TestCuRun,
} from './lib/iscsi-lab';
import { sideBySide } from './lib/iscsi-diff';
import { createStack, Stack } from '../stack/stack';
import type { Socket } from '../stack/api/net';

const PREFIX = labPrefix('is');
const privileged = canRunPrivileged();
const ptest = privilegedTest(privileged);
const DISK = { iqn: 'iqn.2026-12.org.xdpstack:disk1', size: 64 << 20, blockSize: 512 };
let il: IscsiLab;
let tgt: TargetUnderTest;
let direct: TestCuRun;

const nsPids = (ns: string) => execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split('\n').filter((l) => l.trim());

if (privileged) {
  test.before(async () => {
    // Full checksums from tgtd's namespace too (tgtOffloads off): the relay test below has the
    // stack talk to tgtd, and the stack verifies every checksum (a CHECKSUM_PARTIAL frame from
    // a veth peer is dropped as tcp-bad-checksum).
    il = iscsiLabUp(PREFIX, { tgtOffloads: false });
    tgt = await tgtStarter()(il, DISK);
  });
  test.after(async () => {
    try { await tgt?.stop(); } finally { il?.down(); }
  });
}

ptest('discovery: iscsi-ls names the IQN at tgtd\'s portal; -s shows the controller on LUN 0 and the disk on LUN 1', async () => {
  assert.is(tgt.url, `iscsi://${il.tgtAddress}/${DISK.iqn}/1`);
  const d = await iscsiLs(il.initiatorNs, tgt.portalUrl, { showLuns: true });
  assert.is(d.run.code, 0, d.run.stderr);
  assert.equal(d.targets.map((t) => [t.iqn, t.portals]), [[DISK.iqn, [{ address: il.tgtAddress, port: 3260, tpgt: 1 }]]]);
  const luns = d.targets[0]!.luns;
  assert.equal(luns.map((l) => [l.lun, l.type]), [[0, 'STORAGE_ARRAY_CONTROLLER'], [1, 'DIRECT_ACCESS']]);
});

ptest('fast subset on tgtd: every test of the chosen suites gets a verdict; READ/WRITE 10, TUR, INQUIRY pass; skips told apart', async () => {
  direct = await runTestCu(il.initiatorNs, tgt.url, { tests: FAST_SUBSET, timeoutMs: 120_000 });
  console.log(`# fast subset on tgtd: ${direct.counts.pass} pass, ${direct.counts.fail} fail, ${direct.counts.skip} skip of ${direct.counts.total} in ${(direct.run.ms / 1000).toFixed(1)} s`);
  assert.is(direct.run.code, 0, direct.run.stderr);
  assert.ok(direct.consistent, direct.problems.join('; '));
  // Complete: exactly the tests iscsi-test-cu lists for these suites, each once.
  const suites = FAST_SUBSET.split(',');
  const listed = (await testList()).filter((n) => suites.some((s) => n.startsWith(`${s}.`)));
  assert.equal(direct.tests.map((t) => t.name).sort(), listed.sort());
  const v = new Map(direct.tests.map((t) => [t.name, t.result]));
  for (const n of listed.filter((x) => /^ALL\.(Read10|Write10|TestUnitReady)\./.test(x))) assert.is(v.get(n), 'pass', n);
  assert.is(v.get('ALL.Inquiry.Standard'), 'pass');
  // tgt offers no logical block provisioning: libiscsi skips the Block Limits VPD test, CUnit calls it passed.
  assert.is(v.get('ALL.Inquiry.BlockLimits'), 'skip');
  assert.ok(direct.tests.every((t) => t.ms !== undefined && t.ms >= 0), 'every test timed');
});

ptest('a test tgtd fails is reported as a failure (DataSN out of order is not rejected by tgt 1.0.85)', async () => {
  const r = await runTestCu(il.initiatorNs, tgt.url, { tests: 'ALL.iSCSIdatasn', timeoutMs: 30_000 });
  assert.ok(r.consistent, r.problems.join('; '));
  assert.equal(r.tests.map((t) => [t.name, t.result]), [['ALL.iSCSIdatasn.iSCSIDataSnInvalid', 'fail']]);
  assert.is(r.summary?.tests.failed, 1);
});

ptest('a run is bounded: killed at its time limit, the running test has no verdict and counts as a failure', async () => {
  // iSCSICmdSnTooHigh waits ~3 s for a reply a target must not send (RFC 7143 3.2.2.1: CmdSN beyond MaxCmdSN is dropped).
  const r = await runTestCu(il.initiatorNs, tgt.url, { tests: 'ALL.iSCSIcmdsn.iSCSICmdSnTooHigh', timeoutMs: 1000 });
  assert.ok(r.run.timedOut);
  assert.ok(r.run.ms < 3000, `${r.run.ms} ms`);
  assert.equal(r.tests.map((t) => [t.name, t.result, t.incomplete]), [['ALL.iSCSIcmdsn.iSCSICmdSnTooHigh', 'fail', true]]);
  assert.not.ok(r.consistent);
});

ptest('iscsi-perf (READ 16) and iscsi-load (WRITE 16): 4 KiB random, 32 in flight, 2 s each', async () => {
  const rd = await iscsiPerf(il.initiatorNs, tgt.url, { depth: 32, bytes: 4096, seconds: 2, random: true, blockSize: 512 });
  assert.is(rd.run.code, 0, rd.run.stderr);
  assert.ok(rd.result && rd.result.iops > 0, rd.run.stdout);
  assert.equal([rd.result!.capacityBytes, rd.result!.pattern, rd.result!.inFlight], [DISK.size, 'random', 32]);
  if (!fs.existsSync(iscsiLoadPath())) { console.log(`# ${iscsiLoadPath()} not built (libiscsi-dev missing): iscsi-load part skipped`); return; }
  const wr = await iscsiLoad(il.initiatorNs, tgt.url, { op: 'write', depth: 32, bytes: 4096, seconds: 2, random: true });
  assert.is(wr.run.code, 0, wr.run.stdout + wr.run.stderr);
  assert.ok(wr.result && wr.result.iops > 0, wr.run.stdout);
  assert.equal([wr.result!.capacityBytes, wr.result!.op, wr.result!.blockSize], [DISK.size, 'write', 512]);
  console.log(`# tgtd, 2 s each: random 4 KiB read ${rd.result!.iops} IOPS (iscsi-perf), write ${Math.round(wr.result!.iops)} IOPS (iscsi-load)`);
});

ptest('a second tgtd coexists (other namespace, own control port) and stops without leftovers', async () => {
  const second = await startTgt({ ns: il.initiatorNs, address: il.initiatorAddress, targets: [{ iqn: 'iqn.2026-12.org.xdpstack:second', luns: [{ size: 1 << 20, blockSize: 4096 }] }] });
  const files = second.targets[0]!.luns.map((l) => l.file);
  try {
    const d = await iscsiLs(il.initiatorNs, iscsiUrl(il.initiatorAddress, 3260), { showLuns: true });
    assert.equal(d.targets.map((t) => t.iqn), ['iqn.2026-12.org.xdpstack:second']);
    assert.equal(d.targets[0]!.luns.map((l) => [l.lun, l.type]), [[0, 'STORAGE_ARRAY_CONTROLLER'], [1, 'DIRECT_ACCESS']]);
    const first = await iscsiLs(il.initiatorNs, tgt.portalUrl);
    assert.equal(first.targets.map((t) => t.iqn), [DISK.iqn], 'the first one still answers for its own');
  } finally {
    await second.stop();
  }
  assert.not.ok(nsPids(il.initiatorNs).includes(String(second.pid)), 'tgtd gone');
  assert.not.ok(fs.existsSync(`/var/run/tgtd/socket.${second.controlPort}`), 'control socket removed');
  assert.not.ok(fs.existsSync(`/var/run/tgtd/socket.${second.controlPort}.lock`), 'lock file removed');
  for (const f of files) assert.not.ok(fs.existsSync(f), `${f} removed`);
});

ptest('xdpstack TCP relaying to tgtd (AF_XDP side of the lab): the fast subset gives the same verdicts as direct', async () => {
  assert.ok(direct, 'the direct run came first');
  let stack: Stack | null = null;
  try {
    stack = createStack({
      name: 'iscsi-relay', control: false, devices: [{ name: il.lab.stackDevice, driver: 'afxdp', frameCount: 4096 }],
      virtualServers: [{ name: 'a', links: [{ device: il.lab.stackDevice, addresses: [`${il.stackAddress}/24`] }] }],
    }, { log: () => {} });
    const vs = stack.vs('a');
    // No Nagle either way: iSCSI is request/response over small PDUs.
    vs.createServer({ noDelay: true }, (s: Socket) => {
      const up = vs.connect({ host: il.tgtAddress, port: 3260, noDelay: true });
      const down = () => { s.destroy(); up.destroy(); };
      s.on('error', down);
      up.on('error', down);
      s.pipe(up);
      up.pipe(s);
    }).listen(3260);
    stack.start();
    const url = iscsiUrl(il.stackAddress, 3260, DISK.iqn, 1);
    const r = await runTestCu(il.initiatorNs, url, { tests: FAST_SUBSET, timeoutMs: 120_000 });
    assert.ok(r.consistent, r.problems.join('; '));
    assert.equal(r.tests.map((t) => [t.name, t.result]), direct.tests.map((t) => [t.name, t.result]));
    assert.ok(sideBySide(direct.tests, r.tests).ok);
    console.log(`# fast subset through the xdpstack relay: ${r.counts.pass} pass, ${r.counts.fail} fail, ${r.counts.skip} skip in ${(r.run.ms / 1000).toFixed(1)} s`);
  } finally {
    stack?.close();
  }
});

ptest('xdpstack iSCSI target beside tgtd: the fast subset passes everything tgtd passes; 8 concurrent sessions read without error', async () => {
  const start = stackStarter({ mode: 'child' });
  assert.ok(iscsiServiceAvailable(), 'the iscsi service type is registered');
  const ours = await start(il, DISK);
  try {
    assert.is(ours.url, `iscsi://${il.stackAddress}/${DISK.iqn}/0`);
    const r = await runTestCu(il.initiatorNs, ours.url, { tests: FAST_SUBSET, timeoutMs: 120_000 });
    const d = sideBySide(direct.tests, r.tests);
    console.log(`# fast subset: tgtd ${direct.counts.pass} pass / ${direct.counts.fail} fail / ${direct.counts.skip} skip; xdpstack ${r.counts.pass} pass / ${r.counts.fail} fail / ${r.counts.skip} skip`);
    assert.ok(d.ok, `tgt passes, xdpstack does not: ${[...d.regressions.map((x) => `${x.name} (${x.ours})`), ...d.skippedByUs.map((x) => `${x.name} (skip)`)].join(', ')}\n${ours.log().slice(-2000)}`);

    // Many concurrent sessions (RFC 7143: one session per initiator port): 8 initiators at once,
    // each a session of its own with 8 reads in flight, none gets an error; then discovery still
    // answers, so every session was torn down on its own.
    const runs = await Promise.all(Array.from({ length: 8 }, (_, i) =>
      iscsiPerf(il.initiatorNs, ours.url, { depth: 8, bytes: 4096, blockSize: 512, seconds: 2, random: i % 2 === 0 })));
    for (const [i, p] of runs.entries()) {
      assert.is(p.run.code, 0, `session ${i}: ${p.run.stdout.slice(-300)} ${p.run.stderr.slice(-300)}`);
      assert.ok(p.result && p.result.iops > 0, `session ${i} completed reads`);
    }
    const after = await iscsiLs(il.initiatorNs, ours.portalUrl);
    assert.equal(after.targets.map((t) => t.iqn), [DISK.iqn]);

    // The same READ/WRITE suites through 1 % loss each way on the initiator's path (libiscsi over
    // kernel TCP on one side, xdpstack TCP on the other): every test still passes.
    labImpair(il.lab.prefix, { peer: 0, loss: 0.01, resetCounters: true });
    try {
      const lossy = await runTestCu(il.initiatorNs, ours.url, { tests: 'ALL.Read10,ALL.Write10', timeoutMs: 120_000 });
      const lost = labImpair(il.lab.prefix, { peer: 0, loss: 0 }).find((x) => x.peer === 0)!;
      assert.ok(lost.in.dropped + lost.out.dropped > 0, 'frames were lost');
      assert.ok(lossy.consistent && lossy.counts.fail === 0 && lossy.counts.pass > 0, `through loss: ${JSON.stringify(lossy.counts)} ${lossy.problems.join('; ')}`);
      console.log(`# ALL.Read10 + ALL.Write10 through 1 % loss: ${lossy.counts.pass} pass, ${lossy.counts.skip} skip, ${lost.in.dropped + lost.out.dropped} frames lost, ${(lossy.run.ms / 1000).toFixed(1)} s`);
    } finally {
      labImpair(il.lab.prefix, { peer: 0, loss: 0 });
    }
  } finally {
    await ours.stop();
  }
});

ptest('tgtd stops cleanly: no process left in its namespace, no control socket, no LUN file', async () => {
  const port = (tgt.settings as { controlPort: number }).controlPort;
  const file = `/dev/shm/xdpstack-tgt-${port}-1-1.img`;
  assert.ok(fs.existsSync(file), 'the LUN file is where the settings say');
  await tgt.stop();
  assert.equal(nsPids(il.tgtNs), []);
  assert.not.ok(fs.existsSync(`/var/run/tgtd/socket.${port}`));
  assert.not.ok(fs.existsSync(file));
  await tgt.stop(); // idempotent
});

test.run();

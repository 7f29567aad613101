/**
 * The parsers of libiscsi's tools (test/lib/iscsi-tools.ts) and the side-by-side rule
 * (test/lib/iscsi-diff.ts), on outputs recorded on this machine against tgtd 1.0.85
 * (test/iscsi-samples/: iscsi-test-cu -t ALL --dataloss, a run killed by its time limit, iscsi-ls -s,
 * iscsi-perf). No root needed.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import {
  familyResolver, parseIscsiLoad, parseIscsiLs, parseIscsiPerf, parsePortal, parseTestCu, parseTestList, TestResult,
} from './lib/iscsi-tools';
import { sideBySide } from './lib/iscsi-diff';
import { iscsiUrl } from './lib/iscsi-tgt';

const SAMPLES = path.join(__dirname, '..', '..', 'test', 'iscsi-samples');
const sample = (f: string) => fs.readFileSync(path.join(SAMPLES, f), 'utf8');
const all = () => parseTestCu(sample('tgt-ALL.txt'), familyResolver('ALL'));
const byName = (rs: TestResult[], n: string) => {
  const r = rs.find((x) => x.name === n);
  assert.ok(r, `${n} parsed`);
  return r!;
};

test('iscsi-test-cu ALL on tgtd: every verdict agrees with CUnit\'s Run Summary, skips told apart', () => {
  const r = all();
  assert.ok(r.summary, 'Run Summary parsed');
  // CUnit: 230 tests ran, 222 "passed" (passes and skips alike), 8 failed.
  assert.equal(r.summary!.tests, { total: 230, ran: 230, passed: 222, failed: 8, inactive: 0 });
  assert.is(r.counts.total, 230);
  assert.is(r.counts.pass + r.counts.skip, 222);
  assert.is(r.counts.fail, 8);
  assert.is(r.counts.skip, 62, 'the [SKIPPED] tests (counted as passed by CUnit)');
  assert.ok(r.consistent, r.problems.join('; '));
  assert.is(new Set(r.tests.map((t) => t.name)).size, 230, 'names are unique');
  assert.ok(r.tests.every((t) => /^ALL\.[A-Za-z0-9]+\.[A-Za-z0-9_-]+$/.test(t.name)), 'FAMILY.Suite.Test names');
});

test('iscsi-test-cu verdict forms: inline, after messages, [FAILED] before passed, teardown after the verdict', () => {
  const rs = all().tests;
  assert.is(byName(rs, 'ALL.TestUnitReady.Simple').result, 'pass');
  assert.is(byName(rs, 'ALL.Read10.Simple').result, 'pass');
  // "[FAILED] GET_LBA_STATUS successful ..." then FAILED and the assert line.
  const beyond = byName(rs, 'ALL.GetLBAStatus.BeyondEol');
  assert.is(beyond.result, 'fail');
  assert.match(beyond.messages[0]!, /^\[FAILED\] GET_LBA_STATUS/);
  assert.match(beyond.messages[1]!, /test_get_lba_status_beyond_eol\.c:38/);
  // "[SKIPPED] ..." then passed: a skip.
  const skip = byName(rs, 'ALL.GetLBAStatus.UnmapSingle');
  assert.is(skip.result, 'skip');
  assert.match(skip.messages[0]!, /fully provisioned/);
  // Steps printed by the test, then a verdict line: FAILED.
  assert.is(byName(rs, 'ALL.Reserve6.2Initiators').result, 'fail');
  // "passed    [FAILED] PRIN ..." on one line: CUnit's verdict comes first, the rest is teardown.
  const lr = byName(rs, 'ALL.Reserve6.LUNReset');
  assert.is(lr.result, 'pass');
  assert.ok(lr.messages.some((m) => m.startsWith('[FAILED] PRIN')));
  // A [FAILED] message without a failed assert: CUnit says passed.
  assert.is(byName(rs, 'ALL.WriteSame10.UnmapVPD').result, 'pass');
  // "...FAILED" right after the dots.
  assert.is(byName(rs, 'ALL.iSCSIdatasn.iSCSIDataSnInvalid').result, 'fail');
});

test('iscsi-test-cu killed by its time limit: the running test has no verdict and counts as a failure', () => {
  const r = parseTestCu(sample('tgt-iSCSI-killed.txt'), familyResolver('iSCSI'));
  assert.is(r.tests.length, 1);
  assert.equal({ name: r.tests[0]!.name, result: r.tests[0]!.result, incomplete: r.tests[0]!.incomplete }, { name: 'iSCSI.iSCSIcmdsn.iSCSICmdSnTooHigh', result: 'fail', incomplete: true });
  assert.is(r.summary, null);
  assert.not.ok(r.consistent);
  assert.match(r.problems.join(), /no Run Summary/);
});

test('test listing and family resolution for selectors over several families', () => {
  let listing: string[];
  try {
    listing = parseTestList(execFileSync('iscsi-test-cu', ['-l'], { encoding: 'utf8', timeout: 10_000 }));
  } catch {
    console.log('# iscsi-test-cu not installed (scripts/setup.sh): listing part skipped');
    return;
  }
  assert.ok(listing.includes('ALL'));
  assert.ok(listing.includes('ALL.Read10.Simple'));
  assert.ok(listing.includes('iSCSI.iSCSIcmdsn.iSCSICmdSnTooHigh'));
  const f = familyResolver('SCSI.Read10,iSCSI.iSCSIcmdsn', listing);
  assert.is(f('Read10'), 'SCSI');
  assert.is(f('iSCSIcmdsn'), 'iSCSI');
  assert.throws(() => familyResolver('SCSI.Read10,iSCSI.iSCSIcmdsn'), /listing is needed/);
  assert.is(familyResolver('ALL.Read10,ALL.Write10')('Write10'), 'ALL');
});

test('iscsi-ls -s: target, portal and LUNs (tgt: controller on LUN 0, the disk on LUN 1)', () => {
  assert.equal(parseIscsiLs(sample('tgt-iscsi-ls-s.txt')), [{
    iqn: 'iqn.2026-12.org.xdpstack:disk1', portals: [{ address: '10.77.0.3', port: 3260, tpgt: 1 }],
    luns: [{ lun: 0, type: 'STORAGE_ARRAY_CONTROLLER' }, { lun: 1, type: 'DIRECT_ACCESS', size: '63M' }],
  }]);
  assert.equal(parsePortal('[fd00::1]:3260,1'), { address: 'fd00::1', port: 3260, tpgt: 1 });
  assert.equal(parsePortal('10.0.0.1:860'), { address: '10.0.0.1', port: 860, tpgt: 1 });
  assert.is(parsePortal('nonsense'), null);
  assert.is(iscsiUrl('fd00::1', 3260, 'iqn.x:y', 0), 'iscsi://[fd00::1]/iqn.x:y/0');
  assert.is(iscsiUrl('10.0.0.1', 3261), 'iscsi://10.0.0.1:3261');
});

test('iscsi-perf: final average (not a progress line), transfer size, per-second samples', () => {
  const r = parseIscsiPerf(sample('tgt-perf-rand-4k.txt'));
  assert.ok(r);
  assert.is(r!.pattern, 'random');
  assert.is(r!.inFlight, 32);
  assert.is(r!.transferBytes, 4096);
  assert.is(r!.blockSize, 512);
  assert.is(r!.capacityBytes, 64 << 20);
  assert.ok(r!.samples.length >= 2, `${r!.samples.length} samples`);
  const text = sample('tgt-perf-rand-4k.txt');
  assert.ok(text.includes(`iops average ${r!.iops} (`), 'the final average is the one reported');
  assert.is(r!.bytesPerSec, r!.iops * 4096);
  const s = parseIscsiPerf(sample('tgt-perf-seq-1m.txt'));
  assert.is(s!.pattern, 'sequential');
  assert.is(s!.transferBytes, 1 << 20);
  assert.is(parseIscsiPerf(text.replace('finished.', '')), null, 'an unfinished run has no result');
});

test('iscsi-load JSON line', () => {
  const line = '{"op":"write","pattern":"random","depth":32,"bytes":4096,"block_size":512,"capacity":67108864,"ops":50000,"errors":0,"seconds":5.000000,"samples":[9000,10000]}';
  const r = parseIscsiLoad(`noise\n${line}\n`);
  assert.equal({ iops: r!.iops, op: r!.op, bytesPerSec: r!.bytesPerSec }, { iops: 10000, op: 'write', bytesPerSec: 10000 * 4096 });
  assert.is(parseIscsiLoad(line.replace('"errors":0', '"errors":1')), null, 'a run with failed commands has no result');
});

test('side by side: a test tgt passes must pass on ours (fail, missing, no verdict, skip)', () => {
  const t = (name: string, result: TestResult['result'], extra: Partial<TestResult> = {}): TestResult => ({ name, result, messages: [], ...extra });
  const tgt = [t('A.s.pass', 'pass'), t('A.s.fail', 'pass'), t('A.s.missing', 'pass'), t('A.s.skip', 'pass'), t('A.s.cut', 'pass'),
    t('A.s.tgtfail', 'fail'), t('A.s.bothfail', 'fail'), t('A.s.tgtskip', 'skip')];
  const ours = [t('A.s.pass', 'pass'), t('A.s.fail', 'fail', { messages: ['[FAILED] x'] }), t('A.s.skip', 'skip'), t('A.s.cut', 'fail', { incomplete: true }),
    t('A.s.tgtfail', 'pass'), t('A.s.bothfail', 'fail'), t('A.s.tgtskip', 'pass'), t('A.s.extra', 'pass')];
  const d = sideBySide(tgt, ours);
  assert.equal(d.regressions.map((r) => [r.name, r.ours, !!r.incomplete]), [['A.s.fail', 'fail', false], ['A.s.missing', 'missing', false], ['A.s.cut', 'fail', true]]);
  assert.equal(d.skippedByUs.map((r) => r.name), ['A.s.skip']);
  assert.equal(d.oursOnly, ['A.s.tgtfail', 'A.s.tgtskip']);
  assert.equal(d.bothFail, ['A.s.bothfail']);
  assert.equal(d.notInReference, ['A.s.extra']);
  assert.not.ok(d.ok);
  const same = sideBySide(tgt, tgt);
  assert.ok(same.ok);
  const onlySkip = sideBySide([t('a', 'pass')], [t('a', 'skip')]);
  assert.not.ok(onlySkip.ok);
  assert.ok(sideBySide([t('a', 'pass')], [t('a', 'skip')], { allowSkips: true }).ok);
});

test.run();

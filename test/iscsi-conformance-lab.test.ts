/**
 * iSCSI conformance against a real initiator: libiscsi's tools in the lab's initiator namespace
 * (test/lib/iscsi-lab.ts) logging in to our target over the stack. A target that needs CHAP is
 * named in mixed case in the initiator's URL: iSCSI names compare without regard to case (RFC 7143
 * 4.2.7.1, RFC 3722 normalises them to lower case), so the CHAP login through the security and
 * operational stages must succeed and reach the same LUN. (libiscsi 1.19 declares TargetName once;
 * the same name declared again in another case is covered by regress-iscsi-conformance.) And
 * hostile requests from the project's own initiator over kernel TCP (test/lib/iscsi-hostile.ts):
 * a non-immediate NOP-Out with the reserved ITT, a key twice in one Text Request, and a Text
 * Request with F clear. Root only (network namespaces, AF_XDP).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import type { Probe } from './lib/iscsi-hostile';
import { canRunPrivileged, labPrefix } from './lib/env';
import { privilegedTest } from './lib/lab-stack';
import { iscsiLabUp, iscsiUrl, IscsiLab, runTool, stackStarter, TargetUnderTest } from './lib/iscsi-lab';
import '../examples/iscsi/index';

const PREFIX = labPrefix('j1');
const privileged = canRunPrivileged();
const ptest = privilegedTest(privileged);
const DISK = { iqn: 'iqn.2026-12.org.xdpstack:disk1', size: 16 << 20, blockSize: 512 };
const CHAP = { user: 'tenant-j', secret: 'j-secret-of-16ch' };
const IQN_OPEN = 'iqn.2026-12.org.xdpstack:open';
const CLI = path.join(__dirname, 'lib', 'iscsi-initiator-cli.js');
let il: IscsiLab;
let target: TargetUnderTest;

if (privileged) {
  test.before(async () => {
    il = iscsiLabUp(PREFIX);
    target = await stackStarter({
      service: { targets: [{ iqn: DISK.iqn, luns: [{ lun: 0, size: DISK.size }], chap: CHAP }, { iqn: IQN_OPEN, luns: [{ lun: 0, size: DISK.size }] }] },
    })(il, DISK);
  });
  test.after(async () => {
    try { await target?.stop(); } finally { il?.down(); }
  });
}

/** iscsi-inq (standard INQUIRY after a full login) with CHAP credentials in the URL. */
async function inq(iqn: string, secret: string) {
  const url = iscsiUrl(il.stackAddress, 3260, iqn, 0).replace('iscsi://', `iscsi://${CHAP.user}%${secret}@`);
  return runTool(il.initiatorNs, 'iscsi-inq', [url], { timeoutMs: 20_000 });
}

ptest('libiscsi logs in with CHAP to a target named in mixed case (iSCSI names are case-insensitive) and reads the same INQUIRY data', async () => {
  const lower = await inq(DISK.iqn, CHAP.secret);
  assert.is(lower.code, 0, `lower case: ${lower.stdout}${lower.stderr}`);
  assert.match(lower.stdout, /Peripheral Device Type|Direct-Access|DIRECT_ACCESS/i);
  const mixed = await inq(DISK.iqn.replace('xdpstack:disk1', 'XdpStack:Disk1'), CHAP.secret);
  assert.is(mixed.code, 0, `mixed case: ${mixed.stdout}${mixed.stderr}`);
  assert.is(mixed.stdout, lower.stdout, 'the same INQUIRY data');
  // CHAP was really asked for: a wrong secret fails the login.
  const wrong = await inq(DISK.iqn.replace('xdpstack:disk1', 'XdpStack:Disk1'), 'not-the-secret-!');
  assert.is.not(wrong.code, 0, 'a wrong CHAP secret is refused');
  assert.ok(!wrong.timedOut, 'refused, not hung');
});

ptest('hostile requests over real TCP: NOP-Out with the reserved ITT and no I bit, a repeated Text key, a Text Request with F clear', async () => {
  const run = await runTool(il.initiatorNs, process.execPath, ['--enable-source-maps', CLI, 'hostile', '--host', il.stackAddress, '--target', IQN_OPEN,
    '--deadline', '25000', '--cases', 'nop-out-reserved-itt-not-immediate,text-repeated-key,text-f-clear'], { timeoutMs: 30_000 });
  assert.is(run.code, 0, run.stderr);
  const res = (JSON.parse(run.stdout.trim().split('\n').pop()!) as { results: Record<string, Probe> }).results;
  const reject = (n: string, reason: number) => {
    const p = res[n]!;
    assert.ok(!('error' in p), `${n}: ${JSON.stringify(p)}`);
    const rj = p.replies.filter((x) => x.op === 0x3f);
    assert.is(rj.length, 1, `${n}: one Reject: ${JSON.stringify(p.replies)}`);
    assert.is(rj[0]!.reason, reason, `${n}: reason`);
    assert.is(rj[0]!.rejected!.slice(0, 96), p.sent[0]!.slice(0, 96), `${n}: the Reject returns our header`);
    assert.not.ok(p.closed, `${n}: the connection stays up`);
    assert.is(p.after, 0, `${n}: TEST UNIT READY afterwards: GOOD`);
  };
  // 11.18 + 4.2.2.1: Reject, Protocol Error; its CmdSN consumed, so the TUR after it (next CmdSN) runs.
  reject('nop-out-reserved-itt-not-immediate', 0x04);
  assert.ok(!res['nop-out-reserved-itt-not-immediate']!.replies.some((x) => x.op === 0x20), 'no NOP-In');
  assert.is(res['nop-out-reserved-itt-not-immediate']!['expAfter'], ((res['nop-out-reserved-itt-not-immediate']!['cmdSN'] as number) + 2) >>> 0);
  // 6.2: a key twice is a protocol error, not two answers.
  reject('text-repeated-key', 0x04);
  assert.ok(!res['text-repeated-key']!.replies.some((x) => x.op === 0x24), 'no Text Response');
  // 11.11.1: F clear answered with F clear and a TTT; the follow-on with F set ends it.
  const f = res['text-f-clear']!;
  const first = f['first'] as { flags: number; ttt: number; keys: string[] };
  assert.is(first.flags & 0xc0, 0, `F and C clear: ${JSON.stringify(first)}`);
  assert.is.not(first.ttt, 0xffffffff);
  assert.is(first.keys.length, 1);
  assert.match(first.keys[0]!, /^MaxRecvDataSegmentLength=\d+$/);
  assert.equal(f['last'], { flags: 0x80, ttt: 0xffffffff });
  assert.is(f.after, 0);
});

test.run();

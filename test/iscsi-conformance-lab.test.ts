/**
 * iSCSI conformance against a real initiator: libiscsi's tools in the lab's initiator namespace
 * (test/lib/iscsi-lab.ts) logging in to our target over the stack. A target that needs CHAP is
 * named in mixed case in the initiator's URL: iSCSI names compare without regard to case (RFC 7143
 * 4.2.7.1, RFC 3722 normalises them to lower case), so the CHAP login through the security and
 * operational stages must succeed and reach the same LUN. (libiscsi 1.19 declares TargetName once;
 * the same name declared again in another case is covered by regress-iscsi-conformance.)
 * Root only (network namespaces, AF_XDP).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { canRunPrivileged, labPrefix } from './lib/env';
import { privilegedTest } from './lib/lab-stack';
import { iscsiLabUp, iscsiUrl, IscsiLab, runTool, stackStarter, TargetUnderTest } from './lib/iscsi-lab';
import '../examples/iscsi/index';

const PREFIX = labPrefix('j1');
const privileged = canRunPrivileged();
const ptest = privilegedTest(privileged);
const DISK = { iqn: 'iqn.2026-12.org.xdpstack:disk1', size: 16 << 20, blockSize: 512 };
const CHAP = { user: 'tenant-j', secret: 'j-secret-of-16ch' };
let il: IscsiLab;
let target: TargetUnderTest;

if (privileged) {
  test.before(async () => {
    il = iscsiLabUp(PREFIX);
    target = await stackStarter({
      service: { targets: [{ iqn: DISK.iqn, luns: [{ lun: 0, size: DISK.size }], chap: CHAP }] },
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

test.run();

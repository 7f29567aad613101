/**
 * The iSCSI target with real peers over AF_XDP (issue 10 section 6): a test initiator
 * (test/lib/iscsi-initiator.ts, run in the lab's kernel namespaces over kernel TCP) against the
 * `iscsi` service of a stack in this process, and of an `xdpstack run` child process.
 *
 *  - discovery (SendTargets), login with every key answered, CRC32C digests, one-way CHAP;
 *  - data integrity: random extents written through one session, hashed back through another;
 *  - two tenants on two VLANs with the same address and IQN: each sees only its own disk;
 *  - NOP-In pings: a live initiator keeps its session, a silent one is dropped;
 *  - hostile PDUs over real TCP answered as RFC 7143 says, the target serving on afterwards;
 *  - initiators that never read their answers: bounded memory, noticed and reset;
 *  - a file-backed LUN across a clean stop and a new stack, and across kill -9 of the target
 *    process: every acknowledged write reads back.
 *
 * Privileged: runs as root (always in CI).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { canRunPrivileged, labPrefix, sh } from './lib/env';
import { labDown, labImpair, labUp, Lab } from '../stack/lab/lab';
import { nsRun } from './lib/rig';
import { framesAccounted, privilegedTest } from './lib/lab-stack';
import { createStack, Stack } from '../stack/stack';
import type { StackConfig } from '../stack/control/config';
import type { IscsiService } from '../examples/iscsi/service';
import { patternHash } from './lib/iscsi-pattern';
import type { Probe } from './lib/iscsi-hostile';
import '../examples/iscsi/index';

const PREFIX = labPrefix('iv');
const privileged = canRunPrivileged();
const ptest = privilegedTest(privileged);
const ROOT = path.resolve(__dirname, '..', '..');
const CLI = path.join(ROOT, 'dist', 'test', 'lib', 'iscsi-initiator-cli.js');
const BIN = path.join(ROOT, 'bin', 'xdpstack.js');
const IQN = 'iqn.2026-12.org.xdpstack:disk1';
const IQN_CHAP = 'iqn.2026-12.org.xdpstack:secret';
const CHAP = { user: 'tenant-a', secret: 'a-secret-of-16ch' };
const ADDR = '10.9.0.1';
const BS = 512;

let lab: Lab;
let stack: Stack | null = null;
let tmp: string;
let fileLun: string;

function config(): StackConfig {
  return {
    name: 'iscsi-lab', control: false,
    devices: [{ name: lab.stackDevice, driver: 'afxdp', frameCount: 4096 }],
    virtualServers: [
      { name: 'a', links: [{ device: lab.stackDevice, vlan: 31, addresses: [`${ADDR}/24`] }] },
      { name: 'b', links: [{ device: lab.stackDevice, vlan: 32, addresses: [`${ADDR}/24`] }] },
    ],
    services: [
      {
        type: 'iscsi', vs: 'a', port: 3260, nopInterval: 5, nopTimeout: 5, targets: [
          { iqn: IQN, luns: [{ lun: 0, size: '64MiB' }, { lun: 1, size: '16MiB', file: fileLun }] },
          { iqn: IQN_CHAP, luns: [{ lun: 0, size: '1MiB' }], chap: CHAP },
        ],
      },
      { type: 'iscsi', vs: 'b', port: 3260, nopInterval: 1, nopTimeout: 1, targets: [{ iqn: IQN, luns: [{ lun: 0, size: '64MiB' }] }] },
    ],
  } as unknown as StackConfig;
}

function startStack(): Stack {
  const s = createStack(config(), { log: () => {} });
  s.start();
  return s;
}

const portal = (vs: 'a' | 'b') => (stack!.services.find((s) => (s as IscsiService).vs?.name === vs) as IscsiService).portal;

interface CliResult { code: number; json: Record<string, unknown>; stderr: string }

/** Runs the test initiator in peer `i`'s namespace; its last stdout line is the JSON result. */
async function initiator(i: number, cmd: string, args: string[], timeout = 30000): Promise<CliResult> {
  const r = await nsRun(lab.peers[i]!.ns, process.execPath, ['--enable-source-maps', CLI, cmd, '--host', ADDR, '--deadline', String(timeout - 2000), ...args], { timeout });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  let json: Record<string, unknown>;
  try { json = JSON.parse(last) as Record<string, unknown>; } catch { throw new Error(`initiator ${cmd}: exit ${r.code}: ${r.stdout} ${r.stderr}`); }
  return { code: r.code, json, stderr: r.stderr };
}

function ok(r: CliResult, what: string): Record<string, unknown> {
  assert.is(r.code, 0, `${what}: ${JSON.stringify(r.json)} ${r.stderr}`);
  assert.equal(r.json['violations'] ?? [], [], `${what}: the target broke no rule the initiator checks`);
  return r.json;
}

const zeroHash = (blocks: number) => createHash('sha256').update(Buffer.alloc(blocks * BS)).digest('hex');

if (privileged) {
  test.before(() => {
    lab = labUp({ prefix: PREFIX, peers: [{ vlan: 31, ipv4: '10.9.0.2/24' }, { vlan: 32, ipv4: '10.9.0.2/24' }] });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'iv-iscsi-'));
    fileLun = path.join(tmp, 'lun1.img');
    stack = startStack();
  });
  test.after(() => {
    try { stack?.close(); } finally {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      try { sh('ip', ['link', 'set', 'dev', lab.stackDevice, 'xdp', 'off']); } catch { /* gone */ }
      labDown(PREFIX);
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
}

ptest('discovery and login: SendTargets per tenant, every offered key answered, CRC32C digests, one-way CHAP', async () => {
  const [da, db] = await Promise.all([initiator(0, 'discover', []), initiator(1, 'discover', [])]);
  // RFC 7143 13.3 / appendix C.1: each target with TargetAddress <address>:<port>,<tpgt>.
  assert.equal(ok(da, 'discover a')['pairs'], [
    ['TargetName', IQN], ['TargetAddress', `${ADDR}:3260,1`], ['TargetName', IQN_CHAP], ['TargetAddress', `${ADDR}:3260,1`],
  ]);
  assert.equal(ok(db, 'discover b')['pairs'], [['TargetName', IQN], ['TargetAddress', `${ADDR}:3260,1`]], 'tenant b lists only its own target');

  const l = ok(await initiator(0, 'login', ['--target', IQN, '--hd', '--dd']), 'login with digests');
  const neg = l['negotiated'] as { headerDigest: boolean; dataDigest: boolean; unanswered: string[]; answers: Record<string, string> };
  assert.equal(neg.unanswered, [], 'RFC 7143 6.2: every negotiable key offered is answered');
  assert.ok(neg.headerDigest && neg.dataDigest, 'CRC32C header and data digests in use');
  assert.is(neg.answers['MaxRecvDataSegmentLength'] !== undefined, true, 'the target declares its MaxRecvDataSegmentLength (13.12)');
  assert.is(l['echo'], 'ping', 'NOP-In echoes the NOP-Out data (11.19)');
  assert.is(l['tur'], 0);
  assert.is(l['logout'], 0, 'Logout Response: connection or session closed successfully (11.15.1)');

  const good = ok(await initiator(0, 'login', ['--target', IQN_CHAP, '--chap', `${CHAP.user}:${CHAP.secret}`]), 'CHAP login');
  assert.is(good['tur'], 0);
  const bad = await initiator(0, 'login', ['--target', IQN_CHAP, '--chap', `${CHAP.user}:not-the-secret-!`]);
  assert.is(bad.json['name'], 'LoginError', JSON.stringify(bad.json));
  assert.is(bad.json['status'], 0x0201, 'RFC 7143 11.13.5: Authentication failure (0x0201)');
  const none = await initiator(0, 'login', ['--target', IQN_CHAP]);
  assert.is(none.json['status'], 0x0201, 'a target with CHAP refuses AuthMethod=None');
});

const REGION = { lba: 1000, blocks: 16384 }; // 8 MiB

interface Io { r2ts: number; dataOuts: number; unsolicited: number; immediateBytes: number }
interface Neg { initialR2T: boolean; immediateData: boolean; firstBurstLength: number; maxBurstLength: number; maxOutstandingR2T: number; targetMrdsl: number }

ptest('data integrity: 8 MiB in random extents through one session, hashed back through another; every Data-Out form (unsolicited, immediate, R2T-solicited)', async () => {
  // InitialR2T=No, ImmediateData=No: each write starts with unsolicited Data-Out PDUs (first burst),
  // the rest is solicited by R2Ts (up to 320 KiB per command: up to two bursts), digests on.
  const w = ok(await initiator(0, 'write', ['--target', IQN, '--lba', String(REGION.lba), '--blocks', String(REGION.blocks), '--seed', '11',
    '--random', '--chunk', '640', '--depth', '4', '--max-r2t', '2', '--no-immediate', '--hd', '--dd']), 'write');
  assert.is(w['bytes'], REGION.blocks * BS);
  const neg = w['negotiated'] as Neg;
  const io = w['io'] as Io;
  assert.equal([neg.initialR2T, neg.immediateData, neg.maxOutstandingR2T], [false, false, 2]);
  assert.ok(io.unsolicited > 0 && io.r2ts > 0 && io.immediateBytes === 0, `unsolicited and solicited Data-Out: ${JSON.stringify(io)}`);
  // Read back in another session: InitialR2T=Yes, no immediate data, MaxRecvDataSegmentLength 8 KiB
  // (many Data-In PDUs per command, each within our limit: the initiator checks it).
  const r = ok(await initiator(0, 'read', ['--target', IQN, '--lba', String(REGION.lba), '--blocks', String(REGION.blocks),
    '--chunk', '512', '--depth', '3', '--mrdsl', '8192', '--initial-r2t', '--no-immediate']), 'read');
  assert.is(r['sha256'], patternHash(REGION.lba, REGION.blocks, BS, 11), 'what was written is what is read, block for block');
  assert.is(r['dataIns'], REGION.blocks * BS / 8192, 'Data-In PDUs of the initiator\'s 8 KiB MaxRecvDataSegmentLength');
  console.log(`# wrote ${w['writes']} random extents (${REGION.blocks * BS} bytes, ${io.unsolicited} unsolicited Data-Out, ${io.r2ts} R2Ts) in ${w['ms']} ms; read back in ${r['ms']} ms`);

  // R2T-solicited only (InitialR2T=Yes, ImmediateData=No), and immediate data + R2T (InitialR2T=Yes,
  // ImmediateData=Yes); both verified block by block through a session with digests.
  const w2 = ok(await initiator(0, 'write', ['--target', IQN, '--lba', '40000', '--blocks', '2048', '--seed', '12', '--random', '--chunk', '600',
    '--initial-r2t', '--no-immediate']), 'solicited write');
  const io2 = w2['io'] as Io;
  assert.ok(io2.unsolicited === 0 && io2.immediateBytes === 0 && io2.r2ts >= (w2['writes'] as number), `R2Ts only: ${JSON.stringify(io2)}`);
  const w3 = ok(await initiator(0, 'write', ['--target', IQN, '--lba', '42048', '--blocks', '2048', '--seed', '13', '--random', '--chunk', '600',
    '--initial-r2t']), 'immediate write');
  const io3 = w3['io'] as Io;
  assert.ok(io3.unsolicited === 0 && io3.immediateBytes > 0 && io3.r2ts > 0, `immediate data and R2Ts: ${JSON.stringify(io3)}`);
  const [v2, v3] = await Promise.all([
    initiator(0, 'verify', ['--target', IQN, '--lba', '40000', '--blocks', '2048', '--seed', '12', '--hd', '--dd']),
    initiator(0, 'verify', ['--target', IQN, '--lba', '42048', '--blocks', '2048', '--seed', '13', '--hd', '--dd']),
  ]);
  assert.is(ok(v2, 'verify solicited')['badCount'], 0);
  assert.is(ok(v3, 'verify immediate')['badCount'], 0);
});

ptest('through 1 % loss and 0.5 % corruption each way: 4 MiB written with digests and read back byte-exact', async () => {
  // The lab's tc program drops frames and flips bits of TCP segments on tenant a's path, both ways:
  // TCP retransmits what is lost and drops what fails its checksum; the digests would catch the rest.
  labImpair(PREFIX, { peer: 0, loss: 0.01, corrupt: 0.005, resetCounters: true });
  try {
    const w = ok(await initiator(0, 'write', ['--target', IQN, '--lba', '50000', '--blocks', '8192', '--seed', '21', '--random', '--chunk', '256',
      '--depth', '4', '--hd', '--dd'], 90000), 'write through loss');
    assert.is(w['bytes'], 8192 * BS);
    const r = ok(await initiator(0, 'read', ['--target', IQN, '--lba', '50000', '--blocks', '8192', '--chunk', '256', '--depth', '4', '--hd', '--dd'], 90000), 'read through loss');
    assert.is(r['sha256'], patternHash(50000, 8192, BS, 21), 'what was written is what is read');
    const imp = labImpair(PREFIX, { peer: 0, loss: 0, corrupt: 0 }).find((x) => x.peer === 0)!;
    assert.ok(imp.in.dropped + imp.out.dropped > 0 && imp.in.corrupted + imp.out.corrupted > 0, `the path lost and corrupted frames: ${JSON.stringify(imp)}`);
    console.log(`# through loss: wrote 4 MiB in ${w['ms']} ms, read in ${r['ms']} ms; ${imp.in.dropped + imp.out.dropped} frames lost, ${imp.in.corrupted + imp.out.corrupted} corrupted`);
  } finally {
    labImpair(PREFIX, { peer: 0, loss: 0, corrupt: 0 });
  }
});

ptest('two tenants, two VLANs, same address and IQN: what one writes the other never reads', async () => {
  // Tenant b writes its own pattern over the first 1 MiB of the region tenant a just filled.
  ok(await initiator(1, 'write', ['--target', IQN, '--lba', String(REGION.lba), '--blocks', '2048', '--seed', '22']), 'write b');
  const [ra, rb, rbRest] = await Promise.all([
    initiator(0, 'read', ['--target', IQN, '--lba', String(REGION.lba), '--blocks', String(REGION.blocks)]),
    initiator(1, 'read', ['--target', IQN, '--lba', String(REGION.lba), '--blocks', '2048']),
    initiator(1, 'read', ['--target', IQN, '--lba', String(REGION.lba + 2048), '--blocks', '2048']),
  ]);
  assert.is(ok(ra, 'read a')['sha256'], patternHash(REGION.lba, REGION.blocks, BS, 11), "tenant a's disk is untouched by b's writes");
  assert.is(ok(rb, 'read b')['sha256'], patternHash(REGION.lba, 2048, BS, 22), 'tenant b reads its own writes');
  assert.is(ok(rbRest, 'read b rest')['sha256'], zeroHash(2048), "tenant b never sees a's data: blocks it never wrote read as zeros");
});

ptest('NOP-In pings (nopInterval 1 s, nopTimeout 1 s): an initiator that answers stays, a silent one is noticed and dropped', async () => {
  const [alive, dead] = await Promise.all([
    initiator(1, 'idle', ['--target', IQN, '--ms', '3500']),
    initiator(1, 'idle', ['--target', IQN, '--ms', '5000', '--no-ping-reply']),
  ]);
  const a = ok(alive, 'idle, answering');
  assert.ok((a['pingsSeen'] as number) >= 2 && a['pingsAnswered'] === a['pingsSeen'], `pings answered: ${JSON.stringify(a)}`);
  assert.is(a['closedAfter'], null, 'a live initiator keeps its session');
  assert.is(a['tur'], 0);
  const d = ok(dead, 'idle, silent');
  assert.is(d['pingsSeen'], 1, `one unanswered ping: ${JSON.stringify(d)}`);
  const after = d['closedAfter'] as number;
  assert.ok(after >= 1500 && after <= 3500, `closed ${after} ms into the silence (1 s idle + 1 s to answer)`);
});

const HOSTILE = ['reserved-opcode', 'ahs', 'data-too-long', 'data-out-beyond-r2t', 'unsolicited-beyond-edtl', 'write-past-end',
  'cmdsn-outside-window', 'scsi-before-login', 'scsi-during-login', 'login-csg-full-feature', 'login-stage-back', 'closed-mid-pdu',
  'header-digest-error', 'data-digest-error', 'max-outstanding-r2t'];

ptest('hostile PDUs over real TCP: each answered as RFC 7143 says, nothing written outside the LUN, and the target serves on', async () => {
  const before = new Map(portal('a').sessions.counters);
  const r = await initiator(0, 'hostile', ['--target', IQN, '--scratch', '60000', '--cases', HOSTILE.join(',')], 45000);
  assert.is(r.code, 0, r.stderr);
  const res = r.json['results'] as Record<string, Probe & { error?: string }>;
  for (const n of HOSTILE) assert.not.ok(res[n]!.error, `${n}: ${res[n]!.error}`);
  const rejects = (p: Probe) => p.replies.filter((x) => x.op === 0x3f);
  const oneReject = (n: string, reason: number) => {
    const p = res[n]!;
    const rj = rejects(p);
    assert.is(rj.length, 1, `${n}: one Reject: ${JSON.stringify(p.replies)}`);
    assert.is(rj[0]!.reason, reason, `${n}: Reject reason`);
    // RFC 7143 11.17: F set, ITT reserved, the data segment is the header of the rejected PDU.
    assert.is(rj[0]!.flags & 0x80, 0x80);
    assert.is(rj[0]!.itt, 0xffffffff);
    assert.is(rj[0]!.rejected!.slice(0, 96), p.sent[0]!.slice(0, 96), `${n}: the Reject returns our header`);
    assert.not.ok(p.closed, `${n}: the connection stays up`);
    assert.is(p.after, 0, `${n}: TEST UNIT READY afterwards on the same connection: GOOD`);
  };
  // 11.17.1 reason 0x05 Command not supported: an opcode not defined for an initiator (11.2.1.2).
  oneReject('reserved-opcode', 0x05);
  // A SCSI command with an AHS (extended CDB, 11.2.2.3) on a target without AHS: Command not supported.
  oneReject('ahs', 0x05);
  // More data than the declared MaxRecvDataSegmentLength (13.12): Protocol Error; the NOP-Out is not answered.
  oneReject('data-too-long', 0x04);
  assert.not.ok(res['data-too-long']!.replies.some((x) => x.op === 0x20), 'no NOP-In for the over-long NOP-Out');
  // 7.8: a data digest error discards the PDU and answers Reject "Data (payload) digest error".
  assert.ok(res['data-digest-error']!['negotiatedDd']);
  oneReject('data-digest-error', 0x02);
  assert.not.ok(res['data-digest-error']!.replies.some((x) => x.op === 0x20), 'the damaged NOP-Out is not answered');

  // Data-Out past the R2T / past the expected length: CHECK CONDITION, ABORTED COMMAND, INCORRECT
  // AMOUNT OF DATA (11.4.7.2: 0Bh / 0Ch 0Dh), and nothing of it written.
  for (const n of ['data-out-beyond-r2t', 'unsolicited-beyond-edtl']) {
    const p = res[n]!;
    assert.is(p['firstWrite'], 0, `${n}: the scratch blocks were written first`);
    const rsp = p.replies.filter((x) => x.op === 0x21);
    assert.is(rsp.length, 1, `${n}: one SCSI Response: ${JSON.stringify(p.replies)}`);
    assert.is(rsp[0]!.status, 0x02, `${n}: CHECK CONDITION`);
    assert.equal(rsp[0]!.sense, { key: 0x0b, asc: 0x0c, ascq: 0x0d }, `${n}: ABORTED COMMAND, INCORRECT AMOUNT OF DATA`);
    assert.is(p['unchanged'], true, `${n}: the blocks still hold what was there before`);
    assert.not.ok(p.closed);
    assert.is(p.after, 0);
  }
  assert.equal(res['data-out-beyond-r2t']!['r2t'], { offset: 0, length: 4096 }, 'the R2T asked for exactly the expected length');

  // SBC-3: LBA OUT OF RANGE (ILLEGAL REQUEST 21h/00h) across the end and at LBA 2^64-1; the last
  // blocks keep their data.
  const pe = res['write-past-end']!;
  assert.is(pe['capacity'], 64 * 2048);
  assert.is(pe['firstWrite'], 0);
  for (const k of ['across', 'wrap', 'readAcross']) {
    assert.equal(pe[k], { status: 0x02, sense: { key: 0x05, asc: 0x21, ascq: 0x00 } }, `write-past-end ${k}`);
  }
  assert.is(pe['unchanged'], true, 'the last two blocks were not touched by the refused write');

  // 4.2.2.1 / 3.2.2.1: commands outside [ExpCmdSN, MaxCmdSN] are silently ignored.
  const cw = res['cmdsn-outside-window']!;
  assert.equal(cw['answeredIgnored'], [], `no answer to commands outside the window: ${JSON.stringify(cw.replies)}`);
  assert.is(cw.replies.length, 0);
  assert.is(cw.after, 0, 'the next command with the expected CmdSN is served');
  assert.is(cw['expAfter'], ((cw['window'] as number[])[0]! + 1) >>> 0, 'only that command advanced ExpCmdSN');

  // RFC 7143 6: only Login Requests before full feature phase. Before any Login Request the
  // connection is closed; after the first one, a Login reject "Invalid during login" (0x020b).
  const bl = res['scsi-before-login']!;
  assert.ok(bl.closed, 'the connection is closed');
  assert.ok(bl.replies.every((x) => x.op === 0x23 && x.loginStatus === 0x020b), `nothing but a login reject: ${JSON.stringify(bl.replies)}`);
  const dl = res['scsi-during-login']!;
  assert.equal((dl['first'] as Array<{ loginStatus: number }>).map((x) => x.loginStatus), [0], 'the first Login Request was accepted');
  assert.equal(dl.replies.map((x) => [x.op, x.loginStatus]), [[0x23, 0x020b]], 'Login reject: Invalid during login');
  assert.ok(dl.closed);
  // 11.12.3 / 6.3: CSG FullFeaturePhase, or going back to SecurityNegotiation: initiator error (0x0200).
  for (const n of ['login-csg-full-feature', 'login-stage-back']) {
    const p = res[n]!;
    assert.equal(p.replies.map((x) => [x.op, x.loginStatus]), [[0x23, 0x0200]], `${n}: Login reject, initiator error`);
    assert.ok(p.closed, `${n}: then the connection closes (11.13.5)`);
  }
  // 7.8: a header digest error cannot be trusted: the connection is closed, the NOP-Out unanswered.
  const hd = res['header-digest-error']!;
  assert.ok(hd['negotiatedHd']);
  assert.ok(hd.closed);
  assert.equal(hd.replies, []);
  assert.ok(res['closed-mid-pdu']!.closed);
  assert.equal(res['closed-mid-pdu']!['writeCut'], { r2t: true, closed: true }, 'a write cut after half its solicited data');

  // 13.17 / 13.13 on the target's side: at most MaxOutstandingR2T R2Ts open, each at most
  // MaxBurstLength, R2TSN from 0 (11.8.6), offsets covering the write in order, then GOOD.
  const mo = res['max-outstanding-r2t']!;
  assert.equal(mo['negotiated'], { maxOutstandingR2T: 2, maxBurstLength: 65536 });
  assert.is(mo['maxOutstanding'], 2, 'two R2Ts open at once, never more');
  assert.equal(mo['r2ts'], Array.from({ length: 8 }, (_, i) => ({ sn: i, offset: i * 65536, length: 65536 })));
  assert.is(mo['status'], 0);
  assert.is(mo['written'], true, 'the data of the late-answered R2Ts is what was written');

  // Every case was counted with its reason.
  const c = portal('a').sessions.counters;
  const grew = (k: string) => (c.get(k) ?? 0) - (before.get(k) ?? 0);
  for (const [k, n] of [['pdu-reserved-opcode', 1], ['pdu-ahs', 1], ['pdu-data-too-long', 1], ['pdu-data-digest', 1], ['header-digest', 1],
    ['cmdsn-outside-window', 3], ['pdu-before-login', 1], ['pdu-during-login', 1], ['login-wrong-stage', 2], ['closed-mid-pdu', 2]] as const) {
    assert.ok(grew(k) >= n, `counter ${k} grew by ${grew(k)} (≥ ${n}): ${JSON.stringify([...c])}`);
  }

  // The target still serves a normal session, nothing is held, and this process is alive.
  const l = ok(await initiator(0, 'login', ['--target', IQN]), 'login after the hostile cases');
  assert.is(l['tur'], 0);
  assert.is(portal('a').sessions.size, 0, 'no session left behind');
  await framesAccounted(stack!);
});

ptest('initiators that send requests and never read the answers: the target stops reading them, its memory stays bounded', async () => {
  const c = portal('a').sessions.counters;
  const before = new Map(c);
  const grew = (k: string) => (c.get(k) ?? 0) - (before.get(k) ?? 0);
  /** Peak growth of this process's ArrayBuffer memory (frames, LUN reads, socket queues) while `p` runs. */
  const peak = async <T>(p: Promise<T>): Promise<[T, number]> => {
    const base = process.memoryUsage().arrayBuffers;
    let max = base;
    const t = setInterval(() => { max = Math.max(max, process.memoryUsage().arrayBuffers); }, 50);
    try { return [await p, (max - base) / 2 ** 20]; } finally { clearInterval(t); }
  };
  // At once: 120 READs of 8 MiB (960 MiB asked) from tenant a's file-backed LUN 1, and 8 KiB NOP-Out
  // pings to tenant b as fast as TCP takes them, the NOP-In echoes never read.
  const cb = portal('b').sessions.counters;
  const beforeB = new Map(cb);
  const grewB = (k: string) => (cb.get(k) ?? 0) - (beforeB.get(k) ?? 0);
  const [[rf, ef], heldMiB] = await peak(Promise.all([
    initiator(0, 'hostile', ['--target', IQN, '--lun', '1', '--cases', 'read-flood-no-read']),
    initiator(1, 'hostile', ['--target', IQN, '--cases', 'echo-flood-no-read']),
  ]));
  const rr = (rf.json['results'] as Record<string, Probe>)['read-flood-no-read']!;
  const er = (ef.json['results'] as Record<string, Probe>)['echo-flood-no-read']!;
  assert.not.ok(rr['error'], String(rr['error']));
  assert.not.ok(er['error'], String(er['error']));
  assert.is(rr['reads'], 120);
  assert.ok(grew('task-wait-output') + grew('task-wait-data-in-budget') > 0, 'reads waited for the output / the Data-In budget');
  assert.ok(grewB('input-paused-output-backlog') > 0, 'the flooded connection stopped being read while its answers were not taken');
  const offered = (er['bytesOffered'] as number) / 2 ** 20;
  assert.ok(heldMiB < 320, `the target held ${heldMiB.toFixed(0)} MiB for 960 MiB of unread Data-In and ${offered.toFixed(0)} MiB of pings offered`);
  // Tenant b pings after 1 s without input and waits 1 s for the answer (RFC 7143 11.19): the
  // initiator, blocked by the closed window, is dropped, and reset since it reads nothing.
  assert.is(grewB('nop-timeout'), 1, 'the silent initiator was noticed');
  assert.ok(er['closed'] && (er['closedAfterMs'] as number) < 9000, `the target reset the connection: ${JSON.stringify(er)}`);
  console.log(`# unread answers: ${heldMiB.toFixed(0)} MiB held for 960 MiB of reads and ${offered.toFixed(0)} MiB of pings offered; reset after ${er['closedAfterMs']} ms`);
  // Both connections were reset by the initiator: nothing held, and a normal session still works.
  const [l, lb] = await Promise.all([initiator(0, 'login', ['--target', IQN]), initiator(1, 'login', ['--target', IQN])]);
  assert.is(ok(l, 'login a after the floods')['tur'], 0);
  assert.is(ok(lb, 'login b after the floods')['tur'], 0);
  await framesAccounted(stack!);
});

ptest('file-backed LUN across a clean stop and a new stack: the data is still there', async () => {
  ok(await initiator(0, 'write', ['--target', IQN, '--lun', '1', '--lba', '0', '--blocks', '4096', '--seed', '33', '--random', '--chunk', '128']), 'write file LUN');
  // A write across the end of the file LUN is refused and does not grow the file (SBC-3 LBA OUT OF RANGE).
  const pe = (await initiator(0, 'hostile', ['--target', IQN, '--lun', '1', '--cases', 'write-past-end'])).json['results'] as Record<string, Probe>;
  assert.equal(pe['write-past-end']!['across'], { status: 0x02, sense: { key: 0x05, asc: 0x21, ascq: 0x00 } });
  assert.is(pe['write-past-end']!['unchanged'], true);
  assert.is(fs.statSync(fileLun).size, 16 << 20, 'the backing file did not grow');
  stack!.close();
  stack = null;
  stack = startStack();
  const v = ok(await initiator(0, 'verify', ['--target', IQN, '--lun', '1', '--lba', '0', '--blocks', '4096', '--seed', '33']), 'verify after restart');
  assert.is(v['badCount'], 0);
  assert.is(v['sha256'], patternHash(0, 4096, BS, 33));
  const ram = ok(await initiator(0, 'read', ['--target', IQN, '--lba', String(REGION.lba), '--blocks', '64']), 'RAM LUN after restart');
  assert.is(ram['sha256'], zeroHash(64), 'a RAM LUN starts empty with the new stack');
  await framesAccounted(stack);
  stack.close();
  stack = null;
});

// ---- kill -9 of an `xdpstack run` target ---------------------------------------------------------

const children: ChildProcess[] = [];
interface Proc { child: ChildProcess; lines: string[]; exited: Promise<void> }

function start(cmd: string, args: string[]): Proc {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const lines: string[] = [];
  const reader = () => {
    let part = '';
    return (b: Buffer) => {
      const ls = (part + b.toString()).split('\n');
      part = ls.pop()!;
      for (const l of ls) if (l) lines.push(l);
    };
  };
  child.stdout!.on('data', reader());
  child.stderr!.on('data', reader());
  return { child, lines, exited: new Promise((r) => child.once('exit', () => r())) };
}

/** True once `pred` holds over the lines (polled), false after `ms` or when the process exited. */
async function waitLines(p: Proc, pred: (l: string[]) => boolean, ms: number): Promise<boolean> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (pred(p.lines)) return true;
    if (p.child.exitCode !== null || p.child.signalCode !== null) return pred(p.lines);
    await new Promise((r) => setTimeout(r, 20));
  }
  return pred(p.lines);
}

ptest('kill -9 of the target process during writes: a new process on the same file reads back every acknowledged write', async () => {
  const file = path.join(tmp, 'kill9.img');
  const cfgPath = path.join(tmp, 'kill9.json');
  fs.writeFileSync(cfgPath, JSON.stringify({
    name: `iscsi-kill9-${PREFIX}`, control: false,
    devices: [{ name: lab.stackDevice, driver: 'afxdp', frameCount: 4096 }],
    virtualServers: [{ name: 'a', links: [{ device: lab.stackDevice, vlan: 31, addresses: [`${ADDR}/24`] }] }],
    services: [{ type: 'iscsi', vs: 'a', port: 3260, targets: [{ iqn: IQN, luns: [{ lun: 0, size: '32MiB', file }] }] }],
  }));
  const t1 = start(process.execPath, [BIN, 'run', cfgPath]);
  assert.ok(await waitLines(t1, (l) => l.some((x) => /running/.test(x)), 20000), `target up: ${t1.lines.join(' | ')}`);
  // 32 MiB in 32 KiB writes, 4 in flight; every acknowledged write is printed as it completes.
  const w = start('ip', ['netns', 'exec', lab.peers[0]!.ns, process.execPath, CLI, 'write', '--host', ADDR, '--target', IQN,
    '--lba', '0', '--blocks', '65536', '--chunk', '64', '--depth', '4', '--seed', '44', '--acks', '--deadline', '30000']);
  const acks = (l: string[]) => l.filter((x) => x.startsWith('{"ack"'));
  assert.ok(await waitLines(w, (l) => acks(l).length >= 200, 20000), `writes acknowledged: ${w.lines.slice(-3).join(' | ')}`);
  t1.child.kill('SIGKILL');
  await t1.exited;
  assert.is(t1.child.signalCode, 'SIGKILL');
  // Acknowledgements that were already on their way still count: give them a moment, then stop the initiator.
  await new Promise((r) => setTimeout(r, 300));
  w.child.kill('SIGKILL');
  await w.exited;
  const acked = acks(w.lines).map((x) => (JSON.parse(x) as { ack: [number, number] }).ack);
  assert.ok(acked.length < 1024, `the kill came before the end of the writes (${acked.length} of 1024 acknowledged)`);

  const t2 = start(process.execPath, [BIN, 'run', cfgPath]);
  assert.ok(await waitLines(t2, (l) => l.some((x) => /running/.test(x)), 20000), `target up again: ${t2.lines.join(' | ')}`);
  const v = ok(await initiator(0, 'verify', ['--target', IQN, '--seed', '44', '--list', acked.map(([l, n]) => `${l}:${n}`).join(',')]), 'verify acknowledged writes');
  assert.is(v['badCount'], 0, `every acknowledged block reads back: first bad ${JSON.stringify(v['bad'])}`);
  assert.is(v['bytes'], acked.length * 64 * BS);
  console.log(`# kill -9 after ${acked.length} acknowledged 32 KiB writes: all ${acked.length} read back from the new process`);
  t2.child.kill('SIGTERM');
  await Promise.race([t2.exited, new Promise((r) => setTimeout(r, 5000))]);
  if (t2.child.exitCode === null && t2.child.signalCode === null) { t2.child.kill('SIGKILL'); await t2.exited; }
});

test.run();

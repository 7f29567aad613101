/**
 * Data-Out zero copy against a real initiator: libiscsi (iscsi-load, WRITE(16)) in the lab's peer
 * namespace writes to our target in this process (createStack, AF_XDP), so the service's counters
 * can be read: how many Data-Out pieces were kept as pinned views of received frames, how many
 * bytes were copied, the most frames held at once (never above the limit), and none held once the
 * sessions are gone. The LUNs are files on tmpfs; each iscsi-load pass writes one buffer over the
 * whole LUN, so afterwards every transfer-sized slot of the file must equal the first one (a view
 * released too early, its frame reused, would show up as a slot that differs). Root only.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { canRunPrivileged, labPrefix } from './lib/env';
import { privilegedTest } from './lib/lab-stack';
import { iscsiLabUp, iscsiLoad, iscsiLoadPath, iscsiUrl, IscsiLab, stackTargetConfig, waitForDiscovery } from './lib/iscsi-lab';
import { createStack, Stack } from '../stack/stack';
import type { IscsiService } from '../examples/iscsi/service';
import { DEFAULT_MAX_HELD_CHUNKS } from '../examples/iscsi/hold';

const PREFIX = labPrefix('iz');
const privileged = canRunPrivileged();
const ptest = privilegedTest(privileged);
const IQN = 'iqn.2026-12.org.xdpstack:zc';
const LUN_SIZE = 16 << 20;
const files = [0, 1].map((i) => `/dev/shm/xdpstack-zc-${PREFIX}-${i}.img`);
let il: IscsiLab;
let stack: Stack | null = null;
let svc: IscsiService;

if (privileged) {
  test.before(async () => {
    for (const f of files) fs.rmSync(f, { force: true });
    il = iscsiLabUp(PREFIX, { tgtOffloads: false });
    const config = stackTargetConfig(il, { iqn: IQN, size: LUN_SIZE }, {
      service: { targets: [{ iqn: IQN, luns: files.map((file, lun) => ({ lun, size: LUN_SIZE, file })) }] },
    });
    stack = createStack(config, { log: () => { /* quiet */ } });
    stack.start();
    svc = stack.services.find((s) => s.type === 'iscsi') as IscsiService;
    await waitForDiscovery(il.initiatorNs, iscsiUrl(il.stackAddress, 3260), IQN, 20_000);
  });
  test.after(async () => {
    try { stack?.close(); } finally { il?.down(); for (const f of files) fs.rmSync(f, { force: true }); }
  });
}

/** Every `slot`-byte stretch of the file equals the first, which is not all zeros. */
function uniform(file: string, slot: number): { ok: boolean; bad: number } {
  const b = fs.readFileSync(file);
  const first = b.subarray(0, slot);
  if (first.every((x) => x === 0)) return { ok: false, bad: 0 };
  for (let o = slot; o < b.length; o += slot) if (!b.subarray(o, o + slot).equals(first)) return { ok: false, bad: o };
  return { ok: true, bad: -1 };
}

async function settle(): Promise<void> {
  // Sessions end when the tool's TCP connections close; bounded wait for the last chunk to go.
  for (let i = 0; i < 100 && (svc.holds.held > 0 || svc.portal.sessions.size > 0); i++) await new Promise((r) => setTimeout(r, 20));
}

ptest('iscsi-load passes of 4 KiB (32 in flight) and 1 MiB (4 in flight) writes: Data-Out kept as pinned frames, limit kept, nothing held after, data intact', async () => {
  if (!fs.existsSync(iscsiLoadPath())) { console.log(`# ${iscsiLoadPath()} not built: skipped`); return; }
  const runs: Array<[number, number, number]> = [[0, 4096, 32], [1, 1 << 20, 4]];
  for (const [lun, bytes, depth] of runs) {
    const before = svc.dataOut;
    const r = await iscsiLoad(il.initiatorNs, iscsiUrl(il.stackAddress, 3260, IQN, lun), { op: 'write', depth, bytes, seconds: 60, random: false, pass: true });
    assert.is(r.run.code, 0, r.run.stdout + r.run.stderr);
    await settle();
    const after = svc.dataOut;
    const copied = after.copiedBytes - before.copiedBytes;
    const pieces = after.heldPieces - before.heldPieces;
    const refused = after.refusedHolds - before.refusedHolds;
    console.log(`# LUN ${lun}: ${LUN_SIZE / bytes} writes of ${bytes} B, ${depth} in flight: ${pieces} pieces pinned, ${copied} of ${LUN_SIZE} bytes copied (${(100 * copied / LUN_SIZE).toFixed(1)} %), ${refused} holds refused; peak ${svc.holds.peak} frames held (limit ${DEFAULT_MAX_HELD_CHUNKS})`);
    assert.ok(pieces > 0, 'Data-Out kept as views of received frames');
    assert.ok(copied < LUN_SIZE, 'not everything copied');
    assert.is(svc.holds.held, 0, 'no frame held once the session ended');
    assert.ok(svc.holds.peak <= DEFAULT_MAX_HELD_CHUNKS);
  }
  stack!.close();
  stack = null;
  for (const [lun, bytes] of runs) {
    const u = uniform(files[lun]!, bytes);
    assert.ok(u.ok, `LUN ${lun}: slot at ${u.bad} differs from the first`);
  }
});

test.run();

/**
 * The iSCSI lab: a real initiator (libiscsi's tools) in a kernel peer namespace, and two targets it
 * reaches over the same lab switch, each at an address of its own:
 *
 *   root ns (xdpstack)            switch ns ${prefix}-sw              peer ns ${prefix}-p0 (initiator)
 *   ${prefix}0 10.77.0.1 ─veth─ stk ─ br0 ─ p0 ─veth─ eth0 10.77.0.2   iscsi-test-cu, iscsi-ls, iscsi-perf
 *   (AF_XDP, our target)               └─── p1 ─veth─ eth0 10.77.0.3   peer ns ${prefix}-p1: tgtd (kernel TCP)
 *
 * Both targets are one veth hop from the bridge and the initiator is another: tgtd talks kernel TCP
 * to kernel TCP, our target talks xdpstack TCP (AF_XDP copy mode on ${prefix}0) to kernel TCP.
 * The lab's peers send full checksums (`ethtool -K eth0 tx off`, which the stack's side needs);
 * the tgtd namespace gets the kernel's defaults back (`tx on`: checksum offload, TSO/GSO), so the
 * reference runs as tgtd normally does over kernel TCP, unless `tgtOffloads: false`. With offloads
 * on, tgtd's frames carry partial checksums, fine for the kernel initiator but dropped by the stack
 * (tcp-bad-checksum): a lab where the stack talks to tgtd itself needs `tgtOffloads: false`.
 *
 * A target under test is "a URL and a way to stop it": `TargetUnderTest`, made by a
 * `TargetStarter(lab, disk)`. `tgtStarter()` starts tgtd (iscsi-tgt.ts; the disk is LUN 1 there);
 * `stackStarter()` starts xdpstack with an `iscsi` service in its config (`stackTargetConfig`; the
 * disk is LUN 0), as `xdpstack run CONFIG` in a child process or with createStack in this process.
 * Both take the same disk geometry (`IscsiDisk`).
 */
import { execFileSync, spawn, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { labDown, labUp, Lab } from '../../stack/lab/lab';
import { createStack } from '../../stack/stack';
import type { StackConfig } from '../../stack/control/config';
import { ServiceConfig, serviceKind } from '../../stack/control/services';
import '../../examples/iscsi/index';
import { iscsiUrl, startTgt, TgtInstance } from './iscsi-tgt';
import { iscsiLs } from './iscsi-tools';

export * from './iscsi-tools';
export { iscsiUrl, startTgt } from './iscsi-tgt';
export type { TgtInstance, TgtOptions, TgtTargetSpec, TgtLun } from './iscsi-tgt';

export const NET = '10.77.0';
export const STACK_ADDRESS = `${NET}.1`;
export const INITIATOR_ADDRESS = `${NET}.2`;
export const TGT_ADDRESS = `${NET}.3`;

/**
 * The fast subset of iscsi-test-cu for `npm test`: the commands every initiator needs (TEST UNIT
 * READY, INQUIRY, READ CAPACITY 10/16, READ/WRITE 10/16, MODE SENSE 6, the mandatory SBC set,
 * REPORT SUPPORTED OPERATION CODES), residuals and task management: 57 tests, about 2 s against
 * tgtd here (the full ALL family: 230 tests, 20-24 s; iSCSI: 15 tests, 3 s).
 */
export const FAST_SUBSET = [
  'ALL.TestUnitReady', 'ALL.Inquiry', 'ALL.ReadCapacity10', 'ALL.ReadCapacity16', 'ALL.Read10', 'ALL.Read16',
  'ALL.Write10', 'ALL.Write16', 'ALL.ModeSense6', 'ALL.Mandatory', 'ALL.ReportSupportedOpcodes', 'ALL.iSCSIResiduals', 'ALL.iSCSITMF',
].join(',');

export interface IscsiLab {
  lab: Lab;
  /** Namespace of the initiator (libiscsi tools). */
  initiatorNs: string;
  /** Namespace of tgtd. */
  tgtNs: string;
  /** Our target's address, on lab.stackDevice (the stack's VS). */
  stackAddress: string;
  tgtAddress: string;
  initiatorAddress: string;
  /** Removes the lab (namespaces, processes left in them, the stack's device). */
  down(): void;
}

export interface IscsiLabOptions {
  /** Kernel defaults (checksum offload, TSO/GSO) in the tgtd namespace; default true. */
  tgtOffloads?: boolean;
}

/** Builds the iSCSI lab with prefix `prefix` (replacing one of the same prefix). */
export function iscsiLabUp(prefix: string, opts: IscsiLabOptions = {}): IscsiLab {
  const lab = labUp({ prefix, peers: [{ ipv4: `${INITIATOR_ADDRESS}/24` }, { ipv4: `${TGT_ADDRESS}/24` }] });
  const tgtNs = lab.peers[1]!.ns;
  try {
    if (opts.tgtOffloads ?? true) execFileSync('ip', ['netns', 'exec', tgtNs, 'ethtool', '-K', 'eth0', 'tx', 'on'], { stdio: 'ignore', timeout: 10_000 });
  } catch (e) {
    labDown(prefix);
    throw e;
  }
  return {
    lab, initiatorNs: lab.peers[0]!.ns, tgtNs,
    stackAddress: STACK_ADDRESS, tgtAddress: TGT_ADDRESS, initiatorAddress: INITIATOR_ADDRESS,
    down: () => labDown(prefix),
  };
}

/** The disk both targets serve: one LUN of `size` bytes. */
export interface IscsiDisk {
  iqn: string;
  /** Bytes, a multiple of blockSize. */
  size: number;
  /** 512 (default) or 4096. */
  blockSize?: number;
}

export interface TargetUnderTest {
  /** 'tgt' or 'xdpstack'. */
  readonly name: string;
  /** Discovery portal URL: iscsi://address[:port]. */
  readonly portalUrl: string;
  /** iscsi://address[:port]/iqn/lun of the disk. */
  readonly url: string;
  readonly iqn: string;
  readonly lun: number;
  /** How it was started (for reports). */
  readonly settings: Record<string, unknown>;
  /** The target's recent log output, for failure reports. */
  log(): string;
  /** Stops the target (bounded); idempotent. */
  stop(): Promise<void>;
}

export type TargetStarter = (lab: IscsiLab, disk: IscsiDisk) => Promise<TargetUnderTest>;

/** tgtd in the lab's tgtd namespace, the disk on a tmpfs file; `params` as TgtOptions.params. */
export function tgtStarter(o: { params?: Record<string, string | number>; ioThreads?: number } = {}): TargetStarter {
  return async (il, disk) => {
    const tgt: TgtInstance = await startTgt({
      ns: il.tgtNs, address: il.tgtAddress, targets: [{ iqn: disk.iqn, luns: [{ size: disk.size, blockSize: disk.blockSize }] }],
      params: o.params, ioThreads: o.ioThreads,
    });
    const lun = tgt.targets[0]!.luns[0]!;
    return {
      name: 'tgt', portalUrl: iscsiUrl(il.tgtAddress, tgt.portal.port), url: lun.url, iqn: disk.iqn, lun: lun.lun,
      settings: {
        target: 'tgtd 1.0.85 (Debian tgt), kernel TCP', backingStore: `rdwr on ${lun.file} (tmpfs)`, blockSize: lun.blockSize,
        size: lun.size, lun: lun.lun, controlPort: tgt.controlPort, params: o.params ?? 'tgt defaults',
      },
      log: () => tgt.log(),
      stop: () => tgt.stop(),
    };
  };
}

/** Our target is started only when the `iscsi` service type is registered (examples/iscsi/index.ts). */
export class TargetUnavailableError extends Error {
  constructor(message: string) { super(message); this.name = 'TargetUnavailableError'; }
}

export function iscsiServiceAvailable(): boolean {
  return serviceKind('iscsi') !== undefined;
}

export interface StackTargetOptions {
  /** 'child' (default): `xdpstack run CONFIG --no-control` in its own process, like tgtd; 'inprocess': createStack here. */
  mode?: 'child' | 'inprocess';
  /** Busy-poll the stack's loop. */
  busyPoll?: boolean;
  /** AF_XDP frames of the device (default: the driver's). */
  frameCount?: number;
  /** Extra fields of the iscsi service entry (e.g. negotiation limits), merged into it. */
  service?: Record<string, unknown>;
}

/**
 * The stack config of our target in the lab: one VS `a` on the stack's device with the lab's
 * stack address, and the `iscsi` service on port 3260 with the disk as LUN 0 of `disk.iqn`.
 */
export function stackTargetConfig(il: IscsiLab, disk: IscsiDisk, o: StackTargetOptions = {}): StackConfig {
  const lun: Record<string, unknown> = { lun: 0, size: disk.size };
  if (disk.blockSize !== undefined && disk.blockSize !== 512) lun.blockSize = disk.blockSize;
  const service = { type: 'iscsi', vs: 'a', port: 3260, targets: [{ iqn: disk.iqn, luns: [lun] }], ...(o.service ?? {}) };
  const device: StackConfig['devices'][number] = { name: il.lab.stackDevice, driver: 'afxdp' };
  if (o.frameCount) device.frameCount = o.frameCount;
  return {
    name: `iscsi-${il.lab.prefix}`, control: false,
    devices: [device],
    virtualServers: [{ name: 'a', links: [{ device: il.lab.stackDevice, addresses: [`${il.stackAddress}/24`] }] }],
    services: [service as unknown as ServiceConfig],
  };
}

const ROOT = path.resolve(__dirname, '..', '..', '..');
/** What `xdpstack run` prints once its stack runs (stack/cli/stack-commands.ts runStack). */
const RUNNING = /xdpstack: stack '[^']*' running/;

/** xdpstack with the `iscsi` service (see stackTargetConfig); waits until discovery answers. */
export function stackStarter(o: StackTargetOptions = {}): TargetStarter {
  return async (il, disk) => {
    if (!iscsiServiceAvailable()) throw new TargetUnavailableError("xdpstack has no 'iscsi' service type (examples/iscsi/index.ts registers it)");
    const config = stackTargetConfig(il, disk, o);
    const mode = o.mode ?? 'child';
    let logTail = '';
    const keep = (m: string) => { logTail = (logTail + m + '\n').slice(-65536); };
    let stopIt: () => Promise<void>;
    if (mode === 'inprocess') {
      const stack = createStack(config, { busyPoll: o.busyPoll, log: keep });
      stack.start();
      stopIt = async () => { stack.close(); };
    } else {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-iscsi-'));
      const file = path.join(dir, 'stack.json');
      fs.writeFileSync(file, JSON.stringify(config, null, 2));
      const args = [path.join(ROOT, 'bin', 'xdpstack.js'), 'run', file, '--no-control', ...(o.busyPoll ? ['--busy-poll'] : [])];
      const child: ChildProcess = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout!.setEncoding('utf8').on('data', (d: string) => keep(d));
      child.stderr!.setEncoding('utf8').on('data', (d: string) => keep(d));
      const gone = new Promise<void>((r) => child.once('close', () => r()));
      stopIt = async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const t = setTimeout(() => child.kill('SIGKILL'), 5000);
          await gone;
          clearTimeout(t);
        }
        fs.rmSync(dir, { recursive: true, force: true });
      };
      // Running once it says so (bounded), or failed if it exits first.
      const until = Date.now() + 20_000;
      while (!RUNNING.test(logTail) && child.exitCode === null && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      if (!RUNNING.test(logTail)) {
        await stopIt();
        throw new Error(`xdpstack did not start: ${logTail.slice(-2000)}`);
      }
    }
    let stopped = false;
    const t: TargetUnderTest = {
      name: 'xdpstack', portalUrl: iscsiUrl(il.stackAddress, 3260), url: iscsiUrl(il.stackAddress, 3260, disk.iqn, 0),
      iqn: disk.iqn, lun: 0,
      settings: { target: `xdpstack iscsi service (${mode === 'child' ? 'xdpstack run, own process' : 'in the harness process'})`, busyPoll: !!o.busyPoll, config },
      log: () => logTail,
      stop: async () => { if (!stopped) { stopped = true; await stopIt(); } },
    };
    // Serving once SendTargets discovery names the IQN (the AF_XDP socket and ARP take a moment).
    try {
      await waitForDiscovery(il.initiatorNs, t.portalUrl, disk.iqn, 20_000);
    } catch (e) {
      await t.stop();
      throw e;
    }
    return t;
  };
}

/** Retries iscsi-ls (bounded) until the portal's SendTargets answer names `iqn`. */
export async function waitForDiscovery(ns: string, portalUrl: string, iqn: string, ms: number): Promise<void> {
  const until = Date.now() + ms;
  let last = '';
  for (let i = 0; i < 100; i++) {
    const r = await iscsiLs(ns, portalUrl, { timeoutMs: Math.max(1000, Math.min(5000, until - Date.now())) });
    if (r.targets.some((t) => t.iqn === iqn)) return;
    last = `exit ${r.run.code}: ${r.run.stdout}${r.run.stderr}`.trim();
    if (Date.now() >= until) break;
    await new Promise((res) => setTimeout(res, 200));
  }
  throw new Error(`${portalUrl}: discovery did not name ${iqn} within ${ms} ms (${last.slice(0, 500)})`);
}

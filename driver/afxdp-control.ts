/**
 * Control-plane helpers of the AF_XDP driver (never on a packet path): device facts from sysfs,
 * privileges, bpffs, the pid files marking which process has our program on a device, VLAN
 * offloads, option checks and error texts, and the exit hooks that close what is still open.
 * Shared by the program side (driver/afxdp-program.ts, main thread) and the socket side
 * (driver/afxdp-socket.ts, any thread).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isMainThread } from 'node:worker_threads';
import type { NativeError } from './native';
import type { LogFn } from './types';

/** Directory of the pid files marking which process has our program on a device. */
export const RUN_DIR = process.env.XDPSTACK_RUN_DIR ?? '/run/xdpstack';

/** Frame headroom: RX data starts XDP_PACKET_HEADROOM (256) bytes into each chunk. */
export const RX_HEADROOM = 256;

/** Entries of the program's XSKMAP: queues 0..MAX_QUEUES-1 can have a socket (XDPSTACK_MAX_QUEUES in driver/bpf/xdpstack_maps.h). */
export const MAX_QUEUES = 64;

/** The interface's index, 0 when there is no such interface. */
export function ifindexOf(ifname: string): number {
  return Number(sysfs(ifname, 'ifindex') ?? 0) || 0;
}

/** The interval of the device check in service() (µs). */
export const DEVICE_CHECK_US = 1_000_000;

export function sysfs(ifname: string, file: string): string | null {
  try {
    return fs.readFileSync(`/sys/class/net/${ifname}/${file}`, 'utf8').trim();
  } catch {
    return null;
  }
}

export function tryExec(cmd: string, args: string[]): string | null {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
  } catch {
    return null;
  }
}

const CAP_NET_ADMIN = 12n, CAP_NET_RAW = 13n, CAP_SYS_ADMIN = 21n, CAP_BPF = 39n;

export function checkPrivileges(): void {
  let eff = 0n;
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) eff = BigInt('0x' + m[1]);
  } catch { /* not Linux: the checks below fail */ }
  const has = (c: bigint) => ((eff >> c) & 1n) === 1n;
  const missing: string[] = [];
  if (!has(CAP_NET_ADMIN)) missing.push('CAP_NET_ADMIN');
  if (!has(CAP_NET_RAW)) missing.push('CAP_NET_RAW');
  if (!has(CAP_BPF) && !has(CAP_SYS_ADMIN)) missing.push('CAP_BPF');
  if (missing.length) {
    throw new Error(`afxdp: missing capability ${missing.join(', ')}: run as root, or grant them ` +
      `('setcap cap_net_admin,cap_net_raw,cap_bpf,cap_ipc_lock+ep ${process.execPath}')`);
  }
}

export function ensureBpffs(log: LogFn): void {
  let mounts = '';
  try { mounts = fs.readFileSync('/proc/mounts', 'utf8'); } catch { return; }
  if (mounts.split('\n').some((l) => { const f = l.split(' '); return f[1] === '/sys/fs/bpf' && f[2] === 'bpf'; })) return;
  try {
    fs.mkdirSync('/sys/fs/bpf', { recursive: true });
    execFileSync('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf'], { stdio: 'ignore', timeout: 10_000 });
    log('afxdp: mounted bpffs on /sys/fs/bpf (needed by the libxdp dispatcher)', 'info');
  } catch {
    log('afxdp: bpffs is not mounted and mounting it failed: using a single XDP program without the dispatcher');
  }
}

/** Process start time (clock ticks since boot), to tell a live pid from a recycled one. */
export function startTimeOf(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

export function pidFile(ifname: string): string {
  return path.join(RUN_DIR, `${ifname}.pid`);
}

/** The live process (other than us) recorded as owning ifname, or null. */
export function ownerOf(ifname: string): number | null {
  const pid = deviceUser(ifname);
  return pid === process.pid ? null : pid;
}

/** The live process (this one included) whose stack has our program on ifname, or null. */
export function deviceUser(ifname: string): number | null {
  let text: string;
  try { text = fs.readFileSync(pidFile(ifname), 'utf8'); } catch { return null; }
  const [p, st] = text.trim().split(/\s+/);
  const pid = Number(p);
  if (!Number.isInteger(pid) || pid <= 0) return null;
  const now = startTimeOf(pid);
  if (now === null || (st !== undefined && st !== now)) return null;
  return pid;
}

/**
 * VLAN tags (802.1Q and 802.1ad) must stay in the frame. NIC: rx-vlan-offload and
 * rx-vlan-stag-hw-parse off. veth whose peer is in this namespace: the peer's tx-vlan-offload and
 * tx-vlan-stag-hw-insert off. Returns descriptions of what was changed.
 */
export function keepVlanTagsInBand(ifname: string): string[] {
  const changed: string[] = [];
  const info = tryExec('ethtool', ['-i', ifname]) ?? '';
  const driver = /^driver:\s*(\S+)/m.exec(info)?.[1] ?? '';
  const turnOff = (dev: string, features: string[], what: string) => {
    const k = tryExec('ethtool', ['-k', dev]) ?? '';
    for (const f of features) {
      if (new RegExp(`^${f}:\\s*on`, 'm').test(k) && tryExec('ethtool', ['-K', dev, f, 'off']) !== null) {
        changed.push(`afxdp: turned ${f} off on ${dev}${what} so VLAN tags reach AF_XDP in-band`);
      }
    }
  };
  if (driver === 'veth') {
    // The peer is visible only when it lives in this namespace (no link-netnsid).
    let peer: string | undefined;
    try {
      const j = JSON.parse(tryExec('ip', ['-j', 'link', 'show', 'dev', ifname]) ?? '[]') as Array<{ link?: string; link_netnsid?: number }>;
      if (j[0] && j[0].link_netnsid === undefined && j[0].link) peer = j[0].link;
    } catch { /* no peer information */ }
    // Peer in another namespace (the lab): its owner keeps tags in band.
    if (peer) turnOff(peer, ['tx-vlan-offload', 'tx-vlan-stag-hw-insert'], ` (veth peer of ${ifname})`);
  } else if (fs.existsSync(`/sys/class/net/${ifname}/device`)) {
    turnOff(ifname, ['rx-vlan-offload', 'rx-vlan-stag-hw-parse'], '');
  }
  return changed;
}

export function nativeMessage(e: unknown): { errno: number; msg: string; log: string } {
  const ne = e as NativeError;
  return { errno: ne?.errno ?? 0, msg: ne?.message ?? String(e), log: (ne?.log ?? '').trim() };
}

export function describeAttachError(ifname: string, mode: string, errno: number, msg: string): string {
  switch (errno) {
    case 1: case 13:
      return `afxdp: not permitted to attach XDP to ${ifname} (${msg}): run as root or with CAP_NET_ADMIN + CAP_BPF`;
    case 19:
      return `afxdp: device ${ifname} vanished (${msg})`;
    case 16: case 17:
      return `afxdp: ${ifname} already has an XDP program not managed by libxdp (${msg}): remove it with 'xdp-loader unload ${ifname} --all' or 'ip link set dev ${ifname} xdp off'`;
    case 95: case 22:
      return `afxdp: ${ifname} does not support ${mode} XDP (${msg})` + (mode === 'native' ? `: use mode 'skb' or 'auto'` : '');
    default:
      return `afxdp: attaching the XDP program to ${ifname} in ${mode} mode failed: ${msg}`;
  }
}

export function describeSocketError(ifname: string, queue: number, zc: string, errno: number, msg: string): string {
  switch (errno) {
    case 1: case 13:
      return `afxdp: not permitted to create an AF_XDP socket (${msg}): run as root or with CAP_NET_RAW + CAP_IPC_LOCK`;
    case 12: case 11:
      return `afxdp: cannot register the UMEM (${msg}): run as root / with CAP_IPC_LOCK, or raise 'ulimit -l'`;
    case 16:
      return `afxdp: queue ${queue} of ${ifname} is busy (${msg}): another AF_XDP socket is bound to it`;
    case 22:
      return `afxdp: cannot bind to ${ifname} queue ${queue} (${msg}): check the queue exists ('ethtool -l ${ifname}')`;
    case 95:
      return zc === 'on'
        ? `afxdp: ${ifname} has no zero-copy AF_XDP support (${msg}): use zeroCopy 'auto' or 'off'`
        : `afxdp: ${ifname} does not support AF_XDP (${msg})`;
    case 97:
      return `afxdp: this kernel has no AF_XDP support (${msg}): it needs CONFIG_XDP_SOCKETS`;
    default:
      return `afxdp: creating the AF_XDP socket on ${ifname} queue ${queue} failed: ${msg}`;
  }
}

/** The device's receive queues in use (real_num_rx_queues); 1 when sysfs does not say. */
export function rxQueueCount(ifname: string): number {
  try {
    return fs.readdirSync(`/sys/class/net/${ifname}/queues`).filter((q) => q.startsWith('rx-')).length || 1;
  } catch {
    return 1;
  }
}

export function macOf(ifname: string): Uint8Array {
  const s = sysfs(ifname, 'address') ?? '00:00:00:00:00:00';
  return Uint8Array.from(s.split(':').map((h) => parseInt(h, 16)));
}

export function checkIfname(ifname: unknown): string {
  if (typeof ifname !== 'string' || !/^[^\s/]{1,15}$/.test(ifname)) throw new Error(`afxdp: bad interface name ${JSON.stringify(ifname)}`);
  return ifname;
}

/** The device exists, we may use AF_XDP/XDP, and it is up. Throws an Error naming the fix. */
export function checkDeviceUsable(ifname: string): void {
  if (sysfs(ifname, 'ifindex') === null) {
    throw new Error(`afxdp: no network device '${ifname}' in this namespace: check the name with 'ip link' (or create it, e.g. the lab's labUp())`);
  }
  checkPrivileges();
  const flags = Number(sysfs(ifname, 'flags') ?? '0');
  if ((flags & 1) === 0) throw new Error(`afxdp: device ${ifname} is down: bring it up with 'ip link set dev ${ifname} up'`);
}

/** Is the device of that name still the one at `ifindex`, and up? (0 = no such device.) */
export function deviceNow(ifname: string): { ifindex: number; up: boolean } {
  const idx = ifindexOf(ifname);
  return { ifindex: idx, up: idx > 0 && (Number(sysfs(ifname, 'flags') ?? '0') & 1) === 1 };
}

/** Why a device bound at `boundIfindex` is unusable now ('' when it is there and up). */
export function lossReason(boundIfindex: number, now: { ifindex: number; up: boolean }): string {
  if (now.ifindex === boundIfindex && now.up) return '';
  return now.ifindex === 0 ? 'it no longer exists'
    : now.ifindex !== boundIfindex ? `it was replaced (ifindex ${boundIfindex} → ${now.ifindex})` : 'it is down';
}

// ---------------------------------------------------------------------------------------------
// Exit handling: whatever this thread still has open (sockets, attached programs) is closed at
// exit and on SIGINT/SIGTERM, so no program stays attached and no pid file stays behind.

const openThings = new Set<{ close(): void }>();
let exitHooksInstalled = false;

function closeAll(): void {
  for (const d of [...openThings]) {
    try { d.close(); } catch { /* keep closing the others */ }
  }
}

function onSignal(sig: NodeJS.Signals): void {
  closeAll();
  // Only listener: behave as Node would without one (terminate by the signal).
  if (process.listenerCount(sig) === 1) {
    process.removeListener(sig, onSignal);
    process.kill(process.pid, sig);
  }
}

/** Closes `x` at exit (a worker's own exit included) until untrack(x). */
export function track(x: { close(): void }): void {
  openThings.add(x);
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', closeAll);
  // Signals reach the main thread only; a worker's sockets close with the worker.
  if (isMainThread) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
}

export function untrack(x: { close(): void }): void {
  openThings.delete(x);
}

/**
 * AF_XDP driver: one AF_XDP socket on (device, queue), its UMEM wrapped in a FramePool, and our
 * XDP program (driver/bpf/xdpstack_xdp.bpf.c) redirecting only the frames the stack owns.
 *
 * Frame states (umem/pool.ts) are kept exact:
 *   fill ring / RX ring          -> Kernel
 *   rx() hands them to the caller -> Held
 *   tx() puts them on the TX ring -> Tx, until the completion ring returns them -> Free
 *
 * Every native call moves a whole burst (≤ 64 descriptors) through preallocated Uint32Arrays.
 * Control-plane work (sysfs, ethtool, pid file) happens in openAfxdp() and close(), and once a
 * second in service() to notice a device that disappeared, went down or was replaced: the loss is
 * logged once and counted, frames given to the driver meanwhile are dropped (`device_lost`), and when
 * a device of that name is back and up the XDP program, the owned MACs/addresses in its maps and the
 * socket (over the same UMEM) are set up again.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FramePool, FrameState } from '../umem/pool';
import { BURST_MAX, Burst, countDrop, Driver, DriverStats, newStats } from './types';
import { DEFAULT_POLICE, gcraParams, PoliceConfig, resolvePolice } from './police';
import { KIND_MAC, KIND_SNM, MapKey, MapKind, OwnedTable, ownKeys } from './owned';
import type { IpAddr } from '../protocols/ip/addr';
import { loadNative, NativeAddon, NativeError, NativeProgram, NativeXsk, XDP_OBJECT_PATH, XDP_PROG_NAME, XdpStatistics } from './native';

export interface AfxdpOptions {
  ifname: string;
  queue?: number;
  frameSize?: 2048 | 4096;
  frameCount?: number;
  mode?: 'auto' | 'native' | 'skb';
  zeroCopy?: 'auto' | 'on' | 'off';
  busyPoll?: boolean;
  /** Ring size (fill, completion, RX, TX); a power of two. Default min(2048, frameCount / 2). */
  ringSize?: number;
  /** Where configuration changes and fallbacks are reported. Default: console.warn. */
  log?: (msg: string) => void;
  /**
   * Policers of SYNs and ARP in the XDP program (driver/police.ts: keys, defaults, ranges). They
   * belong to the device's program: the last queue opened sets them for all its queues.
   */
  police?: Partial<PoliceConfig>;
}

export interface RingLevels {
  fill: number;
  rx: number;
  tx: number;
  completion: number;
}

/** Directory of the pid files marking which process has our program on a device. */
export const RUN_DIR = process.env.XDPSTACK_RUN_DIR ?? '/run/xdpstack';

/** Frame headroom: RX data starts XDP_PACKET_HEADROOM (256) bytes into each chunk. */
const RX_HEADROOM = 256;

// ---------------------------------------------------------------------------------------------
// Control plane helpers (never on a packet path)

/** The interface's index, 0 when there is no such interface. */
function ifindexOf(ifname: string): number {
  return Number(sysfs(ifname, 'ifindex') ?? 0) || 0;
}

/** The interval of the device check in service() (µs). */
export const DEVICE_CHECK_US = 1_000_000;

function sysfs(ifname: string, file: string): string | null {
  try {
    return fs.readFileSync(`/sys/class/net/${ifname}/${file}`, 'utf8').trim();
  } catch {
    return null;
  }
}

function tryExec(cmd: string, args: string[]): string | null {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
  } catch {
    return null;
  }
}

const CAP_NET_ADMIN = 12n, CAP_NET_RAW = 13n, CAP_SYS_ADMIN = 21n, CAP_BPF = 39n;

function checkPrivileges(): void {
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

function ensureBpffs(log: (m: string) => void): void {
  let mounts = '';
  try { mounts = fs.readFileSync('/proc/mounts', 'utf8'); } catch { return; }
  if (mounts.split('\n').some((l) => { const f = l.split(' '); return f[1] === '/sys/fs/bpf' && f[2] === 'bpf'; })) return;
  try {
    fs.mkdirSync('/sys/fs/bpf', { recursive: true });
    execFileSync('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf'], { stdio: 'ignore', timeout: 10_000 });
    log('afxdp: mounted bpffs on /sys/fs/bpf (needed by the libxdp dispatcher)');
  } catch {
    log('afxdp: bpffs is not mounted and mounting it failed: using a single XDP program without the dispatcher');
  }
}

/** Process start time (clock ticks since boot), to tell a live pid from a recycled one. */
function startTimeOf(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function pidFile(ifname: string): string {
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
function keepVlanTagsInBand(ifname: string): string[] {
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

function nativeMessage(e: unknown): { errno: number; msg: string; log: string } {
  const ne = e as NativeError;
  return { errno: ne?.errno ?? 0, msg: ne?.message ?? String(e), log: (ne?.log ?? '').trim() };
}

// ---------------------------------------------------------------------------------------------
// Per-process attachment registry and exit handling

interface Attachment {
  ifname: string;
  prog: NativeProgram;
  queues: Set<number>;
  mode: 'native' | 'skb';
  /** The interface the program is attached to (a device recreated under the name gets another). */
  ifindex: number;
  /** Entries of the ownership maps with their owner counts, kept to fill the maps of a re-attached program. */
  owned: OwnedTable;
  /**
   * The device's allmulticast flag while the stack owns IPv6 addresses on it: 'ours' = we turned it
   * on (and turn it off at detach), 'theirs' = it was on already, 'unset' = not needed yet.
   */
  allmulti: 'unset' | 'ours' | 'theirs';
  /** The policers' settings, kept for a re-attached program. */
  police: PoliceConfig;
  /** Frames policed (SYN, ARP) by programs this attachment had before the current one. */
  policedBefore: [number, number];
}

const attachments = new Map<string, Attachment>();
const openDrivers = new Set<AfxdpDriver>();
let exitHooksInstalled = false;

function closeAll(): void {
  for (const d of [...openDrivers]) {
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

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', closeAll);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

function attach(n: NativeAddon, ifname: string, mode: 'auto' | 'native' | 'skb', log: (m: string) => void): Attachment {
  const have = attachments.get(ifname);
  if (have) {
    if (mode !== 'auto' && have.prog.attachMode !== mode) {
      throw new Error(`afxdp: ${ifname} is already attached in ${have.prog.attachMode} mode by this process, ${mode} requested`);
    }
    return have;
  }
  const owner = ownerOf(ifname);
  if (owner !== null) {
    throw new Error(`afxdp: ${ifname} is in use by pid ${owner} (another xdpstack process); stop it or use another device`);
  }
  // Our program left by a process that died without detaching (kill -9): remove it.
  let removed = 0;
  try {
    removed = n.removeProgram(ifname, XDP_PROG_NAME);
  } catch (e) {
    const m = nativeMessage(e);
    throw new Error(`afxdp: cannot remove a stale xdpstack program from ${ifname}: ${m.msg}` +
      ` (try 'xdp-loader unload ${ifname} --all')`);
  }
  if (removed) log(`afxdp: removed ${removed} stale xdpstack XDP program(s) from ${ifname} left by a dead process`);
  if (!fs.existsSync(XDP_OBJECT_PATH)) {
    throw new Error(`afxdp: XDP object ${XDP_OBJECT_PATH} missing: run 'bash scripts/setup.sh' (or 'make -C driver')`);
  }
  let prog: NativeProgram | undefined;
  const tryMode = (m: 'native' | 'skb'): NativeProgram => {
    n.lastLog(true);
    try {
      return new n.Program(ifname, XDP_OBJECT_PATH, m);
    } catch (e) {
      const x = nativeMessage(e);
      const detail = x.log ? `; ${x.log.split('\n').slice(-3).join(' | ')}` : '';
      const err = new Error(describeAttachError(ifname, m, x.errno, x.msg) + detail) as NativeError;
      err.errno = x.errno;
      throw err;
    }
  };
  if (mode === 'skb') prog = tryMode('skb');
  else {
    try {
      prog = tryMode('native');
    } catch (e) {
      const errno = (e as NativeError).errno ?? 0;
      // Permission / busy errors would fail in SKB mode too: report them as they are.
      if (mode === 'native' || errno === 1 /* EPERM */ || errno === 16 /* EBUSY */ || errno === 17 /* EEXIST */) throw e;
      log(`afxdp: native XDP failed on ${ifname} (${(e as Error).message}); falling back to SKB (generic) mode, which is slower`);
      prog = tryMode('skb');
    }
  }
  const lastLog = n.lastLog(true);
  if (!prog.dispatcher && /[Ff]alling back/.test(lastLog)) {
    const why = /Compatibility check for dispatcher program failed: (.*)/.exec(lastLog)?.[1];
    log(`afxdp: libxdp could not use its multiprog dispatcher on ${ifname}${why ? ` (${why})` : ''}: attached as a single program`);
  }
  try {
    fs.mkdirSync(RUN_DIR, { recursive: true });
    fs.writeFileSync(pidFile(ifname), `${process.pid} ${startTimeOf(process.pid) ?? ''}\n`);
  } catch (e) {
    prog.detach();
    throw new Error(`afxdp: cannot write ${pidFile(ifname)}: ${(e as Error).message}`);
  }
  const a: Attachment = {
    ifname, prog, queues: new Set(), mode: prog.attachMode, ifindex: ifindexOf(ifname), owned: new OwnedTable(), allmulti: 'unset',
    police: { ...DEFAULT_POLICE }, policedBefore: [0, 0],
  };
  attachments.set(ifname, a);
  return a;
}

/** Sets the program's policers (SYN, ARP) from `p`. */
function applyPolice(prog: NativeProgram, p: PoliceConfig): void {
  const syn = gcraParams(p.synRate, p.synBurst);
  const arp = gcraParams(p.arpRate, p.arpBurst);
  prog.police(0, syn.intervalNs, syn.burstNs);
  prog.police(1, arp.intervalNs, arp.burstNs);
}

function release(a: Attachment, queue: number): void {
  a.queues.delete(queue);
  if (a.queues.size) return;
  attachments.delete(a.ifname);
  try { a.prog.detach(); } catch { /* already gone with the device */ }
  dropAllmulti(a);
  try {
    const text = fs.readFileSync(pidFile(a.ifname), 'utf8');
    if (Number(text.trim().split(/\s+/)[0]) === process.pid) fs.unlinkSync(pidFile(a.ifname));
  } catch { /* no pid file */ }
}

/** IFF_ALLMULTI in /sys/class/net/IF/flags. */
const IFF_ALLMULTI = 0x200;

/**
 * The solicited-node groups of the stack's IPv6 addresses (33:33:ff:xx:xx:xx) must pass the NIC's
 * multicast filter, which the kernel fills only for groups it joins itself (none: the device has
 * no kernel IPv6 of the stack's). Rather than one filter entry per group, the device receives all
 * multicast while the stack owns an IPv6 address (the XDP program passes what is not the stack's).
 */
function ensureAllmulti(a: Attachment, log: (m: string) => void): void {
  if (a.allmulti !== 'unset') return;
  if ((parseInt(sysfs(a.ifname, 'flags') ?? '0', 16) & IFF_ALLMULTI) !== 0) { a.allmulti = 'theirs'; return; }
  if (tryExec('ip', ['link', 'set', 'dev', a.ifname, 'allmulticast', 'on']) === null) {
    log(`afxdp: could not turn allmulticast on for ${a.ifname}: neighbour solicitations to the stack's IPv6 addresses may not reach it`);
    return;
  }
  a.allmulti = 'ours';
}

/** Turns allmulticast off again if we turned it on. */
function dropAllmulti(a: Attachment): void {
  if (a.allmulti === 'ours') tryExec('ip', ['link', 'set', 'dev', a.ifname, 'allmulticast', 'off']);
  a.allmulti = 'unset';
}

function describeAttachError(ifname: string, mode: string, errno: number, msg: string): string {
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

function describeSocketError(ifname: string, queue: number, zc: string, errno: number, msg: string): string {
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

// ---------------------------------------------------------------------------------------------

/** Opens an AF_XDP driver on (ifname, queue). Throws an Error naming cause and fix on failure. */
export function openAfxdp(o: AfxdpOptions): AfxdpDriver {
  const log = o.log ?? ((m: string) => console.warn(m));
  const ifname = o.ifname;
  if (typeof ifname !== 'string' || !/^[^\s/]{1,15}$/.test(ifname)) throw new Error(`afxdp: bad interface name ${JSON.stringify(ifname)}`);
  const queue = o.queue ?? 0;
  const frameSize = o.frameSize ?? 2048;
  const frameCount = o.frameCount ?? 4096;
  if (frameSize !== 2048 && frameSize !== 4096) throw new RangeError(`afxdp: frameSize must be 2048 or 4096, got ${frameSize}`);
  if (!Number.isInteger(frameCount) || frameCount < 128 || frameSize * frameCount > 2 ** 32 - frameSize) {
    throw new RangeError(`afxdp: frameCount must be an integer ≥ 128 with frameSize * frameCount < 4 GiB, got ${frameCount}`);
  }
  let ringSize = o.ringSize ?? Math.min(2048, 2 ** Math.floor(Math.log2(frameCount / 2)));
  if (!Number.isInteger(ringSize) || ringSize < 64 || (ringSize & (ringSize - 1)) !== 0) {
    throw new RangeError(`afxdp: ringSize must be a power of two ≥ 64, got ${ringSize}`);
  }
  if (!Number.isInteger(queue) || queue < 0) throw new RangeError(`afxdp: bad queue ${queue}`);
  let police: PoliceConfig;
  try {
    police = resolvePolice(o.police);
  } catch (e) {
    throw new RangeError(`afxdp: ${(e as Error).message}`);
  }

  if (sysfs(ifname, 'ifindex') === null) {
    throw new Error(`afxdp: no network device '${ifname}' in this namespace: check the name with 'ip link' (or create it, e.g. the lab's labUp())`);
  }
  checkPrivileges();
  const flags = Number(sysfs(ifname, 'flags') ?? '0');
  if ((flags & 1) === 0) throw new Error(`afxdp: device ${ifname} is down: bring it up with 'ip link set dev ${ifname} up'`);
  let rxQueues = 1;
  try { rxQueues = fs.readdirSync(`/sys/class/net/${ifname}/queues`).filter((q) => q.startsWith('rx-')).length || 1; } catch { /* keep 1 */ }
  if (queue >= rxQueues) throw new RangeError(`afxdp: ${ifname} has ${rxQueues} receive queue(s); queue ${queue} does not exist`);

  const n = loadNative();
  ensureBpffs(log);
  for (const m of keepVlanTagsInBand(ifname)) log(m);

  const a = attach(n, ifname, o.mode ?? 'auto', log);
  if (a.queues.has(queue)) throw new Error(`afxdp: ${ifname} queue ${queue} is already open in this process`);
  let xsk: NativeXsk;
  const zc = o.zeroCopy ?? 'auto';
  try {
    xsk = new n.Xsk({ ifname, queue, frameSize, frameCount, ringSize, zeroCopy: zc === 'on' ? 1 : zc === 'off' ? 2 : 0, busyPoll: !!o.busyPoll });
  } catch (e) {
    if (!a.queues.size) release(a, queue);
    const x = nativeMessage(e);
    throw new Error(describeSocketError(ifname, queue, zc, x.errno, x.msg));
  }
  try {
    xsk.register(a.prog);
  } catch (e) {
    xsk.close();
    if (!a.queues.size) release(a, queue);
    throw new Error(`afxdp: cannot register the socket in the XSKMAP of ${ifname}: ${nativeMessage(e).msg}`);
  }
  try {
    applyPolice(a.prog, police);
    a.police = police;
  } catch (e) {
    xsk.close();
    if (!a.queues.size) release(a, queue);
    throw new Error(`afxdp: cannot set the SYN/ARP policers of ${ifname}: ${nativeMessage(e).msg}`);
  }
  a.queues.add(queue);
  const d = new AfxdpDriver(n, xsk, a, log, {
    ifname, queue, frameSize, frameCount, ringSize, busyPoll: !!o.busyPoll,
    mac: macOf(ifname), mtu: Math.min(Number(sysfs(ifname, 'mtu') ?? '1500'), frameSize - RX_HEADROOM - 22),
  });
  installExitHooks();
  openDrivers.add(d);
  return d;
}

function macOf(ifname: string): Uint8Array {
  const s = sysfs(ifname, 'address') ?? '00:00:00:00:00:00';
  return Uint8Array.from(s.split(':').map((h) => parseInt(h, 16)));
}

interface Config {
  ifname: string;
  queue: number;
  frameSize: number;
  frameCount: number;
  ringSize: number;
  busyPoll: boolean;
  mac: Uint8Array;
  mtu: number;
}

export class AfxdpDriver implements Driver {
  readonly kind = 'afxdp';
  readonly name: string;
  readonly queue: number;
  readonly pool: FramePool;
  readonly mac: Uint8Array;
  readonly mtu: number;
  readonly bindMode: 'copy' | 'zerocopy';
  readonly attachMode: 'native' | 'skb';
  /** Attached through libxdp's multiprog dispatcher (false: single program). */
  readonly dispatcher: boolean;
  readonly busyPoll: boolean;

  private readonly n: NativeAddon;
  private xsk: NativeXsk | null;
  private readonly att: Attachment;
  private readonly s: DriverStats = newStats();
  private readonly addrs = new Uint32Array(BURST_MAX);
  private readonly lens = new Uint32Array(BURST_MAX);
  private readonly levels = new Uint32Array(4);
  /** Frames given to the fill ring and not yet received (Kernel, RX side). */
  private rxKernel = 0;
  /** Frames on the TX ring awaiting completion (state Tx). */
  private txInFlight = 0;
  private readonly fillTarget: number;
  private lastNow = 0;
  private closed = false;
  private readonly log: (msg: string) => void;
  /** The interface this socket is bound to. */
  private boundIfindex: number;
  /** Why the device is lost ('' while it is up). */
  private lostReason = '';
  /** Last recovery failure reported (each different one is logged once). */
  private lastRecoverError = '';
  private nextCheck = 0;
  private lastKickErrors = 0;
  private readableCb: (() => void) | null = null;
  private watch: NodeJS.Timeout | null = null;
  private stepChecked = false;
  /** Times the device was lost, and times it came back and was served again. */
  losses = 0;
  recoveries = 0;

  /** @internal use openAfxdp() */
  constructor(n: NativeAddon, xsk: NativeXsk, att: Attachment, log: (msg: string) => void, c: Config) {
    this.n = n;
    this.xsk = xsk;
    this.att = att;
    this.log = log;
    this.boundIfindex = att.ifindex;
    this.name = c.ifname;
    this.queue = c.queue;
    this.mac = c.mac;
    this.mtu = c.mtu;
    this.busyPoll = c.busyPoll;
    this.bindMode = xsk.zeroCopy ? 'zerocopy' : 'copy';
    this.attachMode = att.prog.attachMode;
    this.dispatcher = att.prog.dispatcher;
    this.pool = new FramePool({ frameSize: c.frameSize, frameCount: c.frameCount, headroom: RX_HEADROOM, buffer: xsk.umem });
    // Keep at most half the frames on the RX side, and never more than the fill ring holds.
    this.fillTarget = Math.min(c.ringSize, c.frameCount >>> 1);
    this.refill();
  }

  private get sock(): NativeXsk {
    if (!this.xsk) throw new Error(`afxdp: ${this.name} queue ${this.queue} is closed`);
    return this.xsk;
  }

  /** Tops the fill ring up to fillTarget frames from the pool, one native call per 64. */
  private refill(): void {
    const xsk = this.sock;
    const pool = this.pool;
    const addrs = this.addrs;
    while (this.rxKernel < this.fillTarget) {
      const want = Math.min(BURST_MAX, this.fillTarget - this.rxKernel);
      let k = 0;
      for (; k < want; k++) {
        const f = pool.allocTo(FrameState.Kernel);
        if (f < 0) break;
        addrs[k] = pool.addr(f);
      }
      if (k === 0) { countDrop(this.s, 'fill_pool_empty'); return; }
      const put = xsk.fill(addrs, k);
      for (let i = put; i < k; i++) pool.free(pool.frameOf(addrs[i]!));
      this.rxKernel += put;
      if (put < k || k < want) return;
    }
  }

  rx(out: Burst, now: number): number {
    if (this.lostReason) return 0;
    const xsk = this.sock;
    const room = Math.min(BURST_MAX, out.capacity - out.n);
    if (room <= 0) return 0;
    const got = xsk.rx(this.addrs, this.lens, room);
    if (got === 0) return 0;
    const pool = this.pool;
    let bytes = 0;
    for (let i = 0; i < got; i++) {
      const addr = this.addrs[i]!;
      const len = this.lens[i]!;
      const f = pool.frameOf(addr);
      pool.move(f, FrameState.Kernel, FrameState.Held);
      out.push(f, addr, len, now);
      bytes += len;
    }
    this.rxKernel -= got;
    this.s.rxPackets += got;
    this.s.rxBytes += bytes;
    if (this.fillTarget - this.rxKernel >= 32) this.refill();
    return got;
  }

  tx(b: Burst, now: number): number {
    if (this.lostReason) return this.dropAll(b, now);
    const xsk = this.sock;
    const pool = this.pool;
    const fs_ = pool.frameSize;
    let taken = 0;
    while (taken < b.n) {
      // Build one burst of valid descriptors; invalid ones are dropped as they are met.
      let k = 0;
      let i = taken;
      for (; i < b.n && k < BURST_MAX; i++) {
        const f = b.frame[i]!;
        const off = b.off[i]!;
        const len = b.len[i]!;
        const base = f * fs_;
        if (len === 0 || off < base || off + len > base + fs_ || pool.stateOf(f) !== FrameState.Held) {
          if (k === 0) { // nothing queued before it in this burst: drop it right away
            if (pool.stateOf(f) === FrameState.Held) pool.free(f);
            countDrop(this.s, 'tx_invalid_desc');
            taken = i + 1;
            continue;
          }
          break; // send what precedes it first
        }
        this.addrs[k] = off;
        this.lens[k] = len;
        k++;
      }
      if (k === 0) continue;
      const put = xsk.tx(this.addrs, this.lens, k);
      // The first `put` entries of the valid run starting at `taken` are on the TX ring.
      let bytes = 0;
      for (let q = 0; q < put; q++) {
        pool.move(b.frame[taken + q]!, FrameState.Held, FrameState.Tx);
        bytes += b.len[taken + q]!;
      }
      taken += put;
      this.txInFlight += put;
      this.s.txPackets += put;
      this.s.txBytes += bytes;
      if (put < k) break; // TX ring full: the caller keeps the rest
    }
    // The caller shifts the taken frames out of its burst (Driver contract).
    this.lastNow = now;
    return taken;
  }

  service(now: number): void {
    this.lastNow = now;
    const xsk = this.sock;
    if (now >= this.nextCheck || xsk.kickErrors !== this.lastKickErrors) {
      this.nextCheck = now + DEVICE_CHECK_US;
      this.lastKickErrors = xsk.kickErrors;
      this.stepChecked = true;
      this.checkDevice();
      if (this.lostReason) return;
    } else if (this.lostReason) return;
    if (this.txInFlight > 0) {
      const pool = this.pool;
      for (;;) {
        const got = xsk.complete(this.addrs, BURST_MAX);
        for (let i = 0; i < got; i++) {
          const f = pool.frameOf(this.addrs[i]!);
          pool.move(f, FrameState.Tx, FrameState.Held);
          pool.free(f);
        }
        this.txInFlight -= got;
        if (got < BURST_MAX) break;
      }
      if (this.txInFlight > 0) xsk.kick();
    }
    if (this.rxKernel < this.fillTarget) this.refill();
  }

  nextDeadline(): number {
    // Completions of queued frames need another service() soon; received frames wake onReadable.
    // (The device check of an idle driver runs from its own timer: see onReadable.)
    return this.txInFlight > 0 && !this.lostReason ? this.lastNow + 50 : Infinity;
  }

  /** Whether the device is there and up ('lost' after it disappeared, went down or was replaced). */
  get deviceState(): 'up' | 'lost' {
    return this.lostReason ? 'lost' : 'up';
  }

  /** Frames handed over while the device is lost cannot be sent: freed and counted. */
  private dropAll(b: Burst, now: number): number {
    const pool = this.pool;
    for (let i = 0; i < b.n; i++) {
      const f = b.frame[i]!;
      if (pool.stateOf(f) === FrameState.Held) pool.free(f);
      countDrop(this.s, 'device_lost');
    }
    this.lastNow = now;
    return b.n;
  }

  /** Once a second (and after a TX kick error): is the device still the one we are bound to, and up? */
  private checkDevice(): void {
    const name = this.name;
    const idx = ifindexOf(name);
    const up = idx > 0 && (Number(sysfs(name, 'flags') ?? '0') & 1) === 1;
    if (!this.lostReason) {
      if (idx === this.boundIfindex && up) return;
      this.lostReason = idx === 0 ? 'it no longer exists'
        : idx !== this.boundIfindex ? `it was replaced (ifindex ${this.boundIfindex} → ${idx})` : 'it is down';
      this.losses++;
      this.lastRecoverError = '';
      this.log(`afxdp: lost device ${name} queue ${this.queue}: ${this.lostReason}; nothing is received or sent on it ` +
        `(frames for it are dropped and counted as device_lost) until it is back`);
    }
    if (!up) return;
    try {
      const replaced = idx !== this.boundIfindex;
      if (replaced) this.reattach(idx);
      this.lostReason = '';
      this.recoveries++;
      this.log(`afxdp: device ${name} queue ${this.queue} is back (${replaced ? `ifindex ${idx}: XDP program, socket and ` +
        `${this.att.owned.size} owned MAC/address entries set up again` : 'up again'}): serving it again`);
    } catch (e) {
      const m = (e as Error).message;
      if (m !== this.lastRecoverError) this.log(`afxdp: device ${name} is back but cannot be served yet: ${m}; retrying every second`);
      this.lastRecoverError = m;
    }
  }

  /**
   * The device was replaced: attach the program to the new one (first queue of the device to get
   * here), fill its maps with the owned entries, and open this queue's socket again over the same
   * UMEM. Frames that were in the old rings return to the pool.
   */
  private reattach(idx: number): void {
    const a = this.att;
    const xsk = this.sock;
    if (a.ifindex !== idx) {
      try {
        const c = a.prog.counters();
        a.policedBefore[0] += c[2] ?? 0;
        a.policedBefore[1] += c[3] ?? 0;
      } catch { /* went with the old device */ }
      try { a.prog.detach(); } catch { /* went with the old device */ }
      let prog: NativeProgram;
      try {
        prog = new this.n.Program(this.name, XDP_OBJECT_PATH, a.mode);
      } catch (e) {
        const x = nativeMessage(e);
        throw new Error(describeAttachError(this.name, a.mode, x.errno, x.msg));
      }
      a.prog = prog;
      a.ifindex = idx;
      for (const o of a.owned.entries()) prog.mapUpdate(o.kind, o.key, o.vlan, true);
      // A new device has its own flags.
      a.allmulti = 'unset';
      if (a.owned.count(KIND_SNM) > 0) ensureAllmulti(a, this.log);
      applyPolice(prog, a.police);
      for (const m of keepVlanTagsInBand(this.name)) this.log(m);
    }
    xsk.pollStop();
    try {
      xsk.reopen();
    } finally {
      this.reclaimRings(); // whatever the old rings held is gone with them
    }
    xsk.register(a.prog);
    this.boundIfindex = idx;
    this.lastKickErrors = xsk.kickErrors;
    this.refill();
    if (this.readableCb) xsk.pollStart(this.readableCb);
  }

  /**
   * Calls cb from the Node event loop whenever the socket is readable (uv_poll on the XSK fd).
   * While it is armed, the device is also checked once a second when no step did it (an idle or
   * deaf stack has no steps), and cb runs when the device is lost or back so the loop takes note.
   */
  onReadable(cb: () => void): boolean {
    this.readableCb = cb;
    if (!this.watch) {
      this.watch = setInterval(() => {
        if (this.closed) return;
        if (this.stepChecked) { this.stepChecked = false; return; } // a step checked within the last second
        const was = this.lostReason;
        this.checkDevice();
        if (was !== this.lostReason) this.readableCb?.();
      }, DEVICE_CHECK_US / 1000);
      this.watch.unref();
    }
    return this.sock.pollStart(cb);
  }

  /** Stops the readable callback. */
  offReadable(): void {
    this.readableCb = null;
    if (this.watch) { clearInterval(this.watch); this.watch = null; }
    this.xsk?.pollStop();
  }

  /** The stack owns / stops owning `mac` on VLAN `vlan` (0 = untagged): frames to it are redirected. */
  addOwnedMac(mac: Uint8Array, vlan: number): void {
    this.ownMac(mac, vlan, true);
  }

  removeOwnedMac(mac: Uint8Array, vlan: number): void {
    this.ownMac(mac, vlan, false);
  }

  ownMac(mac: Uint8Array, vlan: number, add: boolean): void {
    if (!(mac instanceof Uint8Array) || mac.length !== 6) throw new RangeError('afxdp: a MAC is 6 bytes');
    this.update(KIND_MAC, mac, vlan, add);
  }

  /**
   * The stack starts (add) or stops owning unicast address `addr` on VLAN `vlan` (0 = untagged),
   * counted per owner: the address leaves the XDP maps with its last owner. IPv4: ARP requests for
   * it are redirected (its packets come through the owned MAC). IPv6: packets to it (through an
   * owned MAC), and NS/NA about it sent to its solicited-node group or to all-nodes.
   */
  own(addr: IpAddr, vlan: number, add: boolean): void {
    const keys = ownKeys(addr);
    const done: MapKey[] = [];
    try {
      for (const k of keys) { this.update(k.kind, k.key, vlan, add); done.push(k); }
    } catch (e) {
      // All or nothing: undo the keys this call changed.
      for (const k of done) { try { this.update(k.kind, k.key, vlan, !add); } catch { /* keep the first error */ } }
      throw e;
    }
  }

  private update(kind: MapKind, key: Uint8Array, vlan: number, add: boolean): void {
    if (this.closed) throw new Error(`afxdp: ${this.name} queue ${this.queue} is closed`);
    const owned = this.att.owned;
    // Kept (and counted) for a program attached again after the device comes back.
    const change = add ? owned.acquire(kind, key, vlan) : owned.release(kind, key, vlan);
    if (!change) return;
    try {
      this.att.prog.mapUpdate(kind, key, vlan, add);
    } catch (e) {
      // While the device is gone its program may be too: the entries wait in `owned`.
      if (this.lostReason) return;
      if (add) owned.release(kind, key, vlan);
      throw e;
    }
    if (kind === KIND_SNM) {
      if (add) ensureAllmulti(this.att, this.log);
      else if (owned.count(KIND_SNM) === 0) dropAllmulti(this.att);
    }
  }

  xdpStats(): XdpStatistics {
    return this.sock.stats();
  }

  ringLevels(): RingLevels {
    const l = this.levels;
    this.sock.ringLevels(l);
    return { fill: l[0]!, rx: l[1]!, tx: l[2]!, completion: l[3]! };
  }

  /**
   * Frames our XDP program redirected / passed on this device (all queues), and the SYNs and ARP
   * frames its policers dropped (also over earlier programs of a device that came back).
   */
  programCounters(): { redirected: number; passed: number; synPoliced: number; arpPoliced: number } {
    const [redirected, passed, syn, arp] = this.att.prog.counters();
    const b = this.att.policedBefore;
    return { redirected, passed, synPoliced: b[0] + (syn ?? 0), arpPoliced: b[1] + (arp ?? 0) };
  }

  stats(): DriverStats {
    const out: DriverStats = { ...this.s, drops: { ...this.s.drops } };
    if (this.xsk) {
      try { out.xdp = this.xsk.stats(); } catch { /* the socket's device is gone */ }
      out.rings = this.ringLevels();
      out.kickErrors = this.xsk.kickErrors;
      // Shed by the XDP program's policers, before the fill ring (driver/police.ts).
      try {
        const pc = this.programCounters();
        if (pc.synPoliced) out.drops['xdp-syn-policed'] = pc.synPoliced;
        if (pc.arpPoliced) out.drops['xdp-arp-policed'] = pc.arpPoliced;
      } catch { /* the program went with the device */ }
    }
    out.device = this.deviceState;
    out.losses = this.losses;
    out.recoveries = this.recoveries;
    out.bindMode = this.bindMode;
    out.attachMode = this.attachMode;
    return out;
  }

  /**
   * Closes the socket and, with the last queue of the device in this process, detaches the XDP
   * program. Frames that were in the rings return to the pool; frames Held by callers stay Held.
   */
  /** Frames that were in the kernel's rings or on the TX ring of a closed socket are free again. */
  private reclaimRings(): void {
    const pool = this.pool;
    for (let f = 0; f < pool.frameCount; f++) {
      const st = pool.stateOf(f);
      if (st === FrameState.Kernel || st === FrameState.Tx) pool.free(f);
    }
    this.rxKernel = 0;
    this.txInFlight = 0;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    openDrivers.delete(this);
    if (this.watch) { clearInterval(this.watch); this.watch = null; }
    const xsk = this.xsk;
    this.xsk = null;
    try { xsk?.close(); } finally {
      this.reclaimRings();
      release(this.att, this.queue);
    }
  }
}

/** Converts dotted IPv4 text to the u32 (host order) the owned-address API takes. */
export function ipv4ToU32(s: string): number {
  const p = s.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new RangeError(`not an IPv4 address: '${s}'`);
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

/** Programs currently attached to ifname (diagnostics, tests). */
export function attachedPrograms(ifname: string): string[] {
  return loadNative().attachedPrograms(ifname);
}

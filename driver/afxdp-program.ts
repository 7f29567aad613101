/**
 * The program side of the AF_XDP driver: our XDP program (driver/bpf/xdpstack_xdp.bpf.c) attached
 * to a device, with its ownership maps (what the stack owns is redirected, the rest passes to the
 * kernel), its policers, the pid file and the clean-up of a program left by a dead process.
 *
 * Two users of one registry (one attachment per device and process):
 *  - single-socket mode: the queues openAfxdp() opens in this thread share the attachment; the
 *    first attaches the program, the last close detaches it (driver/afxdp.ts);
 *  - shard mode: attachAfxdpProgram() in the main thread attaches the program and keeps the maps
 *    (shared by every queue of the device); each worker opens the socket of its queue with
 *    openAfxdp({ program: prog.ref }) and registers it in the XSKMAP through the map's fd (fds
 *    are process-wide). When the device is replaced, the main thread attaches the program to the
 *    new one and publishes the new map fd in `ref.shared`; the workers register again from it.
 */
import * as fs from 'node:fs';
import { DEFAULT_POLICE, gcraParams, PoliceConfig, resolvePolice } from './police';
import { KIND_MAC, KIND_SNM, MapKey, MapKind, OwnedTable, ownKeys } from './owned';
import type { IpAddr } from '../protocols/ip/addr';
import type { LogFn } from './types';
import { howToBuild, loadNative, NativeAddon, NativeError, NativeProgram, XDP_OBJECT_PATH, XDP_PROG_NAME } from './native';
import {
  checkDeviceUsable, checkIfname, DEVICE_CHECK_US, describeAttachError, deviceNow, ensureBpffs, ifindexOf,
  keepVlanTagsInBand, lossReason, macOf, MAX_QUEUES, nativeMessage, ownerOf, pidFile, RUN_DIR, rxQueueCount, startTimeOf,
  sysfs, track, tryExec, untrack,
} from './afxdp-control';

export interface Attachment {
  ifname: string;
  prog: NativeProgram;
  /** Single-socket mode: the queues open in this thread (the program goes with the last). */
  queues: Set<number>;
  /** 'sockets': single-socket mode (openAfxdp); 'program': attachAfxdpProgram (shard mode). */
  use: 'sockets' | 'program';
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
  /** Shard mode: [seq, ifindex, xsksMapFd] for the workers (see publish()); null otherwise. */
  shared: Int32Array | null;
}

const attachments = new Map<string, Attachment>();

/** Attaches our program to ifname for `use`, or returns this thread's attachment of it. */
export function attach(n: NativeAddon, ifname: string, mode: 'auto' | 'native' | 'skb', log: LogFn,
  use: Attachment['use'] = 'sockets'): Attachment {
  const have = attachments.get(ifname);
  if (have) {
    if (have.use === 'program') {
      throw new Error(`afxdp: ${ifname} has its XDP program attached by attachAfxdpProgram() in this process (shard mode): ` +
        `open its queues with openAfxdp({ ..., program: prog.ref })`);
    }
    if (use === 'program') {
      throw new Error(`afxdp: ${ifname} is already attached by this process (queues ${[...have.queues].join(', ')} open with openAfxdp): close them first`);
    }
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
    throw new Error(`afxdp: XDP object ${XDP_OBJECT_PATH} missing: ${howToBuild()}`);
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
    ifname, prog, queues: new Set(), use, mode: prog.attachMode, ifindex: ifindexOf(ifname), owned: new OwnedTable(), allmulti: 'unset',
    police: { ...DEFAULT_POLICE }, policedBefore: [0, 0], shared: null,
  };
  attachments.set(ifname, a);
  return a;
}

/** Sets the program's policers (SYN, ARP) from `p`. */
export function applyPolice(prog: NativeProgram, p: PoliceConfig): void {
  const syn = gcraParams(p.synRate, p.synBurst);
  const arp = gcraParams(p.arpRate, p.arpBurst);
  prog.police(0, syn.intervalNs, syn.burstNs);
  prog.police(1, arp.intervalNs, arp.burstNs);
}

/** Single-socket mode: queue `queue` is closed; the last one detaches the program. */
export function release(a: Attachment, queue: number): void {
  a.queues.delete(queue);
  if (a.queues.size) return;
  detach(a);
}

/** Detaches the program and removes the pid file (ours only). */
function detach(a: Attachment): void {
  if (attachments.get(a.ifname) === a) attachments.delete(a.ifname);
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
function ensureAllmulti(a: Attachment, log: LogFn): void {
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

/**
 * One ownership map entry added or removed, counted per owner in `a.owned` (kept for a program
 * attached again after the device comes back). While the device is lost (`lost`), a failed map
 * update is not an error: the entry waits in `owned`.
 */
export function updateOwned(a: Attachment, kind: MapKind, key: Uint8Array, vlan: number, add: boolean, lost: boolean, log: LogFn): void {
  const owned = a.owned;
  const change = add ? owned.acquire(kind, key, vlan) : owned.release(kind, key, vlan);
  if (!change) return;
  try {
    a.prog.mapUpdate(kind, key, vlan, add);
  } catch (e) {
    if (lost) return;
    if (add) owned.release(kind, key, vlan);
    throw e;
  }
  if (kind === KIND_SNM) {
    if (add) ensureAllmulti(a, log);
    else if (owned.count(KIND_SNM) === 0) dropAllmulti(a);
  }
}

/** own(addr) as map updates, all or nothing: the keys changed are undone when one fails. */
export function ownAddress(update: (kind: MapKind, key: Uint8Array, add: boolean) => void, addr: IpAddr, add: boolean): void {
  const keys = ownKeys(addr);
  const done: MapKey[] = [];
  try {
    for (const k of keys) { update(k.kind, k.key, add); done.push(k); }
  } catch (e) {
    for (const k of done) { try { update(k.kind, k.key, !add); } catch { /* keep the first error */ } }
    throw e;
  }
}

export function checkOwnedMac(mac: Uint8Array): void {
  if (!(mac instanceof Uint8Array) || mac.length !== 6) throw new RangeError('afxdp: a MAC is 6 bytes');
}

/**
 * The device at `idx` replaced the one the program was on: attach the program to it, fill its maps
 * with the owned entries, set the policers again, and publish the new XSKMAP to the workers. No-op
 * when the program already is on `idx` (another queue of this thread got here first).
 */
export function reattachProgram(n: NativeAddon, a: Attachment, idx: number, log: LogFn): void {
  if (a.ifindex === idx) return;
  try {
    const c = a.prog.counters();
    a.policedBefore[0] += c[2] ?? 0;
    a.policedBefore[1] += c[3] ?? 0;
  } catch { /* went with the old device */ }
  try { a.prog.detach(); } catch { /* went with the old device */ }
  let prog: NativeProgram;
  try {
    prog = new n.Program(a.ifname, XDP_OBJECT_PATH, a.mode);
  } catch (e) {
    const x = nativeMessage(e);
    throw new Error(describeAttachError(a.ifname, a.mode, x.errno, x.msg));
  }
  a.prog = prog;
  a.ifindex = idx;
  for (const o of a.owned.entries()) prog.mapUpdate(o.kind, o.key, o.vlan, true);
  // A new device has its own flags.
  a.allmulti = 'unset';
  if (a.owned.count(KIND_SNM) > 0) ensureAllmulti(a, log);
  applyPolice(prog, a.police);
  for (const m of keepVlanTagsInBand(a.ifname)) log(m);
  publish(a);
}

// ---------------------------------------------------------------------------------------------
// The program state shared with the workers: Int32Array [seq, ifindex, xsksMapFd] over a
// SharedArrayBuffer, written by the main thread only. seq is odd while the fields change (a
// seqlock), so a reader never takes the ifindex of one program with the fd of another.

const SEQ = 0, IFINDEX = 1, FD = 2;

function publish(a: Attachment): void {
  const s = a.shared;
  if (!s) return;
  Atomics.add(s, SEQ, 1);
  Atomics.store(s, IFINDEX, a.ifindex);
  Atomics.store(s, FD, a.prog.xsksMapFd);
  Atomics.add(s, SEQ, 1);
}

/** The program's current device and XSKMAP fd as published by the main thread; null if not readable now. */
export function readProgramState(shared: SharedArrayBuffer): { ifindex: number; xsksMapFd: number } | null {
  const s = new Int32Array(shared);
  for (let i = 0; i < 1000; i++) {
    const seq = Atomics.load(s, SEQ);
    if (seq & 1) continue;
    const ifindex = Atomics.load(s, IFINDEX);
    const xsksMapFd = Atomics.load(s, FD);
    if (Atomics.load(s, SEQ) === seq) return { ifindex, xsksMapFd };
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Shard mode: the main thread's handle on the program

export interface AfxdpProgramOptions {
  ifname: string;
  mode?: 'auto' | 'native' | 'skb';
  /** Policers of SYNs and ARP in the XDP program (driver/police.ts), for all queues of the device. */
  police?: Partial<PoliceConfig>;
  /**
   * The queues that will have a socket: a count n (queues 0..n-1) or a list of queue ids. Default:
   * every receive queue of the device (at most MAX_QUEUES). Frames of a queue without a socket pass
   * to the kernel.
   */
  queues?: number | readonly number[];
  /** Where configuration changes, device loss and recovery are reported. Default: console.warn. */
  log?: LogFn;
}

/**
 * What a worker needs to open its queue (openAfxdp's `program` option): plain, structured-cloneable
 * data to post to a worker. The fd is process-wide, so the worker's socket can use it.
 */
export interface AfxdpProgramRef {
  ifname: string;
  /** The device the program was on when the ref was taken (see `shared` for the current one). */
  ifindex: number;
  /** The program's XSKMAP when the ref was taken (see `shared`). */
  xsksMapFd: number;
  /** The queues the main thread expects sockets on. */
  queues: number[];
  attachMode: 'native' | 'skb';
  dispatcher: boolean;
  /**
   * Int32 [seq, ifindex, xsksMapFd] kept current by the main thread (readProgramState): after the
   * device is replaced and the program attached again, the workers register their sockets in the
   * new map without a message. Absent: the worker cannot follow a replaced device.
   */
  shared?: SharedArrayBuffer;
}

function checkQueues(q: AfxdpProgramOptions['queues'], ifname: string, rxQueues: number | null): number[] {
  const limit = (id: number, what: string) => {
    if (id >= MAX_QUEUES) throw new RangeError(`afxdp: ${what} ${id} is beyond the ${MAX_QUEUES} queues the XDP program's XSKMAP holds`);
    if (rxQueues !== null && id >= rxQueues) {
      throw new RangeError(`afxdp: ${ifname} has ${rxQueues} receive queue(s); queue ${id} does not exist (see 'ethtool -l ${ifname}')`);
    }
  };
  if (q === undefined) return Array.from({ length: Math.min(rxQueues ?? 1, MAX_QUEUES) }, (_, i) => i);
  if (typeof q === 'number') {
    if (!Number.isInteger(q) || q < 1) throw new RangeError(`afxdp: queues must be a count ≥ 1 or a list of queue ids, got ${q}`);
    limit(q - 1, 'queue count reaches queue');
    return Array.from({ length: q }, (_, i) => i);
  }
  if (!Array.isArray(q) || q.length === 0) throw new RangeError(`afxdp: queues must be a count ≥ 1 or a non-empty list of queue ids, got ${JSON.stringify(q)}`);
  const seen = new Set<number>();
  for (const id of q) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) throw new RangeError(`afxdp: bad queue id ${JSON.stringify(id)} in queues (an integer ≥ 0)`);
    if (seen.has(id)) throw new RangeError(`afxdp: queue ${id} is listed twice in queues`);
    limit(id, 'queue');
    seen.add(id);
  }
  return [...seen].sort((x, y) => x - y);
}

/** The options of attachAfxdpProgram without touching the device (for config checks and tests). */
export function checkProgramOptions(o: AfxdpProgramOptions): { ifname: string; police: PoliceConfig; queues: number[] | null } {
  if (!o || typeof o !== 'object') throw new TypeError('afxdp: attachAfxdpProgram needs an options object with ifname');
  const ifname = checkIfname(o.ifname);
  if (o.mode !== undefined && o.mode !== 'auto' && o.mode !== 'native' && o.mode !== 'skb') {
    throw new RangeError(`afxdp: mode must be 'auto', 'native' or 'skb', got ${JSON.stringify(o.mode)}`);
  }
  let police: PoliceConfig;
  try {
    police = resolvePolice(o.police);
  } catch (e) {
    throw new RangeError(`afxdp: ${(e as Error).message}`);
  }
  return { ifname, police, queues: o.queues === undefined ? null : checkQueues(o.queues, ifname, null) };
}

/**
 * Main thread of shard mode: checks the device, attaches our XDP program to it (removing one a dead
 * process left), writes the pid file, and returns the handle that fills the ownership maps and
 * whose `ref` the workers open their queues with. Throws an Error naming cause and fix.
 */
export function attachAfxdpProgram(o: AfxdpProgramOptions): AfxdpProgram {
  const { ifname, police } = checkProgramOptions(o);
  const log = o.log ?? ((m: string) => console.warn(m));
  checkDeviceUsable(ifname);
  const rxQueues = rxQueueCount(ifname);
  const queues = checkQueues(o.queues, ifname, rxQueues);
  if (o.queues === undefined && rxQueues > MAX_QUEUES) {
    log(`afxdp: ${ifname} has ${rxQueues} receive queues; the XDP program serves queues 0..${MAX_QUEUES - 1} (frames of the others pass to the kernel)`);
  }
  const n = loadNative();
  ensureBpffs(log);
  for (const m of keepVlanTagsInBand(ifname)) log(m);
  const a = attach(n, ifname, o.mode ?? 'auto', log, 'program');
  try {
    applyPolice(a.prog, police);
    a.police = police;
  } catch (e) {
    detach(a);
    throw new Error(`afxdp: cannot set the SYN/ARP policers of ${ifname}: ${nativeMessage(e).msg}`);
  }
  a.shared = new Int32Array(new SharedArrayBuffer(3 * 4));
  publish(a);
  return new AfxdpProgram(n, a, log, queues, rxQueues);
}

export class AfxdpProgram {
  readonly ifname: string;
  /** The queues the workers are expected to open. */
  readonly queues: readonly number[];
  /** The device's receive queues when the program was attached. */
  readonly rxQueues: number;
  /** The device's MAC address. */
  readonly mac: Uint8Array;
  /** Times the device was lost, and times it came back and was served again. */
  losses = 0;
  recoveries = 0;

  private readonly n: NativeAddon;
  private readonly a: Attachment;
  private readonly log: LogFn;
  private closed = false;
  private lostReason = '';
  private lastRecoverError = '';
  private watch: NodeJS.Timeout | null;

  /** @internal use attachAfxdpProgram() */
  constructor(n: NativeAddon, a: Attachment, log: LogFn, queues: number[], rxQueues: number) {
    this.n = n;
    this.a = a;
    this.log = log;
    this.ifname = a.ifname;
    this.queues = Object.freeze(queues.slice());
    this.rxQueues = rxQueues;
    this.mac = macOf(a.ifname);
    // The device is checked once a second (the workers check their sockets' side themselves).
    this.watch = setInterval(() => this.check(), DEVICE_CHECK_US / 1000);
    this.watch.unref();
    track(this);
  }

  get attachMode(): 'native' | 'skb' { return this.a.prog.attachMode; }
  /** Attached through libxdp's multiprog dispatcher (false: single program). */
  get dispatcher(): boolean { return this.a.prog.dispatcher; }
  /** The XSKMAP the workers register their sockets in (changes when the device is replaced). */
  get xsksMapFd(): number { return this.a.prog.xsksMapFd; }
  /** The device the program is attached to. */
  get ifindex(): number { return this.a.ifindex; }
  get deviceState(): 'up' | 'lost' { return this.lostReason ? 'lost' : 'up'; }

  /** What a worker passes to openAfxdp({ program }) (post it to the worker; the state is shared). */
  get ref(): AfxdpProgramRef {
    this.open();
    return {
      ifname: this.ifname, ifindex: this.a.ifindex, xsksMapFd: this.a.prog.xsksMapFd, queues: [...this.queues],
      attachMode: this.a.prog.attachMode, dispatcher: this.a.prog.dispatcher, shared: this.a.shared!.buffer as SharedArrayBuffer,
    };
  }

  private open(): void {
    if (this.closed) throw new Error(`afxdp: the XDP program of ${this.ifname} is detached (closed)`);
  }

  /** The stack owns / stops owning `mac` on VLAN `vlan` (0 = untagged), for every queue of the device. */
  ownMac(mac: Uint8Array, vlan: number, add: boolean): void {
    checkOwnedMac(mac);
    this.open();
    updateOwned(this.a, KIND_MAC, mac, vlan, add, this.lostReason !== '', this.log);
  }

  /** As AfxdpDriver.own: unicast address `addr` on VLAN `vlan`, counted per owner, all or nothing. */
  own(addr: IpAddr, vlan: number, add: boolean): void {
    this.open();
    ownAddress((kind, key, ad) => updateOwned(this.a, kind, key, vlan, ad, this.lostReason !== '', this.log), addr, add);
  }

  /**
   * Frames the program redirected / passed on this device (all queues), and the SYNs and ARP frames
   * its policers dropped (also over earlier programs of a device that came back).
   */
  programCounters(): { redirected: number; passed: number; synPoliced: number; arpPoliced: number } {
    this.open();
    const [redirected, passed, syn, arp] = this.a.prog.counters();
    const b = this.a.policedBefore;
    return { redirected, passed, synPoliced: b[0] + (syn ?? 0), arpPoliced: b[1] + (arp ?? 0) };
  }

  stats(): { device: 'up' | 'lost'; losses: number; recoveries: number; attachMode: string; dispatcher: boolean;
    redirected: number; passed: number; synPoliced: number; arpPoliced: number } {
    let c = { redirected: 0, passed: 0, synPoliced: 0, arpPoliced: 0 };
    try { c = this.programCounters(); } catch { /* the program went with the device */ }
    return { device: this.deviceState, losses: this.losses, recoveries: this.recoveries, attachMode: this.attachMode, dispatcher: this.dispatcher, ...c };
  }

  /**
   * Is the device still the one the program is on, and up? Runs once a second by itself. A lost
   * device is logged once and counted; when a device of that name is back (replaced), the program is
   * attached to it, its maps filled again, and the new XSKMAP published to the workers.
   */
  check(): void {
    if (this.closed) return;
    const now = deviceNow(this.ifname);
    if (!this.lostReason) {
      const why = lossReason(this.a.ifindex, now);
      if (!why) return;
      this.lostReason = why;
      this.losses++;
      this.lastRecoverError = '';
      this.log(`afxdp: lost device ${this.ifname}: ${why}; its queues receive and send nothing until it is back`, 'warn');
    }
    if (!now.up) return;
    try {
      const replaced = now.ifindex !== this.a.ifindex;
      if (replaced) reattachProgram(this.n, this.a, now.ifindex, this.log);
      this.lostReason = '';
      this.recoveries++;
      this.log(`afxdp: device ${this.ifname} is back (${replaced ? `ifindex ${now.ifindex}: XDP program and ${this.a.owned.size} ` +
        `owned MAC/address entries set up again; the queues register their sockets again` : 'up again'})`, 'info');
    } catch (e) {
      const m = (e as Error).message;
      if (m !== this.lastRecoverError) this.log(`afxdp: device ${this.ifname} is back but its program cannot be attached yet: ${m}; retrying every second`);
      this.lastRecoverError = m;
    }
  }

  /** Detaches the program (frames then go to the kernel) and removes the pid file. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    untrack(this);
    if (this.watch) { clearInterval(this.watch); this.watch = null; }
    detach(this.a);
  }
}

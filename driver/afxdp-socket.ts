/**
 * The socket side of the AF_XDP driver: one UMEM + AF_XDP socket on (device, queue), the UMEM
 * wrapped in a FramePool. Usable in any thread (each worker loads the addon and owns its sockets).
 *
 * Frame states (umem/pool.ts) are kept exact:
 *   fill ring / RX ring          -> Kernel
 *   rx() hands them to the caller -> Held
 *   tx() puts them on the TX ring -> Tx, until the completion ring returns them -> Free
 *
 * Every native call moves a whole burst (≤ 64 descriptors) through preallocated Uint32Arrays.
 * Control-plane work (sysfs, ethtool) happens at open and close, and once a second in service()
 * to notice a device that disappeared, went down or was replaced: the loss is logged once and
 * counted, frames given to the driver meanwhile are dropped (`device_lost`), and when a device of
 * that name is back and up the socket is set up again (over the same UMEM) by the subclass:
 * AfxdpDriver (driver/afxdp.ts) attaches the program itself; AfxdpQueueDriver (shard mode, here)
 * registers in the program the main thread attached again.
 */
import { FramePool, FrameState } from '../umem/pool';
import { BURST_MAX, Burst, countDrop, Driver, DriverStats, newStats } from './types';
import type { LogFn, LogLevel } from './types';
import { NativeAddon, NativeXsk, loadNative, XdpStatistics } from './native';
import {
  checkDeviceUsable, checkIfname, DEVICE_CHECK_US, describeSocketError, deviceNow, lossReason, macOf, MAX_QUEUES, nativeMessage,
  RX_HEADROOM, rxQueueCount, sysfs, track, untrack,
} from './afxdp-control';
import { AfxdpProgramRef, readProgramState } from './afxdp-program';

export interface AfxdpSocketOptions {
  ifname: string;
  queue?: number;
  frameSize?: 2048 | 4096;
  frameCount?: number;
  zeroCopy?: 'auto' | 'on' | 'off';
  busyPoll?: boolean;
  /** Ring size (fill, completion, RX, TX); a power of two. Default min(2048, frameCount / 2). */
  ringSize?: number;
  /** Where configuration changes and fallbacks are reported. Default: console.warn. */
  log?: LogFn;
}

export interface RingLevels {
  fill: number;
  rx: number;
  tx: number;
  completion: number;
}

/** Checked socket options (the same checks and texts in both modes). */
export interface SocketParams { ifname: string; queue: number; frameSize: 2048 | 4096; frameCount: number; ringSize: number }

export function checkSocketOptions(o: AfxdpSocketOptions): SocketParams {
  const ifname = checkIfname(o.ifname);
  const queue = o.queue ?? 0;
  const frameSize = o.frameSize ?? 2048;
  const frameCount = o.frameCount ?? 4096;
  if (frameSize !== 2048 && frameSize !== 4096) throw new RangeError(`afxdp: frameSize must be 2048 or 4096, got ${frameSize}`);
  if (!Number.isInteger(frameCount) || frameCount < 128 || frameSize * frameCount > 2 ** 32 - frameSize) {
    throw new RangeError(`afxdp: frameCount must be an integer ≥ 128 with frameSize * frameCount < 4 GiB, got ${frameCount}`);
  }
  const ringSize = o.ringSize ?? Math.min(2048, 2 ** Math.floor(Math.log2(frameCount / 2)));
  if (!Number.isInteger(ringSize) || ringSize < 64 || (ringSize & (ringSize - 1)) !== 0) {
    throw new RangeError(`afxdp: ringSize must be a power of two ≥ 64, got ${ringSize}`);
  }
  if (!Number.isInteger(queue) || queue < 0) throw new RangeError(`afxdp: bad queue ${queue}`);
  return { ifname, queue, frameSize, frameCount, ringSize };
}

/** Creates the UMEM and the socket; throws an Error naming cause and fix. */
export function createSocket(n: NativeAddon, p: SocketParams, zc: 'auto' | 'on' | 'off', busyPoll: boolean): NativeXsk {
  try {
    return new n.Xsk({ ifname: p.ifname, queue: p.queue, frameSize: p.frameSize, frameCount: p.frameCount, ringSize: p.ringSize,
      zeroCopy: zc === 'on' ? 1 : zc === 'off' ? 2 : 0, busyPoll });
  } catch (e) {
    const x = nativeMessage(e);
    throw new Error(describeSocketError(p.ifname, p.queue, zc, x.errno, x.msg));
  }
}

export interface SocketConfig extends SocketParams {
  busyPoll: boolean;
  mac: Uint8Array;
  mtu: number;
  /** The device the socket is bound to. */
  ifindex: number;
  attachMode: 'native' | 'skb';
  dispatcher: boolean;
}

/** The largest IP packet a frame carries (RX data starts RX_HEADROOM into the chunk; 22 = Ethernet + 2 VLAN tags). */
export function mtuFor(ifname: string, frameSize: number): number {
  return Math.min(Number(sysfs(ifname, 'mtu') ?? '1500'), frameSize - RX_HEADROOM - 22);
}

export abstract class AfxdpSocket implements Driver {
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

  protected readonly n: NativeAddon;
  protected xsk: NativeXsk | null;
  protected readonly log: LogFn;
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
  protected closed = false;
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

  protected constructor(n: NativeAddon, xsk: NativeXsk, log: LogFn, c: SocketConfig) {
    this.n = n;
    this.xsk = xsk;
    this.log = log;
    this.boundIfindex = c.ifindex;
    this.name = c.ifname;
    this.queue = c.queue;
    this.mac = c.mac;
    this.mtu = c.mtu;
    this.busyPoll = c.busyPoll;
    this.bindMode = xsk.zeroCopy ? 'zerocopy' : 'copy';
    this.attachMode = c.attachMode;
    this.dispatcher = c.dispatcher;
    this.pool = new FramePool({ frameSize: c.frameSize, frameCount: c.frameCount, headroom: RX_HEADROOM, buffer: xsk.umem });
    // Keep at most half the frames on the RX side, and never more than the fill ring holds.
    this.fillTarget = Math.min(c.ringSize, c.frameCount >>> 1);
    this.refill();
  }

  /**
   * The device came back as a new one (ifindex `idx`): put the program on it if this side does
   * that, then rebind(); returns what was set up (for the log). Throws when it cannot be done yet.
   */
  protected abstract reattach(idx: number): string;

  /**
   * The level of this queue's notices that its device was lost or is back: 'warn' and 'info' where
   * the queue is the device's only watcher; shard mode says 'debug' (the main thread's program
   * reports the device once, for all queues).
   */
  protected deviceEventLevel(event: 'lost' | 'back'): LogLevel {
    return event === 'lost' ? 'warn' : 'info';
  }

  /** After the socket closed: what the subclass holds (single-socket mode: the program). */
  protected abstract released(): void;

  protected get lost(): boolean {
    return this.lostReason !== '';
  }

  protected get sock(): NativeXsk {
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
    const now = deviceNow(name);
    const idx = now.ifindex;
    if (!this.lostReason) {
      const why = lossReason(this.boundIfindex, now);
      if (!why) return;
      this.lostReason = why;
      this.losses++;
      this.lastRecoverError = '';
      this.log(`afxdp: lost device ${name} queue ${this.queue}: ${this.lostReason}; nothing is received or sent on it ` +
        `(frames for it are dropped and counted as device_lost) until it is back`, this.deviceEventLevel('lost'));
    }
    if (!now.up) return;
    try {
      const replaced = idx !== this.boundIfindex;
      const what = replaced ? this.reattach(idx) : 'up again';
      this.lostReason = '';
      this.recoveries++;
      this.log(`afxdp: device ${name} queue ${this.queue} is back (${what}): serving it again`, this.deviceEventLevel('back'));
    } catch (e) {
      const m = (e as Error).message;
      if (m !== this.lastRecoverError) this.log(`afxdp: device ${name} is back but cannot be served yet: ${m}; retrying every second`, this.deviceEventLevel('lost'));
      this.lastRecoverError = m;
    }
  }

  /**
   * Opens this queue's socket again on the device now at `idx`, over the same UMEM, and registers it
   * with `register`. Frames that were in the old rings return to the pool.
   */
  protected rebind(idx: number, register: (xsk: NativeXsk) => void): void {
    const xsk = this.sock;
    xsk.pollStop();
    try {
      xsk.reopen();
    } finally {
      this.reclaimRings(); // whatever the old rings held is gone with them
    }
    register(xsk);
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

  xdpStats(): XdpStatistics {
    return this.sock.stats();
  }

  ringLevels(): RingLevels {
    const l = this.levels;
    this.sock.ringLevels(l);
    return { fill: l[0]!, rx: l[1]!, tx: l[2]!, completion: l[3]! };
  }

  /** Drops counted outside this socket (the program's policers), added to stats(). */
  protected extraDrops(_drops: Record<string, number>): void { /* none by default */ }

  stats(): DriverStats {
    const out: DriverStats = { ...this.s, drops: { ...this.s.drops } };
    if (this.xsk) {
      try { out.xdp = this.xsk.stats(); } catch { /* the socket's device is gone */ }
      out.rings = this.ringLevels();
      out.kickErrors = this.xsk.kickErrors;
      this.extraDrops(out.drops);
    }
    out.device = this.deviceState;
    out.losses = this.losses;
    out.recoveries = this.recoveries;
    out.bindMode = this.bindMode;
    out.attachMode = this.attachMode;
    return out;
  }

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

  /**
   * Closes the socket (which leaves the XSKMAP with it) and then what the subclass holds. Frames
   * that were in the rings return to the pool; frames Held by callers stay Held.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    untrack(this);
    if (this.watch) { clearInterval(this.watch); this.watch = null; }
    const xsk = this.xsk;
    this.xsk = null;
    try { xsk?.close(); } finally {
      this.reclaimRings();
      this.released();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Shard mode: one queue's socket in a worker, registered in the program the main thread attached

export interface AfxdpQueueOptions extends AfxdpSocketOptions {
  /** The program attached by the main thread: attachAfxdpProgram(...).ref, posted to this worker. */
  program: AfxdpProgramRef;
}

/** Checks a program reference as a worker receives it (and that `queue` is one of its queues); throws a clear error. */
export function checkProgramRef(ref: unknown, ifname: string, queue: number): AfxdpProgramRef {
  const bad = (why: string) => new TypeError(`afxdp: bad program reference (${why}): pass attachAfxdpProgram(...).ref from the main thread`);
  if (!ref || typeof ref !== 'object') throw bad('not an object');
  const r = ref as Partial<AfxdpProgramRef>;
  if (typeof r.ifname !== 'string') throw bad('no ifname');
  if (r.ifname !== ifname) throw new RangeError(`afxdp: the program reference is for ${r.ifname}, not ${ifname}`);
  if (typeof r.xsksMapFd !== 'number' || !Number.isInteger(r.xsksMapFd) || r.xsksMapFd < 0) throw bad(`xsksMapFd ${JSON.stringify(r.xsksMapFd)} is not an fd`);
  if (typeof r.ifindex !== 'number' || !Number.isInteger(r.ifindex) || r.ifindex <= 0) throw bad(`ifindex ${JSON.stringify(r.ifindex)}`);
  if (!Array.isArray(r.queues) || !r.queues.every((q) => Number.isInteger(q) && q >= 0)) throw bad('queues is not a list of queue ids');
  if (r.shared !== undefined && !(r.shared instanceof SharedArrayBuffer && r.shared.byteLength >= 12)) throw bad('shared is not the program state');
  if (queue >= MAX_QUEUES) throw new RangeError(`afxdp: queue ${queue} is beyond the ${MAX_QUEUES} queues the XDP program's XSKMAP holds`);
  if (!r.queues.includes(queue)) {
    throw new RangeError(`afxdp: queue ${queue} is not one of the queues the program was attached for (${r.queues.join(', ')})`);
  }
  return r as AfxdpProgramRef;
}

/**
 * Worker side of shard mode: creates this queue's own UMEM and AF_XDP socket and registers it in the
 * XSKMAP of the program the main thread attached (by fd). It never loads, attaches or detaches the
 * program and owns no addresses (the main thread fills the maps for all queues); close() removes
 * only its own XSKMAP entry (the kernel drops a closed socket from the map).
 */
export function openAfxdpQueue(o: AfxdpQueueOptions): AfxdpQueueDriver {
  if (!o || typeof o !== 'object') throw new TypeError('afxdp: openAfxdp needs an options object with ifname');
  const log = o.log ?? ((m: string) => console.warn(m));
  const p = checkSocketOptions(o);
  const ref = checkProgramRef(o.program, p.ifname, p.queue);
  for (const k of ['mode', 'police'] as const) {
    if ((o as unknown as Record<string, unknown>)[k] !== undefined) {
      throw new RangeError(`afxdp: '${k}' belongs to the program (attachAfxdpProgram in the main thread), not to a queue's socket`);
    }
  }
  checkDeviceUsable(p.ifname);
  const rxQueues = rxQueueCount(p.ifname);
  if (p.queue >= rxQueues) throw new RangeError(`afxdp: ${p.ifname} has ${rxQueues} receive queue(s); queue ${p.queue} does not exist`);
  const cur = ref.shared ? readProgramState(ref.shared) : null;
  const progIfindex = cur?.ifindex ?? ref.ifindex;
  const mapFd = cur?.xsksMapFd ?? ref.xsksMapFd;
  const devIfindex = deviceNow(p.ifname).ifindex;
  if (devIfindex !== progIfindex) {
    throw new Error(`afxdp: the XDP program is not on ${p.ifname}'s current device (ifindex ${devIfindex}; the program is on ${progIfindex}): ` +
      `the main thread attaches it again when the device is back`);
  }
  const n = loadNative();
  const xsk = createSocket(n, p, o.zeroCopy ?? 'auto', !!o.busyPoll);
  try {
    xsk.register(mapFd);
  } catch (e) {
    xsk.close();
    throw new Error(`afxdp: cannot register the socket in the XSKMAP (fd ${mapFd}) of ${p.ifname}: ${nativeMessage(e).msg}`);
  }
  return new AfxdpQueueDriver(n, xsk, log, ref, {
    ...p, busyPoll: !!o.busyPoll, mac: macOf(p.ifname), mtu: mtuFor(p.ifname, p.frameSize), ifindex: devIfindex,
    attachMode: ref.attachMode, dispatcher: ref.dispatcher,
  });
}

export class AfxdpQueueDriver extends AfxdpSocket {
  /** The program this socket is registered in. */
  readonly program: AfxdpProgramRef;

  /** @internal use openAfxdp({ program }) / openAfxdpQueue() */
  constructor(n: NativeAddon, xsk: NativeXsk, log: LogFn, ref: AfxdpProgramRef, c: SocketConfig) {
    super(n, xsk, log, c);
    this.program = ref;
    track(this);
  }

  /** The main thread attaches the program to a replaced device and publishes its map: register there. */
  protected reattach(idx: number): string {
    if (!this.program.shared) throw new Error('the program reference has no shared state, so a replaced device cannot be followed: open the queue again');
    const cur = readProgramState(this.program.shared);
    if (!cur || cur.ifindex !== idx) throw new Error('the main thread has not attached the XDP program to it yet');
    this.rebind(idx, (xsk) => xsk.register(cur.xsksMapFd));
    return `ifindex ${idx}: socket registered again in the program the main thread attached`;
  }

  protected released(): void { /* the program belongs to the main thread */ }

  /** The main thread's program reports the device's loss and return, once for all queues. */
  protected override deviceEventLevel(): LogLevel {
    return 'debug';
  }
}

/**
 * AF_XDP driver: one AF_XDP socket on (device, queue), its UMEM wrapped in a FramePool, and our
 * XDP program (driver/bpf/xdpstack_xdp.bpf.c) redirecting only the frames the stack owns.
 *
 * Two modes:
 *  - single-socket mode, openAfxdp({ ifname, queue, ... }): the driver attaches the program itself
 *    (the first queue of a device in this thread attaches it, the last close detaches it) and fills
 *    its ownership maps (own / ownMac);
 *  - shard mode: the main thread attaches the program with attachAfxdpProgram() (ownership maps,
 *    policers, pid file, device replacement: driver/afxdp-program.ts) and each worker opens its
 *    queue with openAfxdp({ ifname, queue, ..., program: prog.ref }) (driver/afxdp-socket.ts).
 *
 * Rings, frame states and device-loss handling of a socket: driver/afxdp-socket.ts. Device loss in
 * single-socket mode: the loss is logged once and counted, frames given to the driver meanwhile are
 * dropped (`device_lost`), and when a device of that name is back and up the XDP program, the owned
 * MACs/addresses in its maps and the socket (over the same UMEM) are set up again.
 */
import { PoliceConfig, resolvePolice } from './police';
import { KIND_MAC, MapKind } from './owned';
import type { IpAddr } from '../protocols/ip/addr';
import { loadNative, NativeAddon, NativeXsk } from './native';
import {
  checkDeviceUsable, ensureBpffs, keepVlanTagsInBand, macOf, nativeMessage, rxQueueCount, track,
} from './afxdp-control';
import { applyPolice, attach, Attachment, checkOwnedMac, ownAddress, reattachProgram, release, updateOwned } from './afxdp-program';
import {
  AfxdpQueueDriver, AfxdpSocket, AfxdpSocketOptions, checkSocketOptions, createSocket, mtuFor, openAfxdpQueue, SocketConfig,
} from './afxdp-socket';
import type { AfxdpProgramRef } from './afxdp-program';
import type { LogFn } from './types';

export { RUN_DIR, DEVICE_CHECK_US, MAX_QUEUES, ownerOf, deviceUser } from './afxdp-control';
export { attachAfxdpProgram, AfxdpProgram, AfxdpProgramOptions, AfxdpProgramRef, checkProgramOptions, readProgramState } from './afxdp-program';
export { AfxdpQueueDriver, AfxdpQueueOptions, AfxdpSocket, openAfxdpQueue, RingLevels } from './afxdp-socket';

export interface AfxdpOptions extends AfxdpSocketOptions {
  mode?: 'auto' | 'native' | 'skb';
  /**
   * Policers of SYNs and ARP in the XDP program (driver/police.ts: keys, defaults, ranges). They
   * belong to the device's program: the last queue opened sets them for all its queues.
   */
  police?: Partial<PoliceConfig>;
  /**
   * Shard mode: the program the main thread attached (attachAfxdpProgram(...).ref). The driver then
   * only opens this queue's socket and registers it there (see openAfxdpQueue); `mode` and `police`
   * belong to the program.
   */
  program?: AfxdpProgramRef;
}

/**
 * Opens an AF_XDP driver on (ifname, queue). Throws an Error naming cause and fix on failure.
 * With `program` (shard mode, in a worker): the queue's socket only, see openAfxdpQueue.
 */
export function openAfxdp(o: AfxdpOptions & { program: AfxdpProgramRef }): AfxdpQueueDriver;
export function openAfxdp(o: AfxdpOptions): AfxdpDriver;
export function openAfxdp(o: AfxdpOptions): AfxdpDriver | AfxdpQueueDriver {
  if (o && typeof o === 'object' && o.program !== undefined) return openAfxdpQueue(o as AfxdpOptions & { program: AfxdpProgramRef });
  const log = o.log ?? ((m: string) => console.warn(m));
  const p = checkSocketOptions(o);
  const { ifname, queue } = p;
  let police: PoliceConfig;
  try {
    police = resolvePolice(o.police);
  } catch (e) {
    throw new RangeError(`afxdp: ${(e as Error).message}`);
  }
  checkDeviceUsable(ifname);
  const rxQueues = rxQueueCount(ifname);
  if (queue >= rxQueues) throw new RangeError(`afxdp: ${ifname} has ${rxQueues} receive queue(s); queue ${queue} does not exist`);

  const n = loadNative();
  ensureBpffs(log);
  for (const m of keepVlanTagsInBand(ifname)) log(m);

  const a = attach(n, ifname, o.mode ?? 'auto', log);
  if (a.queues.has(queue)) throw new Error(`afxdp: ${ifname} queue ${queue} is already open in this process`);
  const zc = o.zeroCopy ?? 'auto';
  let xsk: NativeXsk;
  try {
    xsk = createSocket(n, p, zc, !!o.busyPoll);
  } catch (e) {
    if (!a.queues.size) release(a, queue);
    throw e;
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
  return new AfxdpDriver(n, xsk, a, log, {
    ...p, busyPoll: !!o.busyPoll, mac: macOf(ifname), mtu: mtuFor(ifname, p.frameSize),
    ifindex: a.ifindex, attachMode: a.prog.attachMode, dispatcher: a.prog.dispatcher,
  });
}

/** Single-socket mode: the socket of one queue, and the program of its device (shared with the other queues of this thread). */
export class AfxdpDriver extends AfxdpSocket {
  private readonly att: Attachment;

  /** @internal use openAfxdp() */
  constructor(n: NativeAddon, xsk: NativeXsk, att: Attachment, log: LogFn, c: SocketConfig) {
    super(n, xsk, log, c);
    this.att = att;
    track(this); // closed at exit with whatever else this thread has open
  }

  /**
   * The device was replaced: attach the program to the new one (first queue of the device to get
   * here), fill its maps with the owned entries, and open this queue's socket again over the same
   * UMEM. Frames that were in the old rings return to the pool.
   */
  protected reattach(idx: number): string {
    const a = this.att;
    reattachProgram(this.n, a, idx, this.log);
    this.rebind(idx, (xsk) => xsk.register(a.prog));
    return `ifindex ${idx}: XDP program, socket and ${a.owned.size} owned MAC/address entries set up again`;
  }

  protected released(): void {
    release(this.att, this.queue);
  }

  /** The stack owns / stops owning `mac` on VLAN `vlan` (0 = untagged): frames to it are redirected. */
  addOwnedMac(mac: Uint8Array, vlan: number): void {
    this.ownMac(mac, vlan, true);
  }

  removeOwnedMac(mac: Uint8Array, vlan: number): void {
    this.ownMac(mac, vlan, false);
  }

  ownMac(mac: Uint8Array, vlan: number, add: boolean): void {
    checkOwnedMac(mac);
    this.update(KIND_MAC, mac, vlan, add);
  }

  /**
   * The stack starts (add) or stops owning unicast address `addr` on VLAN `vlan` (0 = untagged),
   * counted per owner: the address leaves the XDP maps with its last owner. IPv4: ARP requests for
   * it are redirected (its packets come through the owned MAC). IPv6: packets to it (through an
   * owned MAC), and NS/NA about it sent to its solicited-node group or to all-nodes.
   */
  own(addr: IpAddr, vlan: number, add: boolean): void {
    ownAddress((kind, key, ad) => this.update(kind, key, vlan, ad), addr, add);
  }

  private update(kind: MapKind, key: Uint8Array, vlan: number, add: boolean): void {
    if (this.closed) throw new Error(`afxdp: ${this.name} queue ${this.queue} is closed`);
    // Kept (and counted) for a program attached again after the device comes back; while the
    // device is gone its program may be too: the entries wait.
    updateOwned(this.att, kind, key, vlan, add, this.lost, this.log);
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

  /** Shed by the XDP program's policers, before the fill ring (driver/police.ts). */
  protected override extraDrops(drops: Record<string, number>): void {
    try {
      const pc = this.programCounters();
      if (pc.synPoliced) drops['xdp-syn-policed'] = pc.synPoliced;
      if (pc.arpPoliced) drops['xdp-arp-policed'] = pc.arpPoliced;
    } catch { /* the program went with the device */ }
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

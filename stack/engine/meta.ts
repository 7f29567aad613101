/**
 * Per-burst metadata, struct-of-arrays, preallocated: each stage of the receive path (Ethernet,
 * ARP/NDP, IPv4/IPv6, ICMP, UDP, TCP) reads what the stages before it found about frame `j` of the
 * chunk being handled, and writes what the next need. A stage takes the metadata and an index
 * instead of a dozen positional arguments; nothing here allocates per packet.
 */
import type { Burst } from '../../driver/types';
import type { Drop } from '../../protocols/drop';
import type { Ip6, IpAddr } from '../../protocols/ip/addr';
import type { FramePool } from '../../umem/pool';
import type { Link } from '../vs';
import type { Device } from './device';

/** Frames handled per chunk of a burst. */
export const CHUNK = 256;

/**
 * A reassembled datagram being delivered (no frame holds it): IPv4, its payload in `data`; IPv6,
 * the whole packet rebuilt without its Fragment header. Shards hand it over whole when its flow or
 * port is another shard's.
 */
export interface RxDatagram {
  v6: boolean;
  link: Link;
  src: IpAddr;
  dst: IpAddr;
  /** IPv4: the protocol and TOS (IPv6: in the packet). */
  proto: number;
  tos: number;
  data: Uint8Array;
  /** The peer's MAC (the way back). */
  mac: Uint8Array;
}

export class RxMeta {
  dev!: Device;
  pool!: FramePool;
  /** The pool's bytes (every offset below is into it). */
  b!: Uint8Array;
  burst!: Burst;
  /** Index in `burst` of the chunk's first frame. */
  base = 0;
  now = 0;
  /** The link the frame belongs to (its VS's), once known. */
  readonly link: (Link | null)[] = new Array<Link | null>(CHUNK).fill(null);
  /** Frame start, source MAC, L3 and L4 offsets and lengths. */
  readonly ethOff = new Uint32Array(CHUNK);
  readonly srcMac = new Uint32Array(CHUNK);
  readonly l3Off = new Uint32Array(CHUNK);
  readonly l3Len = new Uint32Array(CHUNK);
  readonly l4Off = new Uint32Array(CHUNK);
  readonly l4Len = new Uint32Array(CHUNK);
  /** IPv4 source and destination. */
  readonly src = new Uint32Array(CHUNK);
  readonly dst = new Uint32Array(CHUNK);
  /** IPv6 source (a value made for the frame) and destination (our own address's value: no allocation); null for IPv4. */
  readonly src6: (Ip6 | null)[] = new Array<Ip6 | null>(CHUNK).fill(null);
  readonly dst6: (Ip6 | null)[] = new Array<Ip6 | null>(CHUNK).fill(null);
  /** IPv4 TOS / IPv6 traffic class. */
  readonly tos = new Uint8Array(CHUNK);
  /** IPv6 hop limit (NDP requires 255). */
  readonly hops = new Uint8Array(CHUNK);
  /** 1 when the destination is a broadcast (IPv4) or multicast (IPv6) address. */
  readonly bcast = new Uint8Array(CHUNK);
  /**
   * 0, or the outer family (4, 6) of a frame whose encapsulation was taken off (stack/ip/decap.ts):
   * its l3Off/l3Len are then the inner packet's, which must be to a VIP of the VS.
   */
  readonly decap = new Uint8Array(CHUNK);

  frame(j: number): number {
    return this.burst.frame[this.base + j]!;
  }

  /** The source address of frame `j`, either family. */
  srcAddr(j: number): IpAddr {
    return this.src6[j] ?? this.src[j]!;
  }

  /** The destination address of frame `j`, either family. */
  dstAddr(j: number): IpAddr {
    return this.dst6[j] ?? this.dst[j]!;
  }

  /** Frees frame `j`. */
  free(j: number): void {
    this.pool.free(this.frame(j));
  }

  /** Counts frame `j` as dropped for `reason` on its link (else its device) and frees it. */
  drop(j: number, reason: Drop): void {
    const l = this.link[j];
    if (l) l.drop(reason);
    else this.dev.counters.drop(reason);
    this.pool.free(this.frame(j));
  }
}

/**
 * The Toeplitz hash of Receive Side Scaling (Microsoft NDIS "RSS Hashing Functions", the
 * function Linux NICs report as `toeplitz` in `ethtool -x`).
 *
 * Spec pseudocode, over the input bytes left to right, most significant bit first:
 *   result = 0; for each input bit b { if (b == 1) result ^= (left-most 32 bits of K); K <<= 1 }
 * Inputs as the NIC builds them from a received packet (the spec's "@n-m" byte ranges):
 *   IPv4 with TCP: src addr (4), dst addr (4), src port (2), dst port (2)   = 12 bytes
 *   IPv4 only:     src addr, dst addr                                       =  8 bytes
 *   IPv6 with TCP: src addr (16), dst addr (16), src port, dst port         = 36 bytes
 *   IPv6 only:     src addr, dst addr                                       = 32 bytes
 * For the traffic a peer sends us, src is the peer and dst is us.
 *
 * The hash is linear over GF(2): each set input bit XORs in a fixed 32-bit window of the key. So
 * one table per input byte position (256 entries: the XOR of the windows of that byte's set bits)
 * turns a hash into one lookup per byte, and a field can be changed alone: the hash with our port p
 * is the hash with port 0 XOR `portTerm(p)`. Tables are built once per key; hashing allocates
 * nothing.
 */
import type { Ip6 } from '../ip/addr';

/** Input bytes of the IPv4 4-tuple and of the IPv6 4-tuple. */
export const RSS_INPUT4 = 12;
export const RSS_INPUT6 = 36;
/** Byte offset of the destination port (ours, for received traffic) in each input. */
export const DPORT_OFF4 = 10;
export const DPORT_OFF6 = 34;
/** The key bytes an input of `n` bytes needs: its last bit uses key bits 8n-1 .. 8n+30. */
export function keyBytesFor(n: number): number {
  return n + 4;
}

/** The Toeplitz hash of `input[off..off+len)` under `key`, bit by bit as the spec's pseudocode. */
export function toeplitzRef(key: Uint8Array, input: Uint8Array, off = 0, len = input.length - off): number {
  if (key.length < keyBytesFor(len)) throw new RangeError(`Toeplitz: a ${len}-byte input needs a key of at least ${keyBytesFor(len)} bytes, got ${key.length}`);
  let result = 0;
  for (let i = 0; i < len * 8; i++) {
    const b = (input[off + (i >> 3)]! >> (7 - (i & 7))) & 1;
    if (b) result ^= window(key, i);
  }
  return result >>> 0;
}

/** Key bits i .. i+31 as a u32 ("the left-most 32 bits of K" after i shifts); bits past the key are 0. */
function window(key: Uint8Array, i: number): number {
  const b = i >> 3, s = i & 7;
  const k = (j: number) => (j < key.length ? key[j]! : 0);
  const w = ((k(b) << 24) | (k(b + 1) << 16) | (k(b + 2) << 8) | k(b + 3)) >>> 0;
  return s === 0 ? w : ((w << s) | (k(b + 4) >>> (8 - s))) >>> 0;
}

/** A key prepared for fast hashing: one 256-entry table per input byte position. */
export class Toeplitz {
  readonly key: Uint8Array;
  /** Input bytes the key covers (up to 36): 12 or more allows IPv4 4-tuples, 36 IPv6 4-tuples. */
  readonly maxInput: number;
  /** t[pos * 256 + v]: the hash term of byte value v at input position pos. */
  private readonly t: Uint32Array;

  constructor(key: Uint8Array) {
    if (!(key instanceof Uint8Array)) throw new TypeError('Toeplitz key must be a Uint8Array');
    if (key.length < keyBytesFor(RSS_INPUT4)) {
      throw new RangeError(`Toeplitz key must be at least ${keyBytesFor(RSS_INPUT4)} bytes (IPv4 with ports), got ${key.length}`);
    }
    this.key = Uint8Array.from(key);
    this.maxInput = Math.min(RSS_INPUT6, key.length - 4);
    const t = new Uint32Array(this.maxInput * 256);
    for (let pos = 0; pos < this.maxInput; pos++) {
      const base = pos * 256;
      for (let v = 1; v < 256; v++) {
        const low = v & -v; // lowest set bit: value bit j is input bit pos*8 + 7 - j
        const j = 31 - Math.clz32(low);
        t[base + v] = t[base + (v ^ low)]! ^ window(this.key, pos * 8 + 7 - j);
      }
    }
    this.t = t;
  }

  /** Whether the key is long enough for IPv6 4-tuples (40 bytes or more). */
  get ipv6(): boolean {
    return this.maxInput >= RSS_INPUT6;
  }

  /** The hash of `input[off..off+len)`. */
  hashBytes(input: Uint8Array, off: number, len: number): number {
    if (len > this.maxInput) throw new RangeError(`Toeplitz: input of ${len} bytes exceeds what a ${this.key.length}-byte key covers (${this.maxInput})`);
    const t = this.t;
    let h = 0;
    for (let i = 0; i < len; i++) h ^= t[i * 256 + input[off + i]!]!;
    return h >>> 0;
  }

  /** The term of a u32 (host order) at byte position `pos`. */
  private u32(pos: number, w: number): number {
    const t = this.t, b = pos * 256;
    return t[b + (w >>> 24)]! ^ t[b + 256 + ((w >>> 16) & 255)]! ^ t[b + 512 + ((w >>> 8) & 255)]! ^ t[b + 768 + (w & 255)]!;
  }

  /** The term of a u16 at byte position `pos` (a port; XOR it into the hash with that port at 0). */
  u16(pos: number, v: number): number {
    const t = this.t, b = pos * 256;
    return (t[b + ((v >>> 8) & 255)]! ^ t[b + 256 + (v & 255)]!) >>> 0;
  }

  /** IPv4 with ports: src, dst as u32 in host order (as the stack keeps IPv4 addresses). */
  hash4(src: number, dst: number, sport: number, dport: number): number {
    return (this.u32(0, src) ^ this.u32(4, dst) ^ this.u16(8, sport) ^ this.u16(10, dport)) >>> 0;
  }

  /** IPv4 addresses only. */
  hash4Addrs(src: number, dst: number): number {
    return (this.u32(0, src) ^ this.u32(4, dst)) >>> 0;
  }

  /** IPv6 with ports (needs a key of 40 bytes or more; see `ipv6`). */
  hash6(src: Ip6, dst: Ip6, sport: number, dport: number): number {
    if (this.maxInput < RSS_INPUT6) throw new RangeError(`Toeplitz: a ${this.key.length}-byte key is too short for IPv6 with ports (needs ${keyBytesFor(RSS_INPUT6)})`);
    return (this.addrs6(src, dst) ^ this.u16(32, sport) ^ this.u16(34, dport)) >>> 0;
  }

  /** IPv6 addresses only (needs a key of 36 bytes or more). */
  hash6Addrs(src: Ip6, dst: Ip6): number {
    if (this.maxInput < 32) throw new RangeError(`Toeplitz: a ${this.key.length}-byte key is too short for IPv6 addresses (needs ${keyBytesFor(32)})`);
    return this.addrs6(src, dst) >>> 0;
  }

  private addrs6(src: Ip6, dst: Ip6): number {
    return this.u32(0, src.w0) ^ this.u32(4, src.w1) ^ this.u32(8, src.w2) ^ this.u32(12, src.w3) ^
      this.u32(16, dst.w0) ^ this.u32(20, dst.w1) ^ this.u32(24, dst.w2) ^ this.u32(28, dst.w3);
  }
}


/**
 * Capture files: reading classic pcap and pcapng, writing classic pcap, and a Driver that replays
 * a capture under virtual time and records what the stack transmits.
 *
 * Reading never copies packet bytes: each record's `data` is a view into the file's bytes.
 * Malformed or truncated files raise `CaptureFormatError`, whose message names the byte offset.
 */
import * as fs from 'node:fs';
import { FramePool } from '../umem/pool';
import { Burst, Driver, DriverStats, countDrop, newStats, parseMac } from './types';

export const LINKTYPE_ETHERNET = 1;

const LINKTYPE_NAMES: Record<number, string> = {
  0: 'NULL', 1: 'ETHERNET', 101: 'RAW', 105: 'IEEE802_11', 113: 'LINUX_SLL', 127: 'IEEE802_11_RADIOTAP',
  228: 'IPV4', 229: 'IPV6', 276: 'LINUX_SLL2',
};

export function linkTypeName(t: number): string {
  return LINKTYPE_NAMES[t] ?? `linktype-${t}`;
}

export interface CaptureRecord {
  /** Capture timestamp in microseconds since the epoch (sub-µs precision is truncated). */
  tsUs: number;
  /** Captured bytes: a view into the file's bytes, not a copy. */
  data: Uint8Array;
  /** Length of the packet on the wire (≥ data.length when the capture was cut by the snap length). */
  origLen: number;
  /** Link-layer type (1 = Ethernet). */
  linkType: number;
}

export class CaptureFormatError extends Error {
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(`${message} at byte offset ${offset}`);
    this.name = 'CaptureFormatError';
    this.offset = offset;
  }
}

const PCAP_MAGIC_US = 0xa1b2c3d4;
const PCAP_MAGIC_NS = 0xa1b23c4d;
const PCAPNG_SHB = 0x0a0d0d0a;
const PCAPNG_BOM = 0x1a2b3c4d;
const PCAPNG_IDB = 0x00000001;
const PCAPNG_PB = 0x00000002; // obsolete Packet Block
const PCAPNG_SPB = 0x00000003;
const PCAPNG_EPB = 0x00000006;
/** Largest record we accept: guards against garbage lengths. */
const MAX_RECORD = 256 * 1024 * 1024;

function toBytes(src: string | Uint8Array): Uint8Array {
  if (typeof src === 'string') {
    const b = fs.readFileSync(src);
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  }
  return new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
}

/**
 * Reads a whole capture (classic pcap in either byte order with µs or ns timestamps, or pcapng
 * with any number of sections and interfaces). `src` is a file path or the file's bytes.
 */
export function readCapture(src: string | Uint8Array): CaptureRecord[] {
  const bytes = toBytes(src);
  if (bytes.length < 4) throw new CaptureFormatError(`file too short for a capture header (${bytes.length} bytes)`, 0);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const be = dv.getUint32(0, false);
  if (be === PCAPNG_SHB) return readPcapng(bytes, dv);
  if (be === PCAP_MAGIC_US || be === PCAP_MAGIC_NS) return readPcap(bytes, dv, false, be === PCAP_MAGIC_NS);
  const le = dv.getUint32(0, true);
  if (le === PCAP_MAGIC_US || le === PCAP_MAGIC_NS) return readPcap(bytes, dv, true, le === PCAP_MAGIC_NS);
  throw new CaptureFormatError(`not a pcap or pcapng file (magic 0x${be.toString(16).padStart(8, '0')})`, 0);
}

function readPcap(bytes: Uint8Array, dv: DataView, le: boolean, nano: boolean): CaptureRecord[] {
  if (bytes.length < 24) throw new CaptureFormatError(`pcap global header truncated (${bytes.length} of 24 bytes)`, 0);
  const major = dv.getUint16(4, le);
  if (major !== 2) throw new CaptureFormatError(`unsupported pcap version ${major}.${dv.getUint16(6, le)}`, 4);
  // The upper bits of the link type field may carry FCS information.
  const linkType = dv.getUint32(20, le) & 0x03ffffff;
  const out: CaptureRecord[] = [];
  let off = 24;
  while (off < bytes.length) {
    if (off + 16 > bytes.length) {
      throw new CaptureFormatError(`pcap record header truncated (${bytes.length - off} of 16 bytes)`, off);
    }
    const sec = dv.getUint32(off, le);
    const frac = dv.getUint32(off + 4, le);
    const incl = dv.getUint32(off + 8, le);
    const orig = dv.getUint32(off + 12, le);
    if (incl > MAX_RECORD) throw new CaptureFormatError(`pcap record length ${incl} is implausible`, off + 8);
    if (off + 16 + incl > bytes.length) {
      throw new CaptureFormatError(`pcap record data truncated (${bytes.length - off - 16} of ${incl} bytes)`, off + 16);
    }
    if (frac >= (nano ? 1e9 : 1e6)) throw new CaptureFormatError(`pcap record sub-second field ${frac} out of range`, off + 4);
    const tsUs = sec * 1e6 + (nano ? Math.floor(frac / 1000) : frac);
    out.push({ tsUs, data: bytes.subarray(off + 16, off + 16 + incl), origLen: Math.max(orig, incl), linkType });
    off += 16 + incl;
  }
  return out;
}

interface Iface {
  linkType: number;
  snapLen: number;
  /** Timestamp resolution: ticks per second, as a BigInt. */
  unitsPerSec: bigint;
  /** if_tsoffset, in seconds. */
  offsetSec: bigint;
}

function readPcapng(bytes: Uint8Array, dv: DataView): CaptureRecord[] {
  const out: CaptureRecord[] = [];
  let le = true;
  let ifaces: Iface[] = [];
  let sawShb = false;
  let lastTs = 0;
  let off = 0;
  while (off < bytes.length) {
    if (off + 12 > bytes.length) throw new CaptureFormatError(`pcapng block header truncated (${bytes.length - off} bytes left)`, off);
    const beType = dv.getUint32(off, false);
    if (beType === PCAPNG_SHB) {
      // The byte-order magic decides how this whole section (including this block's length) reads.
      const bom = dv.getUint32(off + 8, true);
      if (bom === PCAPNG_BOM) le = true;
      else if (dv.getUint32(off + 8, false) === PCAPNG_BOM) le = false;
      else throw new CaptureFormatError(`pcapng section header has bad byte-order magic`, off + 8);
      ifaces = [];
      sawShb = true;
    } else if (!sawShb) {
      throw new CaptureFormatError(`pcapng file does not start with a section header block`, off);
    }
    const type = dv.getUint32(off, le);
    const len = dv.getUint32(off + 4, le);
    if (len < 12 || len % 4 !== 0) throw new CaptureFormatError(`pcapng block length ${len} invalid (type 0x${type.toString(16)})`, off + 4);
    if (len > MAX_RECORD) throw new CaptureFormatError(`pcapng block length ${len} is implausible`, off + 4);
    if (off + len > bytes.length) {
      throw new CaptureFormatError(`pcapng block truncated (${bytes.length - off} of ${len} bytes, type 0x${type.toString(16)})`, off);
    }
    const trailer = dv.getUint32(off + len - 4, le);
    if (trailer !== len) throw new CaptureFormatError(`pcapng block trailing length ${trailer} differs from ${len}`, off + len - 4);
    const body = off + 8;
    const bodyEnd = off + len - 4;
    switch (type) {
      case PCAPNG_SHB:
        if (len < 28) throw new CaptureFormatError(`pcapng section header block too short (${len} bytes)`, off);
        if (dv.getUint16(body + 4, le) !== 1) {
          throw new CaptureFormatError(`unsupported pcapng version ${dv.getUint16(body + 4, le)}.${dv.getUint16(body + 6, le)}`, body + 4);
        }
        break;
      case PCAPNG_IDB: {
        if (len < 20) throw new CaptureFormatError(`pcapng interface description block too short (${len} bytes)`, off);
        const iface: Iface = { linkType: dv.getUint16(body, le), snapLen: dv.getUint32(body + 4, le), unitsPerSec: 1000000n, offsetSec: 0n };
        readIdbOptions(dv, body + 8, bodyEnd, le, iface);
        ifaces.push(iface);
        break;
      }
      case PCAPNG_EPB:
      case PCAPNG_PB: {
        if (len < 32) throw new CaptureFormatError(`pcapng packet block too short (${len} bytes)`, off);
        const id = type === PCAPNG_EPB ? dv.getUint32(body, le) : dv.getUint16(body, le);
        const iface = ifaces[id];
        if (!iface) throw new CaptureFormatError(`pcapng packet block names interface ${id}, but only ${ifaces.length} are described`, body);
        const hi = dv.getUint32(body + 4, le);
        const lo = dv.getUint32(body + 8, le);
        const cap = dv.getUint32(body + 12, le);
        const orig = dv.getUint32(body + 16, le);
        const data = body + 20;
        if (data + cap > bodyEnd) throw new CaptureFormatError(`pcapng packet data (${cap} bytes) overruns its block`, body + 12);
        const ticks = (BigInt(hi) << 32n) | BigInt(lo);
        lastTs = Number(((ticks + iface.offsetSec * iface.unitsPerSec) * 1000000n) / iface.unitsPerSec);
        out.push({ tsUs: lastTs, data: bytes.subarray(data, data + cap), origLen: Math.max(orig, cap), linkType: iface.linkType });
        break;
      }
      case PCAPNG_SPB: {
        if (len < 16) throw new CaptureFormatError(`pcapng simple packet block too short (${len} bytes)`, off);
        const iface = ifaces[0];
        if (!iface) throw new CaptureFormatError(`pcapng simple packet block before any interface description`, off);
        const orig = dv.getUint32(body, le);
        let cap = Math.min(orig, bodyEnd - (body + 4));
        if (iface.snapLen > 0) cap = Math.min(cap, iface.snapLen);
        // A simple packet block has no timestamp: it takes the previous packet's.
        out.push({ tsUs: lastTs, data: bytes.subarray(body + 4, body + 4 + cap), origLen: Math.max(orig, cap), linkType: iface.linkType });
        break;
      }
      default:
        break; // name resolution, statistics, custom and unknown blocks: skipped
    }
    off += len;
  }
  return out;
}

function readIdbOptions(dv: DataView, p: number, end: number, le: boolean, iface: Iface): void {
  while (p + 4 <= end) {
    const code = dv.getUint16(p, le);
    const olen = dv.getUint16(p + 2, le);
    const v = p + 4;
    if (code === 0) return; // opt_endofopt
    if (v + olen > end) throw new CaptureFormatError(`pcapng interface option ${code} (${olen} bytes) overruns its block`, p);
    if (code === 9 && olen >= 1) {
      const r = dv.getUint8(v);
      const exp = BigInt(r & 0x7f);
      const units = r & 0x80 ? 1n << exp : 10n ** exp;
      if (units === 0n || exp > 63n) throw new CaptureFormatError(`pcapng if_tsresol ${r} unsupported`, v);
      iface.unitsPerSec = units;
    } else if (code === 14 && olen >= 8) {
      iface.offsetSec = dv.getBigInt64(v, le);
    }
    p = v + ((olen + 3) & ~3);
  }
}

// ---------------------------------------------------------------------------------------------
// Writer

export interface PcapWriterOptions {
  /** Snap length written in the header; longer frames are cut (origLen keeps the real length). Default 262144. */
  snapLen?: number;
  /** Bytes buffered before a write to the file. Default 64 KiB. */
  bufferSize?: number;
  /**
   * A stream instead of a file: each flushed chunk (a copy the callee may keep) is passed here
   * in order; the first one starts with the global header (unless `header` is false).
   */
  sink?: (chunk: Uint8Array) => void;
  /** Write the 24-byte global header. Default true (false: records only, to be joined to a capture made elsewhere). */
  header?: boolean;
}

/**
 * Writes classic little-endian microsecond pcap with link type Ethernet, to a file (`path`), to a
 * stream (`sink`), or to memory (neither; read the result with `toBuffer()`). Writes are buffered;
 * `flush()` and `close()` push them out.
 */
export class PcapWriter {
  readonly path: string | undefined;
  readonly snapLen: number;
  /** Number of packets written. */
  packets = 0;
  private fd = -1;
  private buf: Uint8Array;
  private dv: DataView;
  private pos = 0;
  private readonly chunks: Uint8Array[] = [];
  private readonly sink: ((chunk: Uint8Array) => void) | undefined;
  private closed = false;

  constructor(path?: string, opts: PcapWriterOptions = {}) {
    this.path = path;
    this.snapLen = opts.snapLen ?? 262144;
    const size = Math.max(opts.bufferSize ?? 65536, 64);
    this.buf = new Uint8Array(size);
    this.dv = new DataView(this.buf.buffer);
    if (path !== undefined && opts.sink) throw new Error('PcapWriter: a file path or a sink, not both');
    this.sink = opts.sink;
    if (path !== undefined) this.fd = fs.openSync(path, 'w');
    if (opts.header === false) return;
    const h = this.reserve(24);
    this.dv.setUint32(h, PCAP_MAGIC_US, true);
    this.dv.setUint16(h + 4, 2, true);
    this.dv.setUint16(h + 6, 4, true);
    this.dv.setInt32(h + 8, 0, true);
    this.dv.setUint32(h + 12, 0, true);
    this.dv.setUint32(h + 16, this.snapLen, true);
    this.dv.setUint32(h + 20, LINKTYPE_ETHERNET, true);
  }

  /** Appends one packet: `len` bytes of `bytes` from `off`, stamped `tsUs` (µs since the epoch). */
  write(bytes: Uint8Array, off: number, len: number, tsUs: number, origLen = len): void {
    if (this.closed) throw new Error(`PcapWriter${this.path ? ` ${this.path}` : ''} is closed`);
    const cap = Math.min(len, this.snapLen);
    const t = tsUs > 0 ? tsUs : 0;
    const sec = Math.floor(t / 1e6);
    const usec = Math.min(Math.floor(t - sec * 1e6), 999999);
    const h = this.reserve(16);
    this.dv.setUint32(h, sec >>> 0, true);
    this.dv.setUint32(h + 4, usec, true);
    this.dv.setUint32(h + 8, cap, true);
    this.dv.setUint32(h + 12, Math.max(origLen, cap), true);
    if (cap > this.buf.length - this.pos) {
      this.flushBuffer();
      if (cap > this.buf.length) {
        this.emit(bytes.slice(off, off + cap), false);
        this.packets++;
        return;
      }
    }
    this.buf.set(bytes.subarray(off, off + cap), this.pos);
    this.pos += cap;
    this.packets++;
  }

  /** Pushes buffered bytes to the file (or the in-memory chunk list). */
  flush(): void {
    if (!this.closed) this.flushBuffer();
  }

  /** The whole capture written so far (flushes first). */
  toBuffer(): Uint8Array {
    this.flush();
    if (this.path !== undefined) {
      const b = fs.readFileSync(this.path);
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    }
    let total = 0;
    for (const c of this.chunks) total += c.length;
    const out = new Uint8Array(total);
    let p = 0;
    for (const c of this.chunks) { out.set(c, p); p += c.length; }
    return out;
  }

  close(): void {
    if (this.closed) return;
    this.flushBuffer();
    this.closed = true;
    if (this.fd >= 0) { fs.closeSync(this.fd); this.fd = -1; }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private reserve(n: number): number {
    if (this.pos + n > this.buf.length) this.flushBuffer();
    const p = this.pos;
    this.pos += n;
    return p;
  }

  private flushBuffer(): void {
    if (this.pos === 0) return;
    this.emit(this.buf.subarray(0, this.pos), true);
    this.pos = 0;
  }

  private emit(b: Uint8Array, isBuffer: boolean): void {
    if (this.sink) {
      this.sink(isBuffer ? b.slice() : b);
    } else if (this.fd >= 0) {
      let done = 0;
      while (done < b.length) done += fs.writeSync(this.fd, b, done, b.length - done);
    } else {
      this.chunks.push(isBuffer ? b.slice() : b);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Driver

export interface PcapDriverOptions {
  /** Capture to replay (path or bytes). Without it, rx() never yields anything. */
  input?: string | Uint8Array;
  /** Where transmitted frames go (path or writer). Without it, they are counted and discarded. */
  output?: string | PcapWriter;
  frameSize?: number;
  frameCount?: number;
  headroom?: number;
  /** Use this pool instead of creating one. */
  pool?: FramePool;
  /** MAC address of the device, 'aa:bb:..' or 6 bytes. Default 02:00:00:00:00:01. */
  mac?: string | Uint8Array;
  /** Default 1500. Transmitted frames longer than mtu + 22 (Ethernet header + two VLAN tags) are dropped. */
  mtu?: number;
  name?: string;
}

export class PcapDriver implements Driver {
  readonly kind = 'pcap';
  readonly name: string;
  readonly pool: FramePool;
  readonly mac: Uint8Array;
  readonly mtu: number;
  readonly records: readonly CaptureRecord[];
  private next = 0;
  private readonly writer: PcapWriter | undefined;
  private readonly ownsWriter: boolean;
  private readonly st: DriverStats;
  private closed = false;

  constructor(opts: PcapDriverOptions = {}) {
    this.pool = opts.pool ?? new FramePool({ frameSize: opts.frameSize ?? 2048, frameCount: opts.frameCount ?? 1024, headroom: opts.headroom });
    this.mac = typeof opts.mac === 'string' ? parseMac(opts.mac) : opts.mac ? Uint8Array.from(opts.mac) : Uint8Array.of(2, 0, 0, 0, 0, 1);
    if (this.mac.length !== 6) throw new RangeError(`mac must be 6 bytes, got ${this.mac.length}`);
    this.mtu = opts.mtu ?? 1500;
    this.name = opts.name ?? (typeof opts.input === 'string' ? opts.input : 'pcap');
    const recs = opts.input !== undefined ? readCapture(opts.input) : [];
    for (let i = 0; i < recs.length; i++) {
      const lt = recs[i]!.linkType;
      if (lt !== LINKTYPE_ETHERNET) {
        throw new Error(`pcap driver: packet ${i + 1} of ${this.name} has link type ${lt} (${linkTypeName(lt)}); only Ethernet (1) is supported`);
      }
    }
    this.records = recs;
    if (typeof opts.output === 'string') { this.writer = new PcapWriter(opts.output); this.ownsWriter = true; }
    else { this.writer = opts.output; this.ownsWriter = false; }
    this.st = newStats();
    this.st.truncated = 0;
  }

  /** Number of capture records not yet delivered. */
  get remaining(): number {
    return this.records.length - this.next;
  }

  rx(out: Burst, now: number): number {
    if (this.closed) return 0;
    const pool = this.pool;
    const room = pool.frameSize - pool.headroom;
    let n = 0;
    while (out.n < out.capacity && this.next < this.records.length) {
      const r = this.records[this.next]!;
      if (r.tsUs > now) break;
      this.next++;
      const len = r.data.length;
      if (len > room) { countDrop(this.st, 'oversize'); continue; }
      const f = pool.alloc();
      if (f < 0) { countDrop(this.st, 'no-frame'); continue; }
      const at = pool.dataStart(f);
      pool.bytes.set(r.data, at);
      out.push(f, at, len, r.tsUs);
      if (r.origLen > len) (this.st.truncated as number)++;
      this.st.rxPackets++;
      this.st.rxBytes += len;
      n++;
    }
    return n;
  }

  tx(b: Burst, now: number): number {
    const pool = this.pool;
    const max = this.mtu + 22;
    for (let i = 0; i < b.n; i++) {
      const f = b.frame[i]!;
      const len = b.len[i]!;
      if (this.closed) countDrop(this.st, 'closed');
      else if (len > max) countDrop(this.st, 'tx-too-big');
      else {
        if (this.writer) this.writer.write(pool.bytes, b.off[i]!, len, now);
        this.st.txPackets++;
        this.st.txBytes += len;
      }
      pool.free(f);
    }
    return b.n;
  }

  service(_now: number): void {}

  nextDeadline(): number {
    if (this.closed || this.next >= this.records.length) return Infinity;
    return this.records[this.next]!.tsUs;
  }

  stats(): DriverStats {
    return { ...this.st, drops: { ...this.st.drops }, remaining: this.remaining };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.writer) {
      if (this.ownsWriter) this.writer.close();
      else if (!this.writer.isClosed) this.writer.flush();
    }
  }
}

/** Opens a driver replaying `input` under virtual time and writing transmitted frames to `output`. */
export function openPcapDriver(opts: PcapDriverOptions = {}): PcapDriver {
  return new PcapDriver(opts);
}

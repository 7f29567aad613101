/**
 * RAM backend, thin-provisioned: memory is held in 1 MiB chunks allocated on first write and
 * freed when an UNMAP covers a whole chunk. Unwritten and unmapped ranges read as zeros (the
 * LBPRZ = 1 that READ CAPACITY(16) and VPD page B2h report, SBC-3 logical block provisioning).
 */
import { BlockBackend, IoCallback, ReadCallback, closedError } from './backend';

/** Chunk size: a multiple of every supported block size (512, 4096). */
export const RAM_CHUNK = 1 << 20;
const ZERO = new Uint8Array(RAM_CHUNK);

/** Calls `fn(chunk index, offset in chunk, length)` for each chunk-sized piece of [offset, offset + length). */
function spans(offset: number, length: number, fn: (i: number, o: number, n: number) => void): void {
  const end = offset + length;
  for (let pos = offset; pos < end;) {
    const i = Math.floor(pos / RAM_CHUNK);
    const o = pos - i * RAM_CHUNK;
    const n = Math.min(RAM_CHUNK - o, end - pos);
    fn(i, o, n);
    pos += n;
  }
}

export class RamBackend implements BlockBackend {
  readonly kind = 'ram' as const;
  private chunks: (Uint8Array | undefined)[];
  private closed = false;

  constructor(public size: number) {
    this.chunks = new Array(Math.ceil(size / RAM_CHUNK));
  }

  /** Bytes of chunk memory held (for tests and statistics). */
  allocatedBytes(): number {
    let n = 0;
    for (const c of this.chunks) if (c) n += c.length;
    return n;
  }

  private chunkLen(i: number): number {
    return Math.min(RAM_CHUNK, this.size - i * RAM_CHUNK);
  }

  private chunk(i: number): Uint8Array {
    let c = this.chunks[i];
    if (!c) { c = new Uint8Array(this.chunkLen(i)); this.chunks[i] = c; }
    return c;
  }

  read(offset: number, length: number, cb: ReadCallback): void {
    if (this.closed) return cb(closedError(), []);
    const out: Uint8Array[] = [];
    spans(offset, length, (i, o, n) => {
      const c = this.chunks[i];
      out.push(c ? c.subarray(o, o + n) : ZERO.subarray(0, n));
    });
    cb(null, out);
  }

  write(offset: number, data: readonly Uint8Array[], cb: IoCallback): void {
    if (this.closed) return cb(closedError());
    let pos = offset;
    for (const v of data) {
      let s = 0;
      spans(pos, v.length, (i, o, n) => {
        this.chunk(i).set(s === 0 && n === v.length ? v : v.subarray(s, s + n), o);
        s += n;
      });
      pos += v.length;
    }
    cb(null);
  }

  fill(offset: number, length: number, pattern: Uint8Array, cb: IoCallback): void {
    if (this.closed) return cb(closedError());
    const zero = isZero(pattern);
    spans(offset, length, (i, o, n) => {
      // Zeros into a chunk never written: it already reads as zeros.
      if (zero) this.chunks[i]?.fill(0, o, o + n);
      else Buffer.from(this.chunk(i).buffer, this.chunks[i]!.byteOffset + o, n).fill(pattern);
    });
    cb(null);
  }

  discard(offset: number, length: number, cb: IoCallback): void {
    if (this.closed) return cb(closedError());
    let pos = offset;
    const end = offset + length;
    while (pos < end) {
      const i = Math.floor(pos / RAM_CHUNK);
      const o = pos - i * RAM_CHUNK;
      const n = Math.min(RAM_CHUNK - o, end - pos);
      if (o === 0 && n === this.chunkLen(i)) this.chunks[i] = undefined;
      else this.chunks[i]?.fill(0, o, o + n);
      pos += n;
    }
    cb(null);
  }

  grow(size: number): void {
    if (size <= this.size) return;
    const last = this.chunks.length - 1;
    this.size = size;
    // A short last chunk becomes a full one (or as long as the new end needs).
    const c = last >= 0 ? this.chunks[last] : undefined;
    if (c && c.length < this.chunkLen(last)) {
      const bigger = new Uint8Array(this.chunkLen(last));
      bigger.set(c);
      this.chunks[last] = bigger;
    }
    this.chunks.length = Math.ceil(size / RAM_CHUNK);
  }

  flush(cb: IoCallback): void {
    cb(this.closed ? closedError() : null);
  }

  close(): void {
    this.closed = true;
    this.chunks = [];
  }
}

function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

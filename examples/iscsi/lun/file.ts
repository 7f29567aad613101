/**
 * File backend: a sparse file (created with ftruncate, kept if larger) read and written with
 * positional fs.read / fs.writev on the libuv thread pool.
 *
 * Why asynchronous calls: the same event loop runs the whole network stack; a synchronous pread
 * that misses the page cache, or a pwrite throttled by writeback, would stall every connection of
 * every tenant for milliseconds. The thread pool keeps the loop free, and several commands overlap.
 *
 * Durability: a write's callback runs after pwritev returned, i.e. the data is in the kernel's
 * page cache, which survives a kill -9 of this process. flush() is fdatasync(2): FUA writes,
 * SYNCHRONIZE CACHE and a write-through cache (WCE = 0) wait for it, so they reach the disk.
 *
 * Copies: writes hand the Data-Out views to writev (the kernel copies them once into the page
 * cache); reads fill one fresh buffer that is returned as Data-In as it is.
 *
 * UNMAP and WRITE SAME(UNMAP) write zeros: node:fs has no fallocate(PUNCH_HOLE), and zeros keep
 * the LBPRZ = 1 promise (an unmapped block reads as zeros, SBC-3 logical block provisioning).
 */
import * as fs from 'node:fs';
import { BlockBackend, IoCallback, ReadCallback, closedError } from './backend';

/** Largest single zero/pattern buffer for fill and discard. */
const FILL_CHUNK = 1 << 20;
let zeroChunk: Buffer | undefined;

export class FileBackend implements BlockBackend {
  readonly kind = 'file' as const;
  private fd: number;
  private inflight = 0;
  private closing = false;

  /** Opens (or creates, sparse) `path` with at least `size` bytes. Throws on open errors (config time). */
  constructor(readonly path: string, public size: number) {
    this.fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    try {
      const st = fs.fstatSync(this.fd);
      if (!st.isFile() && !st.isBlockDevice()) throw new Error(`${path}: not a regular file`);
      if (st.isFile() && st.size < size) fs.ftruncateSync(this.fd, size);
    } catch (e) {
      fs.closeSync(this.fd);
      throw e;
    }
  }

  private begin(): boolean {
    if (this.closing) return false;
    this.inflight++;
    return true;
  }

  private end(): void {
    this.inflight--;
    if (this.closing && this.inflight === 0) this.finalClose();
  }

  read(offset: number, length: number, cb: ReadCallback): void {
    if (!this.begin()) return cb(closedError(), []);
    const buf = Buffer.allocUnsafe(length);
    const step = (done: number): void => {
      if (done >= length) { this.end(); cb(null, [buf]); return; }
      fs.read(this.fd, buf, done, length - done, offset + done, (err, n) => {
        if (err) { this.end(); cb(err, []); return; }
        // End of file inside the device (a file shrunk behind our back): the rest reads as zeros.
        if (n === 0) { buf.fill(0, done); step(length); return; }
        step(done + n);
      });
    };
    step(0);
  }

  write(offset: number, data: readonly Uint8Array[], cb: IoCallback): void {
    if (!this.begin()) return cb(closedError());
    let total = 0;
    for (const v of data) total += v.length;
    let views = data.filter((v) => v.length > 0);
    const step = (done: number): void => {
      if (done >= total) { this.end(); cb(null); return; }
      fs.writev(this.fd, views, offset + done, (err, n) => {
        if (err) { this.end(); cb(err); return; }
        if (n === 0) { this.end(); cb(Object.assign(new Error('short write'), { code: 'EIO' })); return; }
        views = dropFront(views, n);
        step(done + n);
      });
    };
    step(0);
  }

  fill(offset: number, length: number, pattern: Uint8Array, cb: IoCallback): void {
    const n = Math.min(FILL_CHUNK - (FILL_CHUNK % pattern.length), length);
    const buf = Buffer.allocUnsafe(n);
    buf.fill(pattern);
    this.repeat(offset, length, buf, cb);
  }

  discard(offset: number, length: number, cb: IoCallback): void {
    zeroChunk ??= Buffer.alloc(FILL_CHUNK);
    this.repeat(offset, length, zeroChunk, cb);
  }

  /** Writes `buf` (or its head) repeatedly over [offset, offset + length), one write at a time. */
  private repeat(offset: number, length: number, buf: Buffer, cb: IoCallback): void {
    const step = (pos: number): void => {
      if (pos >= offset + length) { cb(null); return; }
      const n = Math.min(buf.length, offset + length - pos);
      this.write(pos, [buf.subarray(0, n)], (err) => (err ? cb(err) : step(pos + n)));
    };
    step(offset);
  }

  grow(size: number): void {
    if (size <= this.size || this.closing) return;
    // Sparse growth: ftruncate leaves a hole, which reads as zeros.
    if (fs.fstatSync(this.fd).size < size) fs.ftruncateSync(this.fd, size);
    this.size = size;
  }

  flush(cb: IoCallback): void {
    if (!this.begin()) return cb(closedError());
    fs.fdatasync(this.fd, (err) => { this.end(); cb(err); });
  }

  close(): void {
    if (this.closing) return;
    this.closing = true;
    if (this.inflight === 0) this.finalClose();
  }

  /** A clean stop flushes: fdatasync, then close (operations that were in flight have ended). */
  private finalClose(): void {
    const fd = this.fd;
    this.fd = -1;
    try { fs.fdatasyncSync(fd); } catch { /* reported by the last flush, if any */ }
    try { fs.closeSync(fd); } catch { /* already gone */ }
  }
}

function dropFront(views: Uint8Array[], n: number): Uint8Array[] {
  let i = 0;
  while (i < views.length && n >= views[i].length) { n -= views[i].length; i++; }
  const rest = views.slice(i);
  if (n > 0 && rest.length > 0) rest[0] = rest[0].subarray(n);
  return rest;
}

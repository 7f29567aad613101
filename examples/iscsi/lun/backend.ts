/**
 * The storage under a logical unit: byte-addressed reads and writes of whole blocks. The SCSI
 * layer (scsi/sbc.ts) checks ranges before calling; offsets and lengths are multiples of the
 * block size and inside the device. A RAM backend completes synchronously (callbacks run before
 * the call returns); a file backend completes from the libuv thread pool.
 */

export type IoCallback = (err: NodeJS.ErrnoException | null) => void;
export type ReadCallback = (err: NodeJS.ErrnoException | null, data: Uint8Array[]) => void;

export interface BlockBackend {
  readonly kind: 'ram' | 'file';
  /** Capacity in bytes. */
  readonly size: number;
  /**
   * Reads `length` bytes at `offset`. The views are backend memory (RAM) or a buffer filled by
   * this read (file): the caller may hand them to the send path without another copy, and must
   * not keep RAM views past its next write to the same range.
   */
  read(offset: number, length: number, cb: ReadCallback): void;
  /** Writes the views, in order, at `offset` (each byte copied once: into RAM, or by the kernel). */
  write(offset: number, data: readonly Uint8Array[], cb: IoCallback): void;
  /** Writes `length` bytes at `offset` by repeating `pattern` (WRITE SAME; length a multiple of it). */
  fill(offset: number, length: number, pattern: Uint8Array, cb: IoCallback): void;
  /** Deallocates (UNMAP): afterwards the range reads as zeros. */
  discard(offset: number, length: number, cb: IoCallback): void;
  /** Grows the device to `size` bytes (the new range reads as zeros unless a file already held data there). */
  grow(size: number): void;
  /** Makes every completed write durable (file: fdatasync); RAM has nothing to flush. */
  flush(cb: IoCallback): void;
  /** Flushes and releases the backend once in-flight operations have ended; later calls fail. */
  close(): void;
}

/** The error a closed backend answers with. */
export function closedError(): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error('backend closed');
  e.code = 'EBADF';
  return e;
}

/**
 * Data-Out as it arrives: a list of views into received frames. These helpers cut, compare and
 * gather it without copying (a backend copies each byte once, into its own memory or the kernel).
 */

export function totalLength(views: readonly Uint8Array[]): number {
  let n = 0;
  for (const v of views) n += v.length;
  return n;
}

/** Views covering bytes [off, off + len) of `views` (no copy; fewer bytes if `views` is shorter). */
export function sliceViews(views: readonly Uint8Array[], off: number, len: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let pos = 0;
  const end = off + len;
  for (const v of views) {
    if (pos >= end) break;
    const vEnd = pos + v.length;
    if (vEnd > off) {
      const a = Math.max(off, pos) - pos;
      const b = Math.min(end, vEnd) - pos;
      if (b > a) out.push(a === 0 && b === v.length ? v : v.subarray(a, b));
    }
    pos = vEnd;
  }
  return out;
}

/** Copies bytes [off, off + len) of `views` into `dst` at `dstOff` (the one copy of a gather). */
export function copyOut(views: readonly Uint8Array[], off: number, len: number, dst: Uint8Array, dstOff: number): void {
  let d = dstOff;
  for (const v of sliceViews(views, off, len)) { dst.set(v, d); d += v.length; }
}

/** Bytes [off, off + len) of `views` in one contiguous array: a view when they sit in one view, else a copy. */
export function contiguous(views: readonly Uint8Array[], off: number, len: number): Uint8Array {
  const parts = sliceViews(views, off, len);
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(len);
  let d = 0;
  for (const p of parts) { out.set(p, d); d += p.length; }
  return out;
}

/**
 * Compares `a` (a list of views) with `b` (another list), both `len` bytes long; returns the
 * offset of the first differing byte, or -1 when equal.
 */
export function firstDifference(a: readonly Uint8Array[], b: readonly Uint8Array[], len: number): number {
  let ai = 0, ao = 0, bi = 0, bo = 0;
  let pos = 0;
  while (pos < len) {
    while (ai < a.length && ao >= a[ai].length) { ai++; ao = 0; }
    while (bi < b.length && bo >= b[bi].length) { bi++; bo = 0; }
    if (ai >= a.length || bi >= b.length) return pos;
    const av = a[ai], bv = b[bi];
    const n = Math.min(av.length - ao, bv.length - bo, len - pos);
    if (Buffer.compare(Buffer.from(av.buffer, av.byteOffset + ao, n), Buffer.from(bv.buffer, bv.byteOffset + bo, n)) !== 0) {
      for (let i = 0; i < n; i++) if (av[ao + i] !== bv[bo + i]) return pos + i;
    }
    ao += n; bo += n; pos += n;
  }
  return -1;
}

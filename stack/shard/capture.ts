/**
 * The captures of a stack of shards: each shard traces its own queues; the main thread joins their
 * records by time, after the trace (files, `mergeCaptures`) or as they come (a streamed trace,
 * `CaptureMerger`). Every shard stamps its frames on the clock the whole process shares, so the
 * joined capture is in the order the frames were seen; times are kept strictly increasing (a tie
 * between two shards is spread 1 µs apart, as within one trace).
 */
import * as fs from 'node:fs';
import { PcapWriter, readCapture } from '../../driver/pcap';

/** Writes the records of every part to `out`, ordered by time (at most `limit`); removes the parts. Returns the count. */
export function mergeCaptures(parts: string[], out: string, limit = Infinity): number {
  const recs: { data: Uint8Array; tsUs: number; origLen: number }[] = [];
  for (const p of parts) {
    try {
      for (const r of readCapture(p)) recs.push(r);
    } catch { /* a shard that never wrote */ }
  }
  // Stable: records of one shard keep their order.
  recs.sort((a, b) => a.tsUs - b.tsUs);
  const w = new PcapWriter(out);
  const n = Math.min(recs.length, limit);
  let last = 0;
  for (let i = 0; i < n; i++) {
    const r = recs[i]!;
    last = r.tsUs > last ? r.tsUs : last + 1;
    w.write(r.data, 0, r.data.length, last, r.origLen);
  }
  w.close();
  for (const p of parts) try { fs.unlinkSync(p); } catch { /* already gone */ }
  return n;
}

interface Rec { ts: number; data: Uint8Array; orig: number }

/**
 * Joins the shards' streamed records by time as they arrive. Each shard sends batches of pcap
 * records with a watermark: every record it sends later is stamped after it. A record is passed on
 * once no shard can still send an earlier one: its time is at most, for every shard, the first
 * record it has waiting or (with none waiting) its watermark.
 */
export class CaptureMerger {
  private readonly queues: Rec[][];
  private readonly heads: number[];
  private readonly marks: number[];
  private last = 0;

  /** `emit(data, ts, origLen)` receives the records in order, with strictly increasing times. */
  constructor(shards: number, private readonly emit: (data: Uint8Array, ts: number, origLen: number) => void) {
    this.queues = Array.from({ length: shards }, () => []);
    this.heads = new Array<number>(shards).fill(0);
    this.marks = new Array<number>(shards).fill(-Infinity);
  }

  /** A batch from shard `i`: pcap records (16-byte headers, little-endian µs) and its watermark. */
  push(i: number, bytes: Uint8Array, watermark: number): void {
    const q = this.queues[i]!;
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let off = 0;
    while (off + 16 <= bytes.length) {
      const incl = dv.getUint32(off + 8, true);
      if (off + 16 + incl > bytes.length) break; // never: shards send whole records
      q.push({ ts: dv.getUint32(off, true) * 1e6 + dv.getUint32(off + 4, true), data: bytes.subarray(off + 16, off + 16 + incl), orig: dv.getUint32(off + 12, true) });
      off += 16 + incl;
    }
    if (watermark > this.marks[i]!) this.marks[i] = watermark;
    this.drain();
  }

  /** Passes on every record no shard can precede any more. */
  private drain(): void {
    const n = this.queues.length;
    for (;;) {
      let bound = Infinity;
      let best = -1;
      let bestTs = Infinity;
      for (let i = 0; i < n; i++) {
        const q = this.queues[i]!;
        const h = this.heads[i]!;
        if (h < q.length) {
          const ts = q[h]!.ts;
          if (ts < bound) bound = ts;
          if (ts < bestTs) { bestTs = ts; best = i; }
        } else if (this.marks[i]! < bound) bound = this.marks[i]!;
      }
      if (best < 0 || bestTs > bound) break;
      const q = this.queues[best]!;
      const r = q[this.heads[best]!]!;
      this.heads[best] = this.heads[best]! + 1;
      if (this.heads[best] === q.length) { q.length = 0; this.heads[best] = 0; }
      this.last = r.ts > this.last ? r.ts : this.last + 1;
      this.emit(r.data, this.last, r.orig);
    }
  }

  /** Records still waiting (a shard has not vouched for their time yet). */
  get waiting(): number {
    let k = 0;
    for (let i = 0; i < this.queues.length; i++) k += this.queues[i]!.length - this.heads[i]!;
    return k;
  }
}

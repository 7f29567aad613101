/**
 * Tracing middleware: a Driver that wraps another one and mirrors every frame received from it and
 * every frame it accepts for transmission into a pcap file, stamped with `now`. Otherwise it is
 * transparent: same pool, MAC, MTU, deadlines, burst contents and return values.
 */
import type { FramePool } from '../umem/pool';
import type { Burst, Driver, DriverStats } from './types';
import type { PcapWriter } from './pcap';

export interface TraceOptions {
  /** Trace received frames. Default true. */
  rx?: boolean;
  /** Trace transmitted frames. Default true. */
  tx?: boolean;
  /** Only frames for which this returns true are written. */
  filter?: (bytes: Uint8Array, off: number, len: number) => boolean;
  /** Stop writing after this many frames (in total). Default unlimited. */
  limit?: number;
  /** Close the writer when the driver is closed. Default false (the caller owns the writer). */
  closeWriter?: boolean;
}

export class TraceDriver implements Driver {
  readonly kind: string;
  readonly name: string;
  /** Frames written to the capture. */
  traced = 0;
  private readonly doRx: boolean;
  private readonly doTx: boolean;
  private readonly filter: TraceOptions['filter'];
  private readonly limit: number;
  private readonly closeWriter: boolean;
  // offsets and lengths of a TX burst, saved before the inner driver may reuse the burst

  constructor(readonly inner: Driver, readonly writer: PcapWriter, opts: TraceOptions = {}) {
    this.kind = `trace(${inner.kind})`;
    this.name = inner.name;
    this.doRx = opts.rx ?? true;
    this.doTx = opts.tx ?? true;
    this.filter = opts.filter;
    this.limit = opts.limit ?? Infinity;
    this.closeWriter = opts.closeWriter ?? false;
    if (inner.onReadable) this.onReadable = (cb) => inner.onReadable!(cb);
  }

  get pool(): FramePool { return this.inner.pool; }
  get mac(): Uint8Array { return this.inner.mac; }
  get mtu(): number { return this.inner.mtu; }

  onReadable?: (cb: () => void) => boolean;

  private record(bytes: Uint8Array, off: number, len: number, now: number): void {
    if (this.traced >= this.limit) return;
    if (this.filter && !this.filter(bytes, off, len)) return;
    this.writer.write(bytes, off, len, now);
    this.traced++;
  }

  rx(out: Burst, now: number): number {
    const start = out.n;
    const n = this.inner.rx(out, now);
    if (this.doRx && n > 0 && this.traced < this.limit) {
      const bytes = this.inner.pool.bytes;
      for (let i = start; i < start + n; i++) this.record(bytes, out.off[i]!, out.len[i]!, now);
    }
    return n;
  }

  tx(b: Burst, now: number): number {
    if (!this.doTx || this.traced >= this.limit) return this.inner.tx(b, now);
    const k = this.inner.tx(b, now);
    // Drivers leave the caller's burst as it is and do not reuse accepted frames before the next
    // allocation: the first k entries still describe intact bytes.
    const bytes = this.inner.pool.bytes;
    for (let i = 0; i < k; i++) this.record(bytes, b.off[i]!, b.len[i]!, now);
    return k;
  }

  service(now: number): void { this.inner.service(now); }
  nextDeadline(): number { return this.inner.nextDeadline(); }

  stats(): DriverStats {
    const s = this.inner.stats();
    return { ...s, traced: this.traced };
  }

  close(): void {
    this.inner.close();
    if (this.closeWriter) this.writer.close();
    else if (!this.writer.isClosed) this.writer.flush();
  }
}

export function traceDriver(inner: Driver, writer: PcapWriter, opts?: TraceOptions): TraceDriver {
  return new TraceDriver(inner, writer, opts);
}

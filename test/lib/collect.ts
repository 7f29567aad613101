/** Receiving from an AF_XDP driver in lab tests: frames copied out of the UMEM, every frame freed. */
import * as assert from 'uvu/assert';
import { AfxdpDriver } from '../../driver/afxdp';
import { Burst } from '../../driver/types';

/**
 * Receives from `d` in the background (readable callback plus a 50 ms tick) until stop(): every
 * frame matching `pred` is copied into `frames`, every frame is freed.
 */
export class Collector {
  readonly frames: Buffer[] = [];
  private readonly b = new Burst();
  private readonly tick: NodeJS.Timeout;
  private stopped = false;
  private waiter: (() => void) | null = null;
  private want = Infinity;

  constructor(private readonly d: AfxdpDriver, private readonly pred: (f: Buffer) => boolean = () => true) {
    this.tick = setInterval(() => this.drain(), 50);
    assert.ok(d.onReadable(() => this.drain()), 'onReadable is supported');
  }

  private drain(): void {
    if (this.stopped) return;
    const { d, b } = this;
    d.service(Date.now() * 1000);
    while (d.rx(b, Date.now() * 1000) > 0) {
      for (let i = 0; i < b.n; i++) {
        const f = Buffer.from(d.pool.bytes.subarray(b.off[i]!, b.off[i]! + b.len[i]!));
        if (this.pred(f)) this.frames.push(f);
        d.pool.free(b.frame[i]!);
      }
      b.clear();
    }
    if (this.frames.length >= this.want) this.waiter?.();
  }

  /** Resolves when `want` frames matched or `ms` passed, whichever comes first. */
  wait(want: number, ms: number): Promise<Buffer[]> {
    return new Promise((resolve) => {
      const t = setTimeout(() => done(), ms);
      const done = () => { clearTimeout(t); this.waiter = null; this.want = Infinity; resolve(this.frames); };
      this.want = want;
      this.waiter = done;
      this.drain();
    });
  }

  /** Stops receiving; returns the frames kept. */
  stop(): Buffer[] {
    if (!this.stopped) {
      this.drain();
      this.stopped = true;
      clearInterval(this.tick);
      this.d.offReadable();
      this.waiter?.();
    }
    return this.frames;
  }
}

/** Receives until `want` frames matching `pred` arrived (or `ms` passed); copies them, frees all. */
export async function collect(d: AfxdpDriver, pred: (f: Buffer) => boolean, want: number, ms: number): Promise<Buffer[]> {
  const c = new Collector(d, pred);
  await c.wait(want, ms);
  return c.stop();
}

/**
 * The virtual-time loop of the two-host test worlds: both runtimes step at the same virtual time,
 * the Node event loop turns between steps (socket callbacks, promises), and time jumps to the next
 * deadline (a runtime's timers or a frame on the memory wire) when nothing is left to do now.
 */
import type { MemoryLink } from '../../driver/memory';
import type { Runtime } from '../../stack/runtime';

export class VirtualClock {
  now = 0;
  /** Set by an engine's output hook: something was queued, step again before moving time. */
  dirty = false;

  readonly read = (): number => this.now;
  readonly kick = (): void => { this.dirty = true; };

  /**
   * Steps `runtimes` until `done()` or `maxUs` of virtual time passed (time then stands at the
   * end; `finalStep` steps once more there). Bounded to a million rounds.
   */
  async run(runtimes: readonly Runtime[], link: MemoryLink, done: () => boolean, maxUs = 60_000_000, finalStep = false): Promise<boolean> {
    const end = this.now + maxUs;
    const turn = () => new Promise<void>((r) => setImmediate(r));
    for (let i = 0; i < 1_000_000; i++) {
      this.dirty = false;
      let next = Infinity;
      for (const r of runtimes) next = Math.min(next, r.step(this.now));
      await turn();
      if (done()) return true;
      if (this.dirty) continue;
      for (const r of runtimes) next = Math.min(next, r.step(this.now));
      next = Math.min(next, link.nextDeadline());
      if (this.dirty) continue;
      if (next === Infinity || next > end) {
        if (end > this.now) this.now = end;
        if (finalStep) for (const r of runtimes) r.step(this.now);
        return done();
      }
      this.now = next > this.now ? next : Math.min(Math.floor(this.now / 1000) * 1000 + 1000, end + 1);
    }
    return done();
  }
}

/**
 * Logical block provisioning state (SBC-3 "Logical block provisioning"): which LBAs are mapped and which are
 * deallocated, for GET LBA STATUS. One bit per granule of `granularity` blocks (1 unless the
 * bitmap would pass 8 MiB); a write maps every granule it touches, an unmap deallocates only the
 * granules it covers whole (SBC-3 unmap: an LBA in a partly unmapped granule may stay mapped —
 * it still reads as zeros, the backend zeroes it).
 */

const MAX_BITMAP_BYTES = 8 << 20;

export class ProvisionMap {
  /** Blocks per bit (a power of two). */
  readonly granularity: number;
  private readonly bits: Uint32Array;
  private readonly granules: number;

  constructor(readonly numBlocks: number, initiallyMapped: boolean) {
    let g = 1;
    while (Math.ceil(numBlocks / g / 8) > MAX_BITMAP_BYTES) g *= 2;
    this.granularity = g;
    this.granules = Math.ceil(numBlocks / g);
    this.bits = new Uint32Array(Math.ceil(this.granules / 32));
    if (initiallyMapped) this.setGranules(0, this.granules, true);
  }

  /**
   * A map for a grown device: the old LBAs keep their state, the new ones start mapped or
   * deallocated as `newMapped` says.
   */
  static grown(old: ProvisionMap, numBlocks: number, newMapped: boolean): ProvisionMap {
    const m = new ProvisionMap(numBlocks, newMapped);
    // Bounded by the number of runs in the old map.
    for (let lba = 0; lba < old.numBlocks;) {
      const r = old.run(lba, old.numBlocks - lba);
      if (r.mapped) m.markMapped(lba, r.blocks); else m.markDeallocated(lba, r.blocks);
      lba += r.blocks;
    }
    return m;
  }

  private setGranules(first: number, end: number, on: boolean): void {
    let i = first;
    while (i < end) {
      const w = i >>> 5;
      const b = i & 31;
      if (b === 0 && end - i >= 32) {
        this.bits[w] = on ? 0xffffffff : 0;
        i += 32;
        continue;
      }
      if (on) this.bits[w] |= 1 << b; else this.bits[w] &= ~(1 << b);
      i++;
    }
  }

  private get(i: number): boolean {
    return (this.bits[i >>> 5] & (1 << (i & 31))) !== 0;
  }

  /** A write to [lba, lba + n) maps every granule it touches. */
  markMapped(lba: number, n: number): void {
    if (n <= 0) return;
    const g = this.granularity;
    this.setGranules(Math.floor(lba / g), Math.ceil((lba + n) / g), true);
  }

  /** An unmap of [lba, lba + n) deallocates the granules it covers whole. */
  markDeallocated(lba: number, n: number): void {
    if (n <= 0) return;
    const g = this.granularity;
    const first = Math.ceil(lba / g);
    // The last granule may be short (end of the device): covering up to numBlocks covers it.
    const end = lba + n >= this.numBlocks ? this.granules : Math.floor((lba + n) / g);
    if (end > first) this.setGranules(first, end, false);
  }

  isMapped(lba: number): boolean {
    return this.get(Math.floor(lba / this.granularity));
  }

  /** The state at `lba` and how many blocks from `lba` share it (up to `limit` blocks). */
  run(lba: number, limit: number): { mapped: boolean; blocks: number } {
    const g = this.granularity;
    let i = Math.floor(lba / g);
    const mapped = this.get(i);
    const want = mapped ? 0xffffffff : 0;
    const stopAt = Math.min(this.granules, Math.ceil(Math.min(this.numBlocks, lba + limit) / g));
    i++;
    while (i < stopAt) {
      if ((i & 31) === 0 && i + 32 <= stopAt && this.bits[i >>> 5] === want) { i += 32; continue; }
      if (this.get(i) !== mapped) break;
      i++;
    }
    const endBlock = Math.min(this.numBlocks, lba + limit, i * g);
    return { mapped, blocks: endBlock - lba };
  }
}

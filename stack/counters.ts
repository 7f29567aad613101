/** Packet/byte counters and drops by reason, kept per device, per link and per virtual server. */
import { Drop, DROP_NAMES } from '../protocols/drop';

/**
 * Drops as every JSON view reports them (`show counters`, `show vs`, replay, per shard): the total
 * and the count of each reason that occurred (reasons with no drop are left out).
 */
export interface DropsView {
  total: number;
  reasons: Record<string, number>;
}

/** A reason → count map (a driver's drops) as a DropsView. */
export function dropsView(reasons: Record<string, number>): DropsView {
  let total = 0;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(reasons)) {
    if (typeof v !== 'number' || !v) continue;
    out[k] = v;
    total += v;
  }
  return { total, reasons: out };
}

export interface CountersView {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  drops: DropsView;
}

export class Counters {
  rxPackets = 0;
  rxBytes = 0;
  txPackets = 0;
  txBytes = 0;
  readonly drops = new Float64Array(Drop.Count);
  /** Encapsulated packets whose inner packet went in to a VIP (links only; see `show vips`). */
  decapsulated = 0;

  drop(reason: Drop, n = 1): void {
    this.drops[reason] += n;
  }

  get dropTotal(): number {
    let s = 0;
    for (let i = 1; i < this.drops.length; i++) s += this.drops[i]!;
    return s;
  }

  /** Drops as the JSON views report them: the total and each reason that occurred. */
  dropsView(): DropsView {
    const reasons: Record<string, number> = {};
    let total = 0;
    for (let i = 1; i < this.drops.length; i++) {
      const n = this.drops[i]!;
      if (!n) continue;
      reasons[DROP_NAMES[i] ?? `drop-${i}`] = n;
      total += n;
    }
    return { total, reasons };
  }

  /** Plain object for `show counters --json` and tests. */
  toJSON(): CountersView {
    return { rxPackets: this.rxPackets, rxBytes: this.rxBytes, txPackets: this.txPackets, txBytes: this.txBytes, drops: this.dropsView() };
  }

  add(o: Counters): void {
    this.rxPackets += o.rxPackets;
    this.rxBytes += o.rxBytes;
    this.txPackets += o.txPackets;
    this.txBytes += o.txBytes;
    this.decapsulated += o.decapsulated;
    for (let i = 0; i < this.drops.length; i++) this.drops[i] += o.drops[i]!;
  }

  /** Zeroes every count (`xdpstack clear counters`). */
  reset(): void {
    this.rxPackets = 0;
    this.rxBytes = 0;
    this.txPackets = 0;
    this.txBytes = 0;
    this.decapsulated = 0;
    this.drops.fill(0);
  }
}

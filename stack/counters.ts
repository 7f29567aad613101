/** Packet/byte counters and drops by reason, kept per device, per link and per virtual server. */
import { Drop, DROP_NAMES } from '../protocols/drop';

export class Counters {
  rxPackets = 0;
  rxBytes = 0;
  txPackets = 0;
  txBytes = 0;
  readonly drops = new Float64Array(Drop.Count);

  drop(reason: Drop, n = 1): void {
    this.drops[reason] += n;
  }

  get dropTotal(): number {
    let s = 0;
    for (let i = 1; i < this.drops.length; i++) s += this.drops[i]!;
    return s;
  }

  /** Plain object for `show counters --json` and tests: only non-zero drop reasons appear. */
  toJSON(): { rxPackets: number; rxBytes: number; txPackets: number; txBytes: number; drops: Record<string, number> } {
    const drops: Record<string, number> = {};
    for (let i = 1; i < this.drops.length; i++) if (this.drops[i]) drops[DROP_NAMES[i] ?? `drop-${i}`] = this.drops[i]!;
    return { rxPackets: this.rxPackets, rxBytes: this.rxBytes, txPackets: this.txPackets, txBytes: this.txBytes, drops };
  }

  add(o: Counters): void {
    this.rxPackets += o.rxPackets;
    this.rxBytes += o.rxBytes;
    this.txPackets += o.txPackets;
    this.txBytes += o.txBytes;
    for (let i = 0; i < this.drops.length; i++) this.drops[i] += o.drops[i]!;
  }
}

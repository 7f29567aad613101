/**
 * Unit attention conditions of one logical unit, per I_T nexus (SAM-5 "Unit attention
 * conditions", with UA_INTLCK_CTRL = 00b in the Control mode page, SPC-4). A nexus seen for the first time gets
 * POWER ON, RESET, OR BUS DEVICE RESET OCCURRED (29h/00h); later events queue behind it and are
 * reported one per command, oldest first.
 */
import { Asc } from './sense';

/** More queued conditions than this are dropped (the oldest ones are still reported). */
const MAX_QUEUED = 8;

export class UnitAttentions {
  private readonly q = new Map<string, Asc[]>();

  /** Registers `nexus` (a new nexus starts with the power-on condition). */
  seen(nexus: string): void {
    if (!this.q.has(nexus)) this.q.set(nexus, [Asc.PowerOnResetOccurred]);
  }

  /** The condition to report to `nexus`, removed from its queue; undefined when none is pending. */
  take(nexus: string): Asc | undefined {
    const list = this.q.get(nexus);
    if (!list || list.length === 0) return undefined;
    return list.shift();
  }

  pending(nexus: string): readonly Asc[] {
    return this.q.get(nexus) ?? [];
  }

  /** Establishes `asc` for `nexus` if it is known (an unknown nexus gets power-on on arrival). */
  add(nexus: string, asc: Asc): void {
    const list = this.q.get(nexus);
    if (!list) return;
    // SAM-5 (Unit attention conditions): a reset condition supersedes the conditions queued before it.
    if ((asc >>> 8) === 0x29) { list.length = 0; list.push(asc); return; }
    if (list.includes(asc) || list.length >= MAX_QUEUED) return;
    list.push(asc);
  }

  /** Establishes `asc` for every known nexus except `except`. */
  addAll(asc: Asc, except?: string): void {
    for (const n of this.q.keys()) if (n !== except) this.add(n, asc);
  }

  /** The nexus ended: its conditions go; it starts again with power-on if it returns. */
  lost(nexus: string): void {
    this.q.delete(nexus);
  }

  nexuses(): IterableIterator<string> {
    return this.q.keys();
  }
}

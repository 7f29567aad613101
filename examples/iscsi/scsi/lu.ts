/**
 * One logical unit: its backend and geometry, identity (serial, NAA identifier), mode pages,
 * unit attentions, reservations, power state and the gate that orders its I/O.
 */
import { createHash } from 'node:crypto';
import { LunSpec } from './types';
import { BlockBackend } from '../lun/backend';
import { RamBackend } from '../lun/ram';
import { FileBackend } from '../lun/file';
import { ProvisionMap } from '../lun/provision';
import { ModeState, defaultMode } from './modepages';
import { UnitAttentions } from './ua';
import { Reservations } from './reservations';
import { Asc } from './sense';

/**
 * Lets I/O commands run concurrently (SIMPLE tasks, which SAM-5 lets the device server reorder)
 * while an exclusive one (COMPARE AND WRITE, ORWRITE, an ORDERED task) runs alone: it waits for
 * the I/O before it and holds back the I/O after it. First come, first served.
 */
export class IoGate {
  private active = 0;
  private exclusive = false;
  private readonly queue: { exclusive: boolean; run: () => void }[] = [];
  private pumping = false;

  enter(exclusive: boolean, run: () => void): void {
    if (this.queue.length === 0 && this.admits(exclusive)) { this.start(exclusive, run); return; }
    this.queue.push({ exclusive, run });
  }

  leave(exclusive: boolean): void {
    this.active--;
    if (exclusive) this.exclusive = false;
    this.pump();
  }

  /** Commands waiting (for tests and statistics). */
  get waiting(): number { return this.queue.length; }

  private admits(exclusive: boolean): boolean {
    return exclusive ? this.active === 0 : !this.exclusive;
  }

  private start(exclusive: boolean, run: () => void): void {
    this.active++;
    if (exclusive) this.exclusive = true;
    run();
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    // Bounded by the queue length: each pass starts one waiting command or stops.
    while (this.queue.length > 0 && this.admits(this.queue[0].exclusive)) {
      const next = this.queue.shift()!;
      this.start(next.exclusive, next.run);
    }
    this.pumping = false;
  }
}

/** Supported logical block sizes. */
export const BLOCK_SIZES: readonly number[] = [512, 4096];

export class LogicalUnit {
  readonly blockSize: number;
  /** Capacity in blocks (grows with resize). */
  numBlocks: number;
  readonly backend: BlockBackend;
  provision: ProvisionMap;
  /** Unit serial number (VPD page 80h): printable ASCII. */
  readonly serial: string;
  /** NAA locally assigned identifier (VPD page 83h, NAA 3h): 8 bytes. */
  readonly naa: Uint8Array;
  mode: ModeState = defaultMode();
  /** Stopped by START STOP UNIT (SBC-3 power conditions): media access answers NOT READY. */
  stopped = false;
  readonly ua = new UnitAttentions();
  readonly res = new Reservations();
  /** I_T nexuses holding a PREVENT ALLOW MEDIUM REMOVAL prevent (SBC-3). */
  readonly prevent = new Set<string>();
  readonly gate = new IoGate();

  constructor(readonly lun: number, spec: LunSpec, iqn: string) {
    const bs = spec.blockSize ?? 512;
    if (!BLOCK_SIZES.includes(bs)) throw new Error(`LUN ${lun}: block size ${bs} is not 512 or 4096`);
    if (!Number.isSafeInteger(spec.size) || spec.size <= 0 || spec.size % bs !== 0) {
      throw new Error(`LUN ${lun}: size ${spec.size} is not a positive multiple of ${bs}`);
    }
    this.blockSize = bs;
    this.numBlocks = spec.size / bs;
    this.backend = spec.file ? new FileBackend(spec.file, spec.size) : new RamBackend(spec.size);
    // A fresh RAM LUN has nothing mapped; a file's earlier contents are unknown: all mapped.
    this.provision = new ProvisionMap(this.numBlocks, this.backend.kind === 'file');
    const digest = createHash('sha256').update(`${iqn}\0${lun}\0${spec.serial ?? ''}`).digest();
    if (spec.serial !== undefined) {
      if (!/^[\x21-\x7e]{1,32}$/.test(spec.serial)) throw new Error(`LUN ${lun}: serial must be 1-32 printable ASCII characters`);
      this.serial = spec.serial;
    } else {
      this.serial = digest.subarray(0, 12).toString('hex');
    }
    // SPC-4 NAA locally assigned designator: NAA = 3h in the top four bits, 60 bits assigned here.
    this.naa = new Uint8Array(digest.subarray(12, 20));
    this.naa[0] = 0x30 | (this.naa[0] & 0x0f);
  }

  /**
   * Grows the unit to `size` bytes: SBC-3 "CAPACITY DATA HAS CHANGED" (2Ah/09h) for every I_T
   * nexus. Shrinking would cut data away under the initiators: refused (throws).
   */
  resize(size: number): void {
    if (!Number.isSafeInteger(size) || size % this.blockSize !== 0 || size < this.numBlocks * this.blockSize) {
      throw new Error(`LUN ${this.lun}: new size ${size} must be a multiple of ${this.blockSize} and not smaller`);
    }
    if (size === this.numBlocks * this.blockSize) return;
    this.backend.grow(size);
    const blocks = size / this.blockSize;
    // New RAM space is unwritten; a file may already have held data past the old size.
    this.provision = ProvisionMap.grown(this.provision, blocks, this.backend.kind === 'file');
    this.numBlocks = blocks;
    this.ua.addAll(Asc.CapacityDataHasChanged);
  }

  /**
   * Logical unit reset (SAM-5 "Logical unit reset"): mode parameters back to their defaults
   * (nothing is saved), a RESERVE(6) reservation released, the unit started, prevents cleared.
   * Persistent reservations are kept (SPC-4 "Persistent reservations").
   */
  reset(): void {
    this.mode = defaultMode();
    this.stopped = false;
    this.res.releaseSpc2();
    this.prevent.clear();
  }

  /** The I_T nexus ended (SPC-2: its RESERVE(6) reservation ends; SBC-3: its prevent ends). */
  nexusLost(nexus: string): void {
    this.ua.lost(nexus);
    this.res.releaseSpc2(nexus);
    this.prevent.delete(nexus);
  }
}

/**
 * One command in execution: its logical unit, CDB and Data-Out, and the ways it ends (data and
 * GOOD, a CHECK CONDITION with sense, another status). Ends exactly once; an I/O command holds the
 * logical unit's gate until then.
 */
import { ScsiCommand, ScsiResult, ScsiStatus } from './types';
import { Check, buildSense, INTERNAL_FAILURE } from './sense';
import { totalLength } from './dataout';
import type { LogicalUnit } from './lu';
import { Access } from './reservations';

/** A supported command (one operation code, or one service action of it). */
export interface CommandDef {
  op: number;
  /** Service action (byte 1 bits 4..0) for the commands that have them. */
  sa?: number;
  name: string;
  /** CDB USAGE DATA (SPC-4 REPORT SUPPORTED OPERATION CODES): which bits this device server looks at, byte by byte. */
  usage: readonly number[];
  access: Access;
  /** Needs a started unit (a stopped unit answers NOT READY, SBC-3 power conditions). */
  media: boolean;
  /** Reports (and clears) a pending unit attention; false for INQUIRY, REPORT LUNS, REQUEST SENSE. */
  ua: boolean;
  run(t: Task): void;
}

/** The target-wide facts a command may need. */
export interface TargetInfo {
  readonly iqn: string;
  readonly vendor: string;
  readonly product: string;
  readonly revision: string;
  readonly luns: readonly number[];
  readonly commands: readonly CommandDef[];
}

export class Task {
  /** Data-Out bytes the CDB asks for (reported as the transfer length when it differs). */
  cdbOut = 0;
  private ended = false;
  private gate: boolean | undefined;

  constructor(
    readonly target: TargetInfo,
    readonly lu: LogicalUnit,
    readonly cmd: ScsiCommand,
    private readonly cb: (r: ScsiResult) => void,
    private readonly count: (reason: string) => void,
  ) {}

  get cdb(): Uint8Array { return this.cmd.cdb; }
  get nexus(): string { return this.cmd.nexus; }
  get dataOutLength(): number { return totalLength(this.cmd.dataOut); }
  get done(): boolean { return this.ended; }

  /** Runs `fn` once the logical unit lets an I/O start (exclusive: alone, e.g. COMPARE AND WRITE). */
  io(exclusive: boolean, fn: () => void): void {
    this.lu.gate.enter(exclusive, () => {
      this.gate = exclusive;
      if (this.ended) { this.release(); return; }
      // A throwing handler must not keep the gate: it ends the command (HARDWARE ERROR).
      try { fn(); } catch { this.fail(INTERNAL_FAILURE); }
    });
  }

  private release(): void {
    if (this.gate === undefined) return;
    const g = this.gate;
    this.gate = undefined;
    this.lu.gate.leave(g);
  }

  private finish(r: ScsiResult): void {
    if (this.ended) return;
    this.ended = true;
    const c = this.cmd;
    // The Data-Out length the CDB asked for, when it differs from the Expected Data Transfer
    // Length (the iSCSI layer reports the residual, RFC 7143 11.4.5.1). A command that failed
    // transferred what the iSCSI layer collected; it has no residual of its own.
    const ok = r.status === ScsiStatus.Good || r.status === ScsiStatus.ConditionMet;
    if (ok && (c.write || this.cdbOut > 0) && this.cdbOut !== c.expectedLength) r.transferLength = this.cdbOut;
    // Answer first, then let waiting I/O in: the result goes out before anything queued behind it.
    try { this.cb(r); } finally { this.release(); }
  }

  /**
   * GOOD, with parameter data cut to the allocation length (SPC-4 "Allocation length": the device
   * server returns no more than that, and that is not an error).
   */
  good(data?: Uint8Array | readonly Uint8Array[], allocation?: number): void {
    if (data === undefined) { this.finish({ status: ScsiStatus.Good }); return; }
    if (data instanceof Uint8Array) {
      const n = allocation === undefined ? data.length : Math.min(allocation, data.length);
      this.finish({ status: ScsiStatus.Good, dataIn: n > 0 ? [data.subarray(0, n)] : [] });
      return;
    }
    this.finish({ status: ScsiStatus.Good, dataIn: data });
  }

  /** A status without data or sense (RESERVATION CONFLICT, CONDITION MET). */
  status(s: ScsiStatus, reason?: string): void {
    if (reason) this.count(reason);
    this.finish({ status: s });
  }

  /** CHECK CONDITION with sense data in the logical unit's format (D_SENSE, SPC-4 Control mode page). */
  fail(c: Check): void {
    this.count(c.reason);
    this.finish({ status: ScsiStatus.CheckCondition, sense: buildSense(c, this.lu.mode.dSense) });
  }
}

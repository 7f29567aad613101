/**
 * A SCSI target device (SAM-5): its logical units, command dispatch and the device side of task
 * management. Every command passes the same checks in this order before it runs:
 *   1. a LUN that does not exist: INQUIRY answers peripheral qualifier 011b, REPORT LUNS the
 *      inventory, REQUEST SENSE LOGICAL UNIT NOT SUPPORTED as data; anything else CHECK
 *      CONDITION, ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED (SAM-5 "Incorrect logical unit");
 *   2. a pending unit attention, reported and cleared (not for INQUIRY, REPORT LUNS, REQUEST SENSE);
 *   3. an unsupported operation code: INVALID COMMAND OPERATION CODE; an unsupported service
 *      action: INVALID FIELD IN CDB pointing at byte 1;
 *   4. NACA or LINK set in the control byte: INVALID FIELD IN CDB (SAM-5: ACA is not supported);
 *   5. a reservation conflict: RESERVATION CONFLICT status;
 *   6. a stopped unit for a media access command: NOT READY, INITIALIZING COMMAND REQUIRED.
 */
import { ScsiCommand, ScsiResult, ScsiStatus, ScsiTarget, TargetSpec } from './types';
import { LogicalUnit } from './lu';
import { Task, TargetInfo, CommandDef } from './task';
import { CommandIndex, commandTable } from './commands';
import { cdbLength, Op } from './cdb';
import {
  Asc, Check, SenseKey, buildSense, invalidCdb, INVALID_OPCODE, INTERNAL_FAILURE, LUN_NOT_SUPPORTED, NOT_READY_CLOSED,
  NOT_READY_STOPPED,
} from './sense';
import { requestSenseNoLun, reportLuns, standardInquiry } from './spc';
import { u16 } from './cdb';

export interface ScsiTargetOptions {
  /** T10 VENDOR IDENTIFICATION (8 ASCII characters at most). */
  vendor?: string;
  /** PRODUCT IDENTIFICATION (16 ASCII characters at most). */
  product?: string;
  log?: (m: string) => void;
}

export class ScsiTargetDevice implements ScsiTarget, TargetInfo {
  readonly iqn: string;
  readonly vendor: string;
  readonly product: string;
  readonly revision = '0100';
  readonly luns: readonly number[];
  readonly commands: readonly CommandDef[];
  /** Commands answered with something other than GOOD, by reason (SPC-4 sense reasons, conflicts). */
  readonly counters = new Map<string, number>();
  private readonly units = new Map<number, LogicalUnit>();
  private readonly index: CommandIndex;
  private readonly log: (m: string) => void;
  private closed = false;

  constructor(spec: TargetSpec, opts: ScsiTargetOptions = {}) {
    this.iqn = spec.iqn;
    this.vendor = (opts.vendor ?? 'XDPSTACK').slice(0, 8);
    this.product = (opts.product ?? 'iSCSI disk').slice(0, 16);
    this.log = opts.log ?? (() => undefined);
    for (const l of spec.luns) {
      if (!Number.isInteger(l.lun) || l.lun < 0 || l.lun > 16383) throw new Error(`LUN ${l.lun}: must be 0..16383`);
      if (this.units.has(l.lun)) throw new Error(`LUN ${l.lun}: defined twice`);
      try {
        this.units.set(l.lun, new LogicalUnit(l.lun, l, spec.iqn));
      } catch (e) {
        for (const u of this.units.values()) u.backend.close();
        throw e;
      }
    }
    this.luns = [...this.units.keys()].sort((a, b) => a - b);
    this.commands = commandTable();
    this.index = new CommandIndex(this.commands);
  }

  /** The logical unit `lun` (tests and statistics). */
  unit(lun: number): LogicalUnit | undefined {
    return this.units.get(lun);
  }

  private count(reason: string): void {
    this.counters.set(reason, (this.counters.get(reason) ?? 0) + 1);
  }

  execute(cmd: ScsiCommand, done: (r: ScsiResult) => void): void {
    let answered = false;
    const once = (r: ScsiResult): void => {
      if (answered) return;
      answered = true;
      done(r);
    };
    try {
      this.dispatch(cmd, once);
    } catch (e) {
      // A bug must not take the target down: the command ends with HARDWARE ERROR, INTERNAL
      // TARGET FAILURE (SPC-4), counted and logged.
      this.count(INTERNAL_FAILURE.reason);
      this.log(`scsi: ${cmd.cdb?.[0]?.toString(16)} on LUN ${cmd.lun}: ${(e as Error).stack ?? e}`);
      once({ status: ScsiStatus.CheckCondition, sense: buildSense(INTERNAL_FAILURE, false) });
    }
  }

  private fail(c: Check, done: (r: ScsiResult) => void, descriptor = false): void {
    this.count(c.reason);
    done({ status: ScsiStatus.CheckCondition, sense: buildSense(c, descriptor) });
  }

  private dispatch(cmd: ScsiCommand, done: (r: ScsiResult) => void): void {
    const cdb = cmd.cdb;
    if (!(cdb instanceof Uint8Array) || cdb.length < 6) return this.fail(INVALID_OPCODE, done);
    const lu = this.units.get(cmd.lun);
    if (!lu) return this.noLun(cmd, done);
    lu.ua.seen(cmd.nexus);
    const found = this.index.find(cdb);
    const def = typeof found === 'object' ? found : undefined;
    const dSense = lu.mode.dSense;
    if (!def || def.ua) {
      const asc = lu.ua.take(cmd.nexus);
      if (asc !== undefined) return this.fail(unitAttention(asc), done, dSense);
    }
    if (found === undefined) return this.fail(INVALID_OPCODE, done, dSense);
    // SPC-4 REPORT SUPPORTED OPERATION CODES notes targets differ here; libiscsi accepts INVALID
    // FIELD IN CDB with the field pointer on the service action byte.
    if (found === 'sa') return this.fail(invalidCdb(1, 4), done, dSense);
    const d = found;
    const len = cdbLength(d.op);
    if (len > cdb.length) return this.fail(INVALID_OPCODE, done, dSense);
    // Control byte: NACA (bit 2) = 1 without ACA support, and the obsolete LINK (bit 0): INVALID
    // FIELD IN CDB (SAM-5 "Control byte").
    const control = cdb[len - 1];
    if (control & 0x05) return this.fail(invalidCdb(len - 1, (control & 0x04) ? 2 : 0), done, dSense);
    const t = new Task(this, lu, cmd, done, (r) => this.count(r));
    if (lu.res.conflicts(cmd.nexus, d.access)) return t.status(ScsiStatus.ReservationConflict, 'reservation-conflict');
    if (this.closed) return t.fail(NOT_READY_CLOSED);
    if (d.media && lu.stopped) return t.fail(NOT_READY_STOPPED);
    d.run(t);
  }

  /** Commands to a LUN that does not exist (SAM-5 "Incorrect logical unit selection"). */
  private noLun(cmd: ScsiCommand, done: (r: ScsiResult) => void): void {
    const cdb = cmd.cdb;
    switch (cdb[0]) {
      case Op.Inquiry:
        // SPC-4 INQUIRY: peripheral qualifier 011b, device type 1Fh for a LUN that is not there.
        if ((cdb[1] & 0x03) === 0 && cdb[2] === 0) {
          const data = standardInquiry(this, null);
          const n = Math.min(u16(cdb, 3), data.length);
          return done({ status: ScsiStatus.Good, dataIn: n > 0 ? [data.subarray(0, n)] : [] });
        }
        break;
      case Op.ReportLuns: {
        const r = reportLuns(this, cdb);
        if (r.bad !== undefined) return this.fail(invalidCdb(r.bad), done);
        const data = r.data!.subarray(0, Math.min(r.alloc, r.data!.length));
        return done({ status: ScsiStatus.Good, dataIn: [data] });
      }
      case Op.RequestSense:
        return done({ status: ScsiStatus.Good, dataIn: [requestSenseNoLun(cdb)] });
      default:
        break;
    }
    this.fail(LUN_NOT_SUPPORTED, done);
  }

  /**
   * LOGICAL UNIT RESET (SAM-5): the unit returns to its power-on state (see LogicalUnit.reset)
   * and every I_T nexus gets a unit attention, BUS DEVICE RESET FUNCTION OCCURRED (29h/03h).
   */
  lunReset(lun: number, nexus: string): void {
    const lu = this.units.get(lun);
    if (!lu) return;
    lu.reset();
    lu.ua.addAll(Asc.BusDeviceResetFunctionOccurred);
    this.log(`scsi: LUN ${lun} reset by ${nexus}`);
  }

  /**
   * TARGET WARM/COLD RESET (SAM-5 hard reset): every logical unit resets and every I_T nexus gets
   * POWER ON, RESET, OR BUS DEVICE RESET OCCURRED (29h/00h).
   */
  targetReset(nexus: string): void {
    for (const lu of this.units.values()) {
      lu.reset();
      lu.ua.addAll(Asc.PowerOnResetOccurred);
    }
    this.log(`scsi: target reset by ${nexus}`);
  }

  /** Grows LUN `lun` to `size` bytes (see LogicalUnit.resize); throws for an unknown LUN or a smaller size. */
  resize(lun: number, size: number): void {
    const lu = this.units.get(lun);
    if (!lu) throw new Error(`no LUN ${lun}`);
    lu.resize(size);
  }

  nexusLost(nexus: string): void {
    for (const lu of this.units.values()) lu.nexusLost(nexus);
  }

  flush(): Promise<void> {
    const all = [...this.units.values()].map((lu) => new Promise<void>((resolve, reject) => {
      lu.backend.flush((err) => (err && err.code !== 'EBADF' ? reject(err) : resolve()));
    }));
    return Promise.all(all).then(() => undefined);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const lu of this.units.values()) lu.backend.close();
  }
}

function unitAttention(asc: Asc): Check {
  return { key: SenseKey.UnitAttention, asc, reason: 'unit-attention' };
}

/** Creates the SCSI target for `spec` (opens or creates its file backends; throws on a bad spec). */
export function createScsiTarget(spec: TargetSpec, opts?: ScsiTargetOptions): ScsiTargetDevice {
  return new ScsiTargetDevice(spec, opts);
}

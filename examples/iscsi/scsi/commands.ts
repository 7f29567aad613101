/**
 * The commands this target supports: operation code (and service action), CDB USAGE DATA for
 * REPORT SUPPORTED OPERATION CODES (SPC-4: a one for every CDB bit the device server evaluates;
 * GROUP NUMBER and the PROTECT fields are treated as reserved, the control byte's NACA and LINK
 * are not supported), how reservations treat it, whether it needs a started unit, and whether a
 * unit attention is reported before it (SAM-5: not for INQUIRY, REPORT LUNS, REQUEST SENSE).
 */
import { CommandDef, Task } from './task';
import { Access } from './reservations';
import { Op, SaIn16, SaMaintIn } from './cdb';
import { inquiry, reportLunsCommand, reportSupportedOpcodes, requestSense, testUnitReady } from './spc';
import { modeSelect, modeSense } from './mode';
import { persistentReserveIn, persistentReserveOut, prInServiceActions, prOutServiceActions, release, reserve } from './pr';
import {
  preFetch, preventAllow, read, readCapacity10, readCapacity16, startStopUnit, synchronizeCache, verify, write,
  writeAndVerify,
} from './sbc';
import { getLbaStatus, unmapCommand, writeSame } from './sbc-provision';
import { compareAndWrite, orWrite } from './sbc-atomic';

const F = 0xff;
const LBA4 = [F, F, F, F];
const LBA8 = [F, F, F, F, F, F, F, F];
/** Byte 1 of the read/write family: DPO (bit 4) and FUA (bit 3). */
const DPO_FUA = 0x18;
/** VERIFY: DPO and the two BYTCHK bits; WRITE AND VERIFY: DPO and BYTCHK. */
const VERIFY_BITS = 0x16;
const WAV_BITS = 0x12;

function def(
  op: number, name: string, usage: number[], access: Access, media: boolean, run: (t: Task) => void,
  extra: { sa?: number; ua?: boolean } = {},
): CommandDef {
  return { op, sa: extra.sa, name, usage, access, media, ua: extra.ua ?? true, run };
}

/** The table, in operation code order (the order REPORT SUPPORTED OPERATION CODES lists it in). */
export function commandTable(): CommandDef[] {
  const table: CommandDef[] = [
    def(Op.TestUnitReady, 'TEST UNIT READY', [0x00, 0, 0, 0, 0, 0], Access.Info, true, testUnitReady),
    def(Op.RequestSense, 'REQUEST SENSE', [0x03, 0x01, 0, 0, F, 0], Access.Free, false, requestSense, { ua: false }),
    def(Op.Read6, 'READ(6)', [0x08, 0x1f, F, F, F, 0], Access.Read, true, (t) => read(t, 6)),
    def(Op.Write6, 'WRITE(6)', [0x0a, 0x1f, F, F, F, 0], Access.Write, true, (t) => write(t, 6)),
    def(Op.Inquiry, 'INQUIRY', [0x12, 0x01, F, F, F, 0], Access.Free, false, inquiry, { ua: false }),
    def(Op.ModeSelect6, 'MODE SELECT(6)', [0x15, 0x11, 0, 0, F, 0], Access.Write, false, (t) => modeSelect(t, false)),
    def(Op.Reserve6, 'RESERVE(6)', [0x16, 0, 0, 0, 0, 0], Access.Own, false, (t) => reserve(t, false)),
    def(Op.Release6, 'RELEASE(6)', [0x17, 0, 0, 0, 0, 0], Access.Own, false, (t) => release(t, false)),
    def(Op.ModeSense6, 'MODE SENSE(6)', [0x1a, 0x08, F, F, F, 0], Access.Read, false, (t) => modeSense(t, false)),
    def(Op.StartStopUnit, 'START STOP UNIT', [0x1b, 0x01, 0, 0x0f, 0xf7, 0], Access.Own, false, startStopUnit),
    def(Op.PreventAllow, 'PREVENT ALLOW MEDIUM REMOVAL', [0x1e, 0, 0, 0, 0x03, 0], Access.Own, false, preventAllow),
    def(Op.ReadCapacity10, 'READ CAPACITY(10)', [0x25, 0, ...LBA4, 0, 0, 0x01, 0], Access.Info, false, readCapacity10),
    def(Op.Read10, 'READ(10)', [0x28, DPO_FUA, ...LBA4, 0, F, F, 0], Access.Read, true, (t) => read(t, 10)),
    def(Op.Write10, 'WRITE(10)', [0x2a, DPO_FUA, ...LBA4, 0, F, F, 0], Access.Write, true, (t) => write(t, 10)),
    def(Op.WriteVerify10, 'WRITE AND VERIFY(10)', [0x2e, WAV_BITS, ...LBA4, 0, F, F, 0], Access.Write, true, (t) => writeAndVerify(t, 10)),
    def(Op.Verify10, 'VERIFY(10)', [0x2f, VERIFY_BITS, ...LBA4, 0, F, F, 0], Access.Read, true, (t) => verify(t, 10)),
    def(Op.PreFetch10, 'PRE-FETCH(10)', [0x34, 0x02, ...LBA4, 0, F, F, 0], Access.Read, true, (t) => preFetch(t, false)),
    def(Op.SyncCache10, 'SYNCHRONIZE CACHE(10)', [0x35, 0x02, ...LBA4, 0, F, F, 0], Access.Write, true, (t) => synchronizeCache(t, false)),
    def(Op.WriteSame10, 'WRITE SAME(10)', [0x41, 0x08, ...LBA4, 0, F, F, 0], Access.Write, true, (t) => writeSame(t, false)),
    def(Op.Unmap, 'UNMAP', [0x42, 0, 0, 0, 0, 0, 0, F, F, 0], Access.Write, true, unmapCommand),
    def(Op.ModeSelect10, 'MODE SELECT(10)', [0x55, 0x11, 0, 0, 0, 0, 0, F, F, 0], Access.Write, false, (t) => modeSelect(t, true)),
    def(Op.Reserve10, 'RESERVE(10)', [0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0], Access.Own, false, (t) => reserve(t, true)),
    def(Op.Release10, 'RELEASE(10)', [0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0], Access.Own, false, (t) => release(t, true)),
    def(Op.ModeSense10, 'MODE SENSE(10)', [0x5a, 0x18, F, F, 0, 0, 0, F, F, 0], Access.Read, false, (t) => modeSense(t, true)),
  ];
  for (const sa of prInServiceActions()) {
    table.push(def(Op.PrIn, 'PERSISTENT RESERVE IN', [0x5e, 0x1f, 0, 0, 0, 0, 0, F, F, 0], Access.Own, false, persistentReserveIn, { sa }));
  }
  for (const sa of prOutServiceActions()) {
    table.push(def(Op.PrOut, 'PERSISTENT RESERVE OUT', [0x5f, 0x1f, F, 0, 0, F, F, F, F, 0], Access.Own, false, persistentReserveOut, { sa }));
  }
  table.push(
    def(Op.Read16, 'READ(16)', [0x88, DPO_FUA, ...LBA8, F, F, F, F, 0, 0], Access.Read, true, (t) => read(t, 16)),
    def(Op.CompareAndWrite, 'COMPARE AND WRITE', [0x89, DPO_FUA, ...LBA8, 0, 0, 0, F, 0, 0], Access.Write, true, compareAndWrite),
    def(Op.Write16, 'WRITE(16)', [0x8a, DPO_FUA, ...LBA8, F, F, F, F, 0, 0], Access.Write, true, (t) => write(t, 16)),
    def(Op.OrWrite16, 'ORWRITE(16)', [0x8b, DPO_FUA, ...LBA8, F, F, F, F, 0xe0, 0], Access.Write, true, orWrite),
    def(Op.WriteVerify16, 'WRITE AND VERIFY(16)', [0x8e, WAV_BITS, ...LBA8, F, F, F, F, 0, 0], Access.Write, true, (t) => writeAndVerify(t, 16)),
    def(Op.Verify16, 'VERIFY(16)', [0x8f, VERIFY_BITS, ...LBA8, F, F, F, F, 0, 0], Access.Read, true, (t) => verify(t, 16)),
    def(Op.PreFetch16, 'PRE-FETCH(16)', [0x90, 0x02, ...LBA8, F, F, F, F, 0, 0], Access.Read, true, (t) => preFetch(t, true)),
    def(Op.SyncCache16, 'SYNCHRONIZE CACHE(16)', [0x91, 0x02, ...LBA8, F, F, F, F, 0, 0], Access.Write, true, (t) => synchronizeCache(t, true)),
    def(Op.WriteSame16, 'WRITE SAME(16)', [0x93, 0x09, ...LBA8, F, F, F, F, 0, 0], Access.Write, true, (t) => writeSame(t, true)),
    def(Op.ServiceActionIn16, 'READ CAPACITY(16)', [0x9e, 0x1f, ...LBA8, F, F, F, F, 0x01, 0], Access.Info, false, readCapacity16,
      { sa: SaIn16.ReadCapacity16 }),
    def(Op.ServiceActionIn16, 'GET LBA STATUS', [0x9e, 0x1f, ...LBA8, F, F, F, F, 0, 0], Access.Read, true, getLbaStatus,
      { sa: SaIn16.GetLbaStatus }),
    def(Op.ReportLuns, 'REPORT LUNS', [0xa0, 0, F, 0, 0, 0, F, F, F, F, 0, 0], Access.Free, false, reportLunsCommand, { ua: false }),
    def(Op.MaintenanceIn, 'REPORT SUPPORTED OPERATION CODES', [0xa3, 0x1f, 0x87, F, F, F, F, F, F, F, 0, 0], Access.Free, false,
      reportSupportedOpcodes, { sa: SaMaintIn.ReportSupportedOpcodes }),
    def(Op.Read12, 'READ(12)', [0xa8, DPO_FUA, ...LBA4, F, F, F, F, 0, 0], Access.Read, true, (t) => read(t, 12)),
    def(Op.Write12, 'WRITE(12)', [0xaa, DPO_FUA, ...LBA4, F, F, F, F, 0, 0], Access.Write, true, (t) => write(t, 12)),
    def(Op.WriteVerify12, 'WRITE AND VERIFY(12)', [0xae, WAV_BITS, ...LBA4, F, F, F, F, 0, 0], Access.Write, true, (t) => writeAndVerify(t, 12)),
    def(Op.Verify12, 'VERIFY(12)', [0xaf, VERIFY_BITS, ...LBA4, F, F, F, F, 0, 0], Access.Read, true, (t) => verify(t, 12)),
  );
  return table;
}

/** Operation codes whose CDB has a SERVICE ACTION field (byte 1 bits 4..0) here. */
const SA_OPCODES = new Set<number>([Op.PrIn, Op.PrOut, Op.ServiceActionIn16, Op.MaintenanceIn]);

/** Fast lookup: by operation code, then by service action. */
export class CommandIndex {
  private readonly byOp: (CommandDef | Map<number, CommandDef> | undefined)[] = new Array(256);

  constructor(readonly table: readonly CommandDef[]) {
    for (const d of table) {
      if (d.sa === undefined) { this.byOp[d.op] = d; continue; }
      let m = this.byOp[d.op] as Map<number, CommandDef> | undefined;
      if (!m) { m = new Map(); this.byOp[d.op] = m; }
      m.set(d.sa, d);
    }
  }

  /** The command, `'sa'` for an unknown service action of a known operation code, or undefined. */
  find(cdb: Uint8Array): CommandDef | 'sa' | undefined {
    const e = this.byOp[cdb[0]];
    if (e === undefined) return undefined;
    if (e instanceof Map) return e.get(cdb[1] & 0x1f) ?? 'sa';
    return e;
  }

  static hasServiceAction(op: number): boolean {
    return SA_OPCODES.has(op);
  }
}

/**
 * Sense data (SPC-4 4.5): the fixed format (response code 70h) and the descriptor format (72h),
 * chosen per logical unit by the D_SENSE bit of its Control mode page. Additional sense codes are
 * those of SPC-4 Annex D.
 */

/** Sense keys (SPC-4 4.5.6, sense key descriptions). */
export const enum SenseKey {
  NoSense = 0x0,
  NotReady = 0x2,
  MediumError = 0x3,
  HardwareError = 0x4,
  IllegalRequest = 0x5,
  UnitAttention = 0x6,
  DataProtect = 0x7,
  AbortedCommand = 0xb,
  Miscompare = 0xe,
}

/** An additional sense code and qualifier as one number: ASC << 8 | ASCQ (SPC-4 Annex D). */
export const enum Asc {
  NoAdditionalSense = 0x0000,
  NotReadyCauseNotReportable = 0x0400,
  NotReadyInitializingCommandRequired = 0x0402,
  WriteError = 0x0c00,
  InvalidFieldInInformationUnit = 0x0e03,
  UnrecoveredReadError = 0x1100,
  ParameterListLengthError = 0x1a00,
  MiscompareDuringVerify = 0x1d00,
  InvalidCommandOperationCode = 0x2000,
  LbaOutOfRange = 0x2100,
  InvalidFieldInCdb = 0x2400,
  LogicalUnitNotSupported = 0x2500,
  InvalidFieldInParameterList = 0x2600,
  InvalidReleaseOfPersistentReservation = 0x2604,
  SoftwareWriteProtected = 0x2702,
  SpaceAllocationFailedWriteProtect = 0x2707,
  PowerOnResetOccurred = 0x2900,
  BusDeviceResetFunctionOccurred = 0x2903,
  ModeParametersChanged = 0x2a01,
  ReservationsPreempted = 0x2a03,
  ReservationsReleased = 0x2a04,
  RegistrationsPreempted = 0x2a05,
  CapacityDataHasChanged = 0x2a09,
  SavingParametersNotSupported = 0x3900,
  InternalTargetFailure = 0x4400,
}

/** Where an invalid field sits, for the sense-key specific FIELD POINTER (SPC-4 4.5.2.4.2). */
export interface FieldPointer {
  /** true: the field is in the CDB (C/D = 1); false: in the parameter list. */
  cdb: boolean;
  byte: number;
  /** Bit within the byte (BPV = 1), or undefined. */
  bit?: number;
}

/** A CHECK CONDITION to report: sense key, ASC/ASCQ and the optional fields. */
export interface Check {
  key: SenseKey;
  asc: Asc;
  field?: FieldPointer;
  /** INFORMATION field (e.g. the miscompare offset, SBC-3 COMPARE AND WRITE), VALID = 1 when given. */
  info?: number;
  /** A short reason for the counters ("invalid-field-cdb", ...). */
  reason: string;
}

export function check(key: SenseKey, asc: Asc, reason: string, field?: FieldPointer, info?: number): Check {
  return { key, asc, reason, field, info };
}

/** ILLEGAL REQUEST, INVALID FIELD IN CDB with the field pointer. */
export function invalidCdb(byte: number, bit?: number): Check {
  return { key: SenseKey.IllegalRequest, asc: Asc.InvalidFieldInCdb, reason: 'invalid-field-cdb', field: { cdb: true, byte, bit } };
}

/** ILLEGAL REQUEST, INVALID FIELD IN PARAMETER LIST with the field pointer. */
export function invalidParam(byte: number, bit?: number): Check {
  return {
    key: SenseKey.IllegalRequest, asc: Asc.InvalidFieldInParameterList, reason: 'invalid-field-param',
    field: { cdb: false, byte, bit },
  };
}

export const LBA_OUT_OF_RANGE: Check = { key: SenseKey.IllegalRequest, asc: Asc.LbaOutOfRange, reason: 'lba-out-of-range' };
export const INVALID_OPCODE: Check = {
  key: SenseKey.IllegalRequest, asc: Asc.InvalidCommandOperationCode, reason: 'invalid-opcode', field: { cdb: true, byte: 0 },
};
export const PARAM_LIST_LENGTH: Check = { key: SenseKey.IllegalRequest, asc: Asc.ParameterListLengthError, reason: 'param-list-length' };
export const LUN_NOT_SUPPORTED: Check = { key: SenseKey.IllegalRequest, asc: Asc.LogicalUnitNotSupported, reason: 'lun-not-supported' };
export const WRITE_PROTECTED: Check = { key: SenseKey.DataProtect, asc: Asc.SoftwareWriteProtected, reason: 'write-protected' };
export const NOT_READY_STOPPED: Check = { key: SenseKey.NotReady, asc: Asc.NotReadyInitializingCommandRequired, reason: 'not-ready-stopped' };
export const NOT_READY_CLOSED: Check = { key: SenseKey.NotReady, asc: Asc.NotReadyCauseNotReportable, reason: 'not-ready-closed' };
export const INTERNAL_FAILURE: Check = { key: SenseKey.HardwareError, asc: Asc.InternalTargetFailure, reason: 'internal-failure' };

/** Fixed format: 18 bytes (ADDITIONAL SENSE LENGTH 10). */
const FIXED_LEN = 18;

/** Builds sense data for `c` in the fixed (SPC-4 4.5.3) or descriptor (SPC-4 4.5.2) format. */
export function buildSense(c: Check, descriptor: boolean): Uint8Array {
  return descriptor ? buildDescriptor(c) : buildFixed(c);
}

function sksBytes(f: FieldPointer, out: Uint8Array, off: number): void {
  // SPC-4 4.5.2.4.2: SKSV (bit 7), C/D (bit 6), BPV (bit 3), BIT POINTER (2..0), FIELD POINTER.
  out[off] = 0x80 | (f.cdb ? 0x40 : 0) | (f.bit !== undefined ? 0x08 | (f.bit & 7) : 0);
  out[off + 1] = (f.byte >>> 8) & 0xff;
  out[off + 2] = f.byte & 0xff;
}

function buildFixed(c: Check): Uint8Array {
  const s = new Uint8Array(FIXED_LEN);
  // SPC-4 4.5.3 (fixed format): RESPONSE CODE 70h (current error); VALID (bit 7) when INFORMATION is defined.
  const infoValid = c.info !== undefined && c.info >= 0 && c.info <= 0xffffffff;
  s[0] = 0x70 | (infoValid ? 0x80 : 0);
  s[2] = c.key & 0x0f;
  if (infoValid) {
    const v = c.info as number;
    s[3] = (v >>> 24) & 0xff; s[4] = (v >>> 16) & 0xff; s[5] = (v >>> 8) & 0xff; s[6] = v & 0xff;
  }
  s[7] = FIXED_LEN - 8;
  s[12] = (c.asc >>> 8) & 0xff;
  s[13] = c.asc & 0xff;
  if (c.field) sksBytes(c.field, s, 15);
  return s;
}

function buildDescriptor(c: Check): Uint8Array {
  const hasInfo = c.info !== undefined && c.info >= 0;
  const len = 8 + (hasInfo ? 12 : 0) + (c.field ? 8 : 0);
  const s = new Uint8Array(len);
  // SPC-4 4.5.2 (descriptor format): RESPONSE CODE 72h, SENSE KEY, ASC, ASCQ, ADDITIONAL SENSE LENGTH.
  s[0] = 0x72;
  s[1] = c.key & 0x0f;
  s[2] = (c.asc >>> 8) & 0xff;
  s[3] = c.asc & 0xff;
  s[7] = len - 8;
  let p = 8;
  if (hasInfo) {
    // SPC-4 4.5.2.2 Information sense data descriptor: type 00h, length 0Ah, VALID = 1.
    s[p] = 0x00; s[p + 1] = 0x0a; s[p + 2] = 0x80;
    const v = c.info as number;
    const hi = Math.floor(v / 0x100000000);
    const lo = v >>> 0;
    s[p + 8] = (lo >>> 24) & 0xff; s[p + 9] = (lo >>> 16) & 0xff; s[p + 10] = (lo >>> 8) & 0xff; s[p + 11] = lo & 0xff;
    s[p + 4] = (hi >>> 24) & 0xff; s[p + 5] = (hi >>> 16) & 0xff; s[p + 6] = (hi >>> 8) & 0xff; s[p + 7] = hi & 0xff;
    p += 12;
  }
  if (c.field) {
    // SPC-4 4.5.2.4 Sense key specific sense data descriptor: type 02h, length 06h.
    s[p] = 0x02; s[p + 1] = 0x06;
    sksBytes(c.field, s, p + 4);
  }
  return s;
}

/** NO SENSE parameter data for REQUEST SENSE (SPC-4 REQUEST SENSE) when nothing is pending. */
export function noSense(descriptor: boolean): Uint8Array {
  return buildSense({ key: SenseKey.NoSense, asc: Asc.NoAdditionalSense, reason: '' }, descriptor);
}

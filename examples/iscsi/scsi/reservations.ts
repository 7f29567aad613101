/**
 * Reservation state of one logical unit: persistent reservations (SPC-4 "Reservations") and
 * the older RESERVE(6)/RELEASE(6) reservation (SPC-2 RESERVE(6)), and which commands they let through.
 * The commands that change this state live in pr.ts.
 */

/** How a command is treated under a reservation (SPC-4 and SBC-3 tables of commands allowed in
 * the presence of reservations). */
export const enum Access {
  /** Never conflicts (INQUIRY, REPORT LUNS, REQUEST SENSE, REPORT SUPPORTED OPERATION CODES). */
  Free,
  /** Allowed under persistent reservations, conflicts with another nexus's RESERVE(6) (TUR, READ CAPACITY). */
  Info,
  /** Reads the medium or its settings (READ, VERIFY, PRE-FETCH, GET LBA STATUS, MODE SENSE). */
  Read,
  /** Changes the medium or the device (WRITE, UNMAP, SYNCHRONIZE CACHE, MODE SELECT, ...). */
  Write,
  /** Checks its own rules: PERSISTENT RESERVE IN/OUT, RESERVE, RELEASE. */
  Own,
}

/** Persistent reservation types (SPC-4 PERSISTENT RESERVE OUT, TYPE field). */
export const enum PrType {
  WriteExclusive = 1,
  ExclusiveAccess = 3,
  WriteExclusiveRegistrantsOnly = 5,
  ExclusiveAccessRegistrantsOnly = 6,
  WriteExclusiveAllRegistrants = 7,
  ExclusiveAccessAllRegistrants = 8,
}

export function validPrType(t: number): boolean {
  return t === 1 || t === 3 || t === 5 || t === 6 || t === 7 || t === 8;
}

/** All-registrants types: every registered I_T nexus is a reservation holder (SPC-4 "Persistent reservation holder"). */
export function allRegistrants(t: number): boolean {
  return t === PrType.WriteExclusiveAllRegistrants || t === PrType.ExclusiveAccessAllRegistrants;
}

/** Registrants-only and all-registrants types: registered nexuses get access. */
export function registrantsAccess(t: number): boolean {
  return t >= PrType.WriteExclusiveRegistrantsOnly;
}

export interface PersistentReservation {
  type: PrType;
  /** The holder (ignored for the all-registrants types, where every registrant holds it). */
  holder: string;
}

export class Reservations {
  /** PRGENERATION (SPC-4 PERSISTENT RESERVE IN, READ KEYS). */
  generation = 0;
  /** Registered I_T nexuses and their keys, in registration order. */
  readonly keys = new Map<string, bigint>();
  pr: PersistentReservation | null = null;
  /** The holder of a RESERVE(6)/RESERVE(10) reservation (SPC-2 RESERVE(6)). */
  spc2: string | null = null;

  /** Whether `nexus` holds the persistent reservation (SPC-4 "Persistent reservation holder"). */
  isHolder(nexus: string): boolean {
    const r = this.pr;
    if (!r) return false;
    return allRegistrants(r.type) ? this.keys.has(nexus) : r.holder === nexus;
  }

  /** True when PR state (registrations or a reservation) exists: RESERVE/RELEASE then conflict (see pr.ts). */
  persistentActive(): boolean {
    return this.pr !== null || this.keys.size > 0;
  }

  /**
   * Whether a command of class `a` from `nexus` conflicts with a reservation (the Own class is
   * decided by the command itself).
   * - RESERVE(6) by another nexus (SPC-2 "Reservations"): everything but the Free class conflicts.
   * - Persistent reservation held by someone else (SPC-4 / SBC-3 tables of commands allowed in
   *   the presence of various reservations):
   *   Write Exclusive lets reads through, Exclusive Access nothing; the registrants-only and
   *   all-registrants types let registered nexuses do everything and others only read (WE) or
   *   nothing (EA). TEST UNIT READY and READ CAPACITY are allowed under every type.
   */
  conflicts(nexus: string, a: Access): boolean {
    if (a === Access.Free || a === Access.Own) return false;
    if (this.spc2 !== null && this.spc2 !== nexus) return true;
    const r = this.pr;
    if (!r || a === Access.Info || this.isHolder(nexus)) return false;
    if (registrantsAccess(r.type) && this.keys.has(nexus)) return false;
    const writeExclusive = r.type === PrType.WriteExclusive || r.type === PrType.WriteExclusiveRegistrantsOnly
      || r.type === PrType.WriteExclusiveAllRegistrants;
    return a === Access.Write || !writeExclusive;
  }

  /** I_T nexus loss, logical unit reset, hard reset: a RESERVE(6) reservation ends (SPC-2; persistent reservations stay,
   * SPC-4 "Persistent reservations"). */
  releaseSpc2(nexus?: string): void {
    if (nexus === undefined || this.spc2 === nexus) this.spc2 = null;
  }
}

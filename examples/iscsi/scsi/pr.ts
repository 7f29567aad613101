/**
 * PERSISTENT RESERVE IN / OUT (SPC-4) and RESERVE / RELEASE (6) and (10) (SPC-2), over the state
 * of reservations.ts. Keys are 64-bit (BigInt). Persist Through Power Loss, SPEC_I_PT, ALL_TG_PT
 * and REGISTER AND MOVE are not supported (REPORT CAPABILITIES says so).
 */
import { Task } from './task';
import { ScsiStatus } from './types';
import { u16, u32, u64n, put16, put32, put64n } from './cdb';
import { Asc, SenseKey, check, invalidCdb, invalidParam, PARAM_LIST_LENGTH } from './sense';
import { contiguous } from './dataout';
import { Reservations, allRegistrants, registrantsAccess, validPrType } from './reservations';
import type { UnitAttentions } from './ua';

/** PR IN service actions (SPC-4 PERSISTENT RESERVE IN). */
const enum PrIn { ReadKeys = 0, ReadReservation = 1, ReportCapabilities = 2, ReadFullStatus = 3 }
/** PR OUT service actions (SPC-4 PERSISTENT RESERVE OUT). */
const enum PrOut {
  Register = 0, Reserve = 1, Release = 2, Clear = 3, Preempt = 4, PreemptAndAbort = 5, RegisterAndIgnore = 6,
}

/** PERSISTENT RESERVE OUT parameter list length without SPEC_I_PT: 24 bytes (SPC-4). */
const PR_OUT_LEN = 24;

export function prInServiceActions(): number[] { return [0, 1, 2, 3]; }
export function prOutServiceActions(): number[] { return [0, 1, 2, 3, 4, 5, 6]; }

/** A reservation conflict: the command is not executed (SAM-5 RESERVATION CONFLICT status). */
function conflict(t: Task): void {
  t.status(ScsiStatus.ReservationConflict, 'reservation-conflict');
}

/** PERSISTENT RESERVE IN. */
export function persistentReserveIn(t: Task): void {
  const cdb = t.cdb;
  const r = t.lu.res;
  const alloc = u16(cdb, 7);
  // Under a RESERVE(6) reservation of another nexus, PR commands conflict (SPC-2 "Reservations").
  if (r.spc2 !== null && r.spc2 !== t.nexus) return conflict(t);
  let b: Uint8Array;
  switch (cdb[1] & 0x1f) {
    case PrIn.ReadKeys: {
      // PRGENERATION, ADDITIONAL LENGTH (not changed by the allocation length), the keys.
      b = new Uint8Array(8 + 8 * r.keys.size);
      put32(b, 0, r.generation);
      put32(b, 4, 8 * r.keys.size);
      let o = 8;
      for (const k of r.keys.values()) { put64n(b, o, k); o += 8; }
      break;
    }
    case PrIn.ReadReservation: {
      const pr = r.pr;
      b = new Uint8Array(pr ? 24 : 8);
      put32(b, 0, r.generation);
      if (pr) {
        put32(b, 4, 16);
        // RESERVATION KEY: the holder's key; zero for the all-registrants types (SPC-4 READ RESERVATION).
        put64n(b, 8, allRegistrants(pr.type) ? 0n : r.keys.get(pr.holder) ?? 0n);
        b[21] = pr.type & 0x0f; // SCOPE 0h (logical unit) | TYPE
      }
      break;
    }
    case PrIn.ReportCapabilities:
      // LENGTH 8; CRH = 1 (RESERVE/RELEASE conflict with PRs as SPC-4 describes); SIP_C, ATP_C,
      // PTPL_C = 0; TMV = 1 with ALLOW COMMANDS 000b; every type in the TYPE MASK.
      b = new Uint8Array(8);
      put16(b, 0, 8);
      b[2] = 0x10;
      b[3] = 0x80;
      b[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02; // WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX
      b[5] = 0x01; // EX_AC_AR
      break;
    case PrIn.ReadFullStatus:
      b = fullStatus(r);
      break;
    default:
      return t.fail(invalidCdb(1, 4));
  }
  t.good(b, alloc);
}

/** READ FULL STATUS: one descriptor per registration with its iSCSI TransportID (SPC-4 READ FULL STATUS, iSCSI TransportID). */
function fullStatus(r: Reservations): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [nexus, key] of r.keys) {
    // iSCSI initiator port TransportID (FORMAT CODE 01b): "<name>,i,0x<ISID>", null-terminated,
    // padded to a multiple of four bytes.
    const name = Buffer.from(nexus, 'utf8');
    const idLen = 4 + ((name.length + 4) & ~3);
    const d = new Uint8Array(24 + idLen);
    put64n(d, 0, key);
    if (r.isHolder(nexus)) {
      d[12] = 0x01; // R_HOLDER
      d[13] = r.pr!.type & 0x0f;
    }
    put16(d, 18, 1); // RELATIVE TARGET PORT IDENTIFIER
    put32(d, 20, idLen);
    d[24] = 0x40 | 0x05; // FORMAT CODE 01b, PROTOCOL IDENTIFIER 5h (iSCSI)
    put16(d, 26, idLen - 4);
    d.set(name, 28);
    parts.push(d);
  }
  const total = parts.reduce((n, p) => n + p.length, 0);
  const b = new Uint8Array(8 + total);
  put32(b, 0, r.generation);
  put32(b, 4, total);
  let o = 8;
  for (const p of parts) { b.set(p, o); o += p.length; }
  return b;
}

/** Removes `nexus`'s registration; a reservation it held alone ends (SPC-4 PERSISTENT RESERVE OUT, REGISTER). */
function unregister(r: Reservations, ua: UnitAttentions, nexus: string): void {
  const wasHolder = r.isHolder(nexus);
  r.keys.delete(nexus);
  const pr = r.pr;
  if (!pr || !wasHolder) return;
  if (allRegistrants(pr.type)) {
    if (r.keys.size === 0) r.pr = null;
    return;
  }
  r.pr = null;
  // A registrants-only reservation released by unregistering its holder: RESERVATIONS RELEASED
  // for the other registrants.
  if (registrantsAccess(pr.type)) for (const n of r.keys.keys()) ua.add(n, Asc.ReservationsReleased);
}

/** PERSISTENT RESERVE OUT. */
export function persistentReserveOut(t: Task): void {
  const cdb = t.cdb;
  const lu = t.lu;
  const r = lu.res;
  const sa = cdb[1] & 0x1f;
  const scope = cdb[2] >>> 4;
  const type = cdb[2] & 0x0f;
  const len = u32(cdb, 5);
  t.cdbOut = len;
  if (sa > PrOut.RegisterAndIgnore) return t.fail(invalidCdb(1, 4));
  if (r.spc2 !== null && r.spc2 !== t.nexus) return conflict(t);
  if (len !== PR_OUT_LEN || t.dataOutLength < PR_OUT_LEN) return t.fail(PARAM_LIST_LENGTH);
  const p = contiguous(t.cmd.dataOut, 0, PR_OUT_LEN);
  const key = u64n(p, 0);
  const sark = u64n(p, 8);
  // SPEC_I_PT (bit 3), ALL_TG_PT (bit 2), APTPL (bit 0) are not supported (REPORT CAPABILITIES
  // SIP_C, ATP_C, PTPL_C = 0): INVALID FIELD IN PARAMETER LIST.
  if (p[20] & 0x08) return t.fail(invalidParam(20, 3));
  if (p[20] & 0x04) return t.fail(invalidParam(20, 2));
  if (p[20] & 0x01) return t.fail(invalidParam(20, 0));
  const mine = r.keys.get(t.nexus);
  const ua = lu.ua;

  if (sa === PrOut.Register || sa === PrOut.RegisterAndIgnore) {
    if (sa === PrOut.Register) {
      // REGISTER from an unregistered nexus with a non-zero RESERVATION KEY, or from a registered
      // one with another key: RESERVATION CONFLICT.
      if (mine === undefined ? key !== 0n : key !== mine) return conflict(t);
    }
    if (sark === 0n) {
      // Unregistering; from an unregistered nexus this does nothing (and no PRGENERATION step).
      if (mine === undefined) return t.good();
      unregister(r, ua, t.nexus);
    } else {
      r.keys.set(t.nexus, sark);
    }
    r.generation = (r.generation + 1) >>> 0;
    return t.good();
  }

  // Every other service action needs a registered nexus giving its own key.
  if (mine === undefined || key !== mine) return conflict(t);
  switch (sa) {
    case PrOut.Reserve: {
      if (scope !== 0) return t.fail(invalidCdb(2, 7));
      if (!validPrType(type)) return t.fail(invalidCdb(2, 3));
      const pr = r.pr;
      if (!pr) { r.pr = { type, holder: t.nexus }; return t.good(); }
      // The holder reserving again with the same type: nothing to do; anything else conflicts.
      if (r.isHolder(t.nexus) && pr.type === type) return t.good();
      return conflict(t);
    }
    case PrOut.Release: {
      const pr = r.pr;
      if (!pr || !r.isHolder(t.nexus)) return t.good();
      // SPC-4 RELEASE: a holder naming another scope or type: INVALID RELEASE OF PERSISTENT RESERVATION.
      if (scope !== 0 || type !== pr.type) {
        return t.fail(check(SenseKey.IllegalRequest, Asc.InvalidReleaseOfPersistentReservation, 'invalid-release'));
      }
      r.pr = null;
      // Releasing a registrants-only or all-registrants reservation: RESERVATIONS RELEASED for
      // the other registered nexuses.
      if (registrantsAccess(pr.type)) for (const n of r.keys.keys()) if (n !== t.nexus) ua.add(n, Asc.ReservationsReleased);
      return t.good();
    }
    case PrOut.Clear: {
      // SPC-4 CLEAR: every registration and the reservation go; RESERVATIONS PREEMPTED for the
      // other registered nexuses.
      for (const n of r.keys.keys()) if (n !== t.nexus) ua.add(n, Asc.ReservationsPreempted);
      r.keys.clear();
      r.pr = null;
      r.generation = (r.generation + 1) >>> 0;
      return t.good();
    }
    case PrOut.Preempt:
    case PrOut.PreemptAndAbort:
      return preempt(t, r, ua, scope, type, sark);
    default:
      return t.fail(invalidCdb(1, 4));
  }
}

/**
 * PREEMPT and PREEMPT AND ABORT (SPC-4 "Preempting"). Tasks of the preempted nexuses are not
 * aborted from here: this layer runs each command to completion before the next starts.
 */
function preempt(t: Task, r: Reservations, ua: UnitAttentions, scope: number, type: number, sark: bigint): void {
  const pr = r.pr;
  const removeMatching = (): string[] => {
    const gone: string[] = [];
    for (const [n, k] of r.keys) if (k === sark && n !== t.nexus) gone.push(n);
    for (const n of gone) { r.keys.delete(n); ua.add(n, Asc.RegistrationsPreempted); }
    return gone;
  };
  const newReservation = (): boolean => {
    if (scope !== 0) { t.fail(invalidCdb(2, 7)); return false; }
    if (!validPrType(type)) { t.fail(invalidCdb(2, 3)); return false; }
    return true;
  };
  if (!pr) {
    // No reservation: remove the registrations with the SERVICE ACTION RESERVATION KEY; a zero
    // key is an INVALID FIELD IN PARAMETER LIST, an unknown one a RESERVATION CONFLICT.
    if (sark === 0n) return t.fail(invalidParam(8));
    if (removeMatching().length === 0 && r.keys.get(t.nexus) !== sark) return conflict(t);
  } else if (allRegistrants(pr.type)) {
    if (sark === 0n) {
      // All-registrants reservation preempted with key 0: every other registration goes and the
      // preempting nexus holds a new reservation of the given type.
      if (!newReservation()) return;
      for (const n of [...r.keys.keys()]) if (n !== t.nexus) { r.keys.delete(n); ua.add(n, Asc.RegistrationsPreempted); }
      r.pr = { type, holder: t.nexus };
    } else if (removeMatching().length === 0 && r.keys.get(t.nexus) !== sark) {
      return conflict(t);
    }
  } else if (sark === r.keys.get(pr.holder)) {
    // The holder's key: its registrations go, the reservation moves to the preempting nexus; if
    // the type changed, the remaining registrants see RESERVATIONS RELEASED.
    if (!newReservation()) return;
    removeMatching();
    r.pr = { type, holder: t.nexus };
    if (type !== pr.type) for (const n of r.keys.keys()) if (n !== t.nexus) ua.add(n, Asc.ReservationsReleased);
  } else {
    if (sark === 0n) return t.fail(invalidParam(8));
    if (removeMatching().length === 0) return conflict(t);
  }
  r.generation = (r.generation + 1) >>> 0;
  t.good();
}

/**
 * RESERVE(6)/(10) (SPC-2): the logical unit for this nexus alone. Conflicts while another nexus
 * holds it, and while persistent reservation state exists (SPC-4 "Exceptions to SPC-2 RESERVE
 * and RELEASE behavior", CRH = 1). Third-party and extent reservations are not supported.
 */
export function reserve(t: Task, ten: boolean): void {
  const r = t.lu.res;
  if (ten && (t.cdb[1] & 0x12)) return t.fail(invalidCdb(1, (t.cdb[1] & 0x10) ? 4 : 1)); // 3RDPTY, LONGID
  if (!ten && (t.cdb[1] & 0x01)) return t.fail(invalidCdb(1, 0)); // EXTENT
  if (r.persistentActive()) {
    // CRH = 1: a RESERVE from a registered holder of a reservation succeeds with no effect.
    if (r.isHolder(t.nexus)) return t.good();
    return conflict(t);
  }
  if (r.spc2 !== null && r.spc2 !== t.nexus) return conflict(t);
  r.spc2 = t.nexus;
  t.good();
}

/** RELEASE(6)/(10) (SPC-2): releases this nexus's reservation; from another nexus it does nothing. */
export function release(t: Task, ten: boolean): void {
  const r = t.lu.res;
  if (ten && (t.cdb[1] & 0x12)) return t.fail(invalidCdb(1, (t.cdb[1] & 0x10) ? 4 : 1));
  if (r.persistentActive()) {
    if (r.isHolder(t.nexus)) return t.good();
    return conflict(t);
  }
  r.releaseSpc2(t.nexus);
  t.good();
}

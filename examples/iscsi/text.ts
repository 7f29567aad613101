/**
 * Text Request answers in full feature phase (RFC 7143 11.10-11.11): SendTargets (13.3 and
 * appendix C), the declarative MaxRecvDataSegmentLength (13.12, "Use: ALL"), and NotUnderstood or
 * Reject for the rest.
 */
import { KeyPairs, parseNumber } from './keys';

/** "addr:port,tpgt" with IPv6 addresses in brackets (RFC 7143 13.8 TargetAddress). */
export function targetAddress(local: { address: string; port: number }, tpgt: number): string {
  const a = local.address.includes(':') ? `[${local.address}]` : local.address;
  return `${a}:${local.port},${tpgt}`;
}

export interface TextContext {
  discovery: boolean;
  /** The session's target (Normal sessions). */
  sessionTarget?: string;
  /** Targets of the portal, by IQN. */
  targets: Iterable<string>;
  address: string;
  /** Our MaxRecvDataSegmentLength. */
  ourMrdsl: number;
  /** Called with the initiator's new MaxRecvDataSegmentLength. */
  setInitiatorMrdsl(n: number): void;
}

/** Keys that can only be negotiated during login (RFC 7143 13: "Use: LO" or "IO"). */
const LOGIN_ONLY = new Set([
  'HeaderDigest', 'DataDigest', 'MaxConnections', 'InitialR2T', 'ImmediateData', 'MaxBurstLength',
  'FirstBurstLength', 'DefaultTime2Wait', 'DefaultTime2Retain', 'MaxOutstandingR2T', 'DataPDUInOrder',
  'DataSequenceInOrder', 'ErrorRecoveryLevel', 'SessionType', 'InitiatorName', 'TargetName',
  'AuthMethod', 'TargetPortalGroupTag', 'IFMarker', 'OFMarker', 'IFMarkInt', 'OFMarkInt',
  'TaskReporting', // 13.23: LO
  'iSCSIProtocolLevel', // RFC 7144 2.1: LO
]);

/**
 * The first key offered twice in one request, if any. RFC 7143 6.2 ("neither the initiator nor
 * the target should attempt to declare or negotiate a parameter more than once"; such an attempt
 * "MUST be detected") names no key an initiator may repeat in a Text Request (repeats are allowed
 * only where a key says so, e.g. the target's TargetAddress), so a repeat is a protocol error: in
 * full feature phase, a Reject (11.17.1) rather than two answers to one key.
 */
export function repeatedKey(pairs: KeyPairs): string | undefined {
  const seen = new Set<string>();
  for (const [k] of pairs) {
    if (seen.has(k)) return k;
    seen.add(k);
  }
  return undefined;
}

export function answerText(pairs: KeyPairs, ctx: TextContext): KeyPairs {
  const out: KeyPairs = [];
  for (const [k, v] of pairs) {
    if (k === 'SendTargets') {
      // 13.3: the value is "All", an iSCSI name (11.? / 4.2.7: iqn., eui., naa.) or empty.
      if (v !== '' && v !== 'All' && !/^(iqn\.|eui\.|naa\.)/i.test(v)) { out.push([k, 'Reject']); continue; }
      let names: string[];
      if (ctx.discovery) {
        // 13.3 / appendix C.1: "All" in a discovery session lists every target; a name lists that one.
        const all = [...ctx.targets];
        names = v === 'All' || v === '' ? all : all.filter((t) => t === v.toLowerCase());
      } else {
        // Appendix C.2: in a normal session, the session's target (empty value or its own name).
        const own = ctx.sessionTarget ?? '';
        names = v === '' || v === 'All' || v.toLowerCase() === own ? [own] : [];
      }
      for (const n of names) {
        out.push(['TargetName', n]);
        out.push(['TargetAddress', ctx.address]);
      }
    } else if (k === 'MaxRecvDataSegmentLength') {
      // 6.1: a numerical value in decimal or hex ("0x2000"); 13.12: 512 to 2^24-1.
      const n = parseNumber(v);
      if (Number.isNaN(n) || n < 512 || n > 16777215) out.push([k, 'Reject']);
      else { ctx.setInitiatorMrdsl(n); out.push([k, String(ctx.ourMrdsl)]); }
    } else if (k === 'InitiatorAlias') {
      // 13.7: declarative, "Use: ALL": taken without an answer (6.2: declarations are not answered).
    } else if (LOGIN_ONLY.has(k)) {
      out.push([k, 'Reject']); // RFC 7143 6.2: not negotiable in full feature phase
    } else {
      out.push([k, 'NotUnderstood']); // RFC 7143 6.2.1
    }
  }
  return out;
}

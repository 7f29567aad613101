/**
 * The test initiator's view of iSCSI PDUs and SCSI data (RFC 7143 section 11, SPC-4 sense data):
 * opcodes, the received PDU, errors, login options and results, SCSI request/reply, CDB and text
 * helpers. The connection itself is in iscsi-initiator.ts.
 */
import { wr32 } from '../../examples/iscsi/pdu';

/** RFC 7143 11.2.1.2 opcodes used here. */
export const OP = {
  NopOut: 0x00, ScsiCmd: 0x01, TmfReq: 0x02, LoginReq: 0x03, TextReq: 0x04, DataOut: 0x05, LogoutReq: 0x06,
  NopIn: 0x20, ScsiRsp: 0x21, TmfRsp: 0x22, LoginRsp: 0x23, TextRsp: 0x24, DataIn: 0x25, LogoutRsp: 0x26,
  R2t: 0x31, AsyncMsg: 0x32, Reject: 0x3f,
} as const;
export const TAG_NONE = 0xffffffff;

/** A PDU from the target. `bhs` is the 48-byte BHS, `ahs` the AHS (usually empty). */
export interface InPdu {
  op: number; flags: number; bhs: Uint8Array; ahs: Uint8Array; data: Uint8Array;
  itt: number; ttt: number; statSN: number; expCmdSN: number; maxCmdSN: number;
  /** ms since the connection opened. */
  at: number;
}

/** RFC 1982 serial comparison on 32 bits (RFC 7143 4.2.2.1). */
export const snLt = (a: number, b: number) => ((a - b) | 0) < 0;

export class IscsiError extends Error {
  constructor(message: string, readonly pdu?: InPdu) { super(message); this.name = 'IscsiError'; }
}
/** A Login Response with a non-zero status (RFC 7143 11.13.5). */
export class LoginError extends IscsiError {
  constructor(readonly status: number, pdu: InPdu) {
    super(`login failed: status 0x${status.toString(16).padStart(4, '0')}`, pdu);
    this.name = 'LoginError';
  }
}
/** The target rejected our PDU (RFC 7143 11.17). */
export class RejectError extends IscsiError {
  constructor(readonly reason: number, pdu: InPdu) { super(`rejected, reason 0x${reason.toString(16)}`, pdu); this.name = 'RejectError'; }
}

export interface LoginOptions {
  initiatorName?: string;
  /** Normal session to this target; absent (or `discovery`) = discovery session. */
  targetName?: string;
  discovery?: boolean;
  /** 6 bytes; default a random type-3 ISID (11.12.5). */
  isid?: Uint8Array;
  headerDigest?: boolean;
  dataDigest?: boolean;
  chap?: { user: string; secret: string };
  /** Our MaxRecvDataSegmentLength (13.12), default 65536. */
  maxRecvDataSegmentLength?: number;
  maxBurstLength?: number;
  firstBurstLength?: number;
  /** Offered values (13.10 / 13.11); defaults InitialR2T=No, ImmediateData=Yes. */
  initialR2T?: boolean;
  immediateData?: boolean;
  maxOutstandingR2T?: number;
  /** Start in LoginOperationalNegotiation (skip the security stage, RFC 7143 6.3). */
  skipSecurity?: boolean;
}

/** The session as negotiated (target answers), plus the keys the target left unanswered. */
export interface Negotiated {
  headerDigest: boolean;
  dataDigest: boolean;
  /** The target's declared MaxRecvDataSegmentLength: our Data-Out / immediate data segment limit. */
  targetMrdsl: number;
  maxBurstLength: number;
  firstBurstLength: number;
  initialR2T: boolean;
  immediateData: boolean;
  maxOutstandingR2T: number;
  tsih: number;
  /** Every key the target answered, last value wins. */
  answers: Map<string, string>;
  /** Offered negotiable keys the target did not answer (RFC 7143 6.2: every key is answered). */
  unanswered: string[];
}

export interface ScsiRequest {
  cdb: Uint8Array;
  lun?: number;
  /** Expected Data-In length (a read). */
  readLength?: number;
  /** Data-Out (a write). */
  writeData?: Uint8Array;
  /** Immediate delivery (11.2.1.1). */
  immediate?: boolean;
}

export interface ScsiReply {
  status: number;
  /** 11.4.3 Response (0 = command completed at target). */
  response: number;
  sense?: Uint8Array;
  data: Uint8Array;
  /** Data-In bytes received. */
  received: number;
  overflow: boolean;
  underflow: boolean;
  residual: number;
  /** R2Ts received / Data-Out PDUs sent (unsolicited among them) / immediate data bytes, for this command. */
  r2ts: number;
  dataOuts: number;
  unsolicited: number;
  immediateBytes: number;
  /** Data-In PDUs received. */
  dataIns: number;
}

/** Sense key and ASC/ASCQ from fixed (0x70/0x71) or descriptor (0x72/0x73) sense data. */
export function senseCodes(s: Uint8Array | undefined): { key: number; asc: number; ascq: number } | undefined {
  if (!s || s.length < 4) return undefined;
  const code = s[0] & 0x7f;
  if (code === 0x72 || code === 0x73) return { key: s[1] & 0x0f, asc: s[2], ascq: s[3] };
  if (s.length < 14) return undefined;
  return { key: s[2] & 0x0f, asc: s[12], ascq: s[13] };
}

export function lunBytes(lun: number): Uint8Array {
  const l = new Uint8Array(8);
  if (lun < 256) l[1] = lun; else { l[0] = 0x40 | ((lun >>> 8) & 0x3f); l[1] = lun & 0xff; }
  return l;
}

export function textPairs(d: Uint8Array): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const s of Buffer.from(d.buffer, d.byteOffset, d.length).toString('utf8').split('\0')) {
    if (!s) continue;
    const i = s.indexOf('=');
    out.push(i < 0 ? [s, ''] : [s.slice(0, i), s.slice(i + 1)]);
  }
  return out;
}
export const textData = (pairs: Array<[string, string]>) => Uint8Array.from(Buffer.from(pairs.map(([k, v]) => `${k}=${v}\0`).join('')));

/** READ(16) / WRITE(16) CDBs (SBC-3 5.x). */
export function cdb16(op: number, lba: bigint, blocks: number): Uint8Array {
  const c = new Uint8Array(16);
  c[0] = op;
  new DataView(c.buffer).setBigUint64(2, lba);
  wr32(c, 10, blocks);
  return c;
}

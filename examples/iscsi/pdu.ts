/**
 * The iSCSI PDU on the wire (RFC 7143 section 11): the 48-byte Basic Header Segment (BHS), field
 * accessors, builders for the PDUs a target sends, and a reader that frames a TCP byte stream into
 * PDUs (BHS, AHS, header digest, data segment, padding, data digest), sans-IO.
 *
 * Malformed input never throws: the reader hands the PDU up with a `problem` (the session answers
 * it with a Reject, RFC 7143 11.17) or, when the stream can no longer be framed (header digest
 * error, RFC 7143 7.8), stops and reports a fatal reason (the session closes the connection).
 */
import { crc32c, putDigest, getDigest } from './crc32c';

export const BHS_LEN = 48;
export const DIGEST_LEN = 4;
/** RFC 7143 11.2.1.3: DataSegmentLength is 24 bits. */
export const MAX_DSL = 0xffffff;
/** The reserved tag value (RFC 7143 11.2.1.8 / 11.7.4: 0xffffffff). */
export const RESERVED_TAG = 0xffffffff;

/** RFC 7143 11.2.1.2 opcodes. */
export const enum Op {
  NopOut = 0x00, ScsiCmd = 0x01, TmfReq = 0x02, LoginReq = 0x03, TextReq = 0x04, DataOut = 0x05,
  LogoutReq = 0x06, Snack = 0x10,
  NopIn = 0x20, ScsiRsp = 0x21, TmfRsp = 0x22, LoginRsp = 0x23, TextRsp = 0x24, DataIn = 0x25,
  LogoutRsp = 0x26, R2t = 0x31, AsyncMsg = 0x32, Reject = 0x3f,
}

/** Initiator opcodes this target understands (0x1c-0x1e are vendor specific, everything else reserved). */
export function isInitiatorOpcode(op: number): boolean {
  return op <= 0x06 || op === Op.Snack;
}

/** RFC 7143 11.17.1 Reject reasons. */
export const enum RejectReason {
  DataDigest = 0x02, SnackReject = 0x03, ProtocolError = 0x04, CommandNotSupported = 0x05,
  ImmediateReject = 0x06, TaskInProgress = 0x07, InvalidDataAck = 0x08, InvalidPduField = 0x09,
  OutOfResources = 0x0a, WaitingForLogout = 0x0c,
}

// ---- field access (network byte order) --------------------------------------------------------

export function rd16(b: Uint8Array, o: number): number { return (b[o] << 8) | b[o + 1]; }
export function rd24(b: Uint8Array, o: number): number { return (b[o] << 16) | (b[o + 1] << 8) | b[o + 2]; }
export function rd32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}
export function wr16(b: Uint8Array, o: number, v: number): void { b[o] = (v >>> 8) & 0xff; b[o + 1] = v & 0xff; }
export function wr24(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 16) & 0xff; b[o + 1] = (v >>> 8) & 0xff; b[o + 2] = v & 0xff;
}
export function wr32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff; b[o + 1] = (v >>> 16) & 0xff; b[o + 2] = (v >>> 8) & 0xff; b[o + 3] = v & 0xff;
}

/** Common BHS fields (RFC 7143 11.2.1). */
export const bhs = {
  opcode: (h: Uint8Array) => h[0] & 0x3f,
  /** I bit: immediate delivery (11.2.1.1). */
  immediate: (h: Uint8Array) => (h[0] & 0x40) !== 0,
  /** F bit (byte 1, bit 7). */
  final: (h: Uint8Array) => (h[1] & 0x80) !== 0,
  flags: (h: Uint8Array) => h[1],
  /** TotalAHSLength in 4-byte words (11.2.1.4). */
  ahsWords: (h: Uint8Array) => h[4],
  dataLength: (h: Uint8Array) => rd24(h, 5),
  lun: (h: Uint8Array) => h.subarray(8, 16),
  itt: (h: Uint8Array) => rd32(h, 16),
  ttt: (h: Uint8Array) => rd32(h, 20),
  cmdSN: (h: Uint8Array) => rd32(h, 24),
  expStatSN: (h: Uint8Array) => rd32(h, 28),
} as const;

/** Data segments are padded to a 4-byte boundary (RFC 7143 11.2.3). */
export function padLen(n: number): number { return (4 - (n & 3)) & 3; }

/**
 * Decodes an 8-byte LUN field (SAM-5 single level: peripheral device addressing with bus 0, or flat
 * space addressing). Other forms decode to 0xffffffff, which no LUN has.
 */
export function decodeLun(l: Uint8Array): number {
  for (let i = 2; i < 8; i++) if (l[i] !== 0) return 0xffffffff;
  const method = l[0] >>> 6;
  if (method === 0 && (l[0] & 0x3f) === 0) return l[1];
  if (method === 1) return ((l[0] & 0x3f) << 8) | l[1];
  return 0xffffffff;
}

/** Encodes a LUN for REPORT LUNS style fields (peripheral < 256, flat space above). */
export function encodeLun(lun: number): Uint8Array {
  const l = new Uint8Array(8);
  if (lun < 256) l[1] = lun;
  else { l[0] = 0x40 | ((lun >>> 8) & 0x3f); l[1] = lun & 0xff; }
  return l;
}

// ---- building target PDUs ---------------------------------------------------------------------

/** A fresh zeroed BHS with room for a header digest after it. */
export function newBhs(op: number, flags: number): Uint8Array {
  const h = new Uint8Array(BHS_LEN + DIGEST_LEN);
  h[0] = op;
  h[1] = flags;
  return h;
}

const ZERO_PAD = new Uint8Array(DIGEST_LEN + 3);

/**
 * Completes a target PDU for sending: sets DataSegmentLength, appends the header digest, padding
 * and data digest as negotiated (RFC 7143 11.2.3: padding zero, digests little end first, the data
 * digest covers data and padding and is present only with a data segment). `h` must come from
 * newBhs; `data` views go out as they are (the socket copies them once).
 */
export function frame(h: Uint8Array, data: readonly Uint8Array[], dataLen: number,
                      headerDigest: boolean, dataDigest: boolean): Uint8Array[] {
  wr24(h, 5, dataLen);
  h[4] = 0;
  let head = h.subarray(0, BHS_LEN);
  if (headerDigest) {
    putDigest(h, BHS_LEN, crc32c(h, 0, 0, BHS_LEN));
    head = h.subarray(0, BHS_LEN + DIGEST_LEN);
  }
  if (dataLen === 0) return [head];
  const out: Uint8Array[] = [head];
  let crc = 0;
  for (const d of data) {
    if (d.length === 0) continue;
    out.push(d);
    if (dataDigest) crc = crc32c(d, crc);
  }
  const pad = padLen(dataLen);
  if (!dataDigest) {
    if (pad) out.push(ZERO_PAD.subarray(0, pad));
    return out;
  }
  const tail = new Uint8Array(pad + DIGEST_LEN);
  if (pad) crc = crc32c(tail, crc, 0, pad);
  putDigest(tail, pad, crc);
  out.push(tail);
  return out;
}

// ---- reading initiator PDUs -------------------------------------------------------------------

/** Why a framed PDU cannot be used as it is (the session answers per RFC 7143 11.17 / 7.8). */
export type PduProblem =
  /** TotalAHSLength non-zero: no AHS is supported (extended CDB, bidirectional length). */
  | 'ahs'
  /** DataSegmentLength above our MaxRecvDataSegmentLength (RFC 7143 13.12): data skipped. */
  | 'data-too-long'
  /** Data digest mismatch (RFC 7143 7.8): payload discarded. */
  | 'data-digest'
  /** Opcode not defined for an initiator (RFC 7143 11.2.1.2). */
  | 'reserved-opcode';

/** Fatal framing errors: the stream cannot be resynchronised, the connection must close. */
export type PduFatal = 'header-digest';

/**
 * Pins the memory of the chunk being read so views of it stay valid after `input` returns; the
 * returned function unpins (idempotent). `null`: over the holder's budget, the reader copies.
 * (Over TCP a chunk is a received frame: holding it keeps the frame out of the pool and its bytes
 * in the receive window, so a holder must refuse long before either runs out.)
 */
export type Hold = () => (() => void) | null;

/** A data segment kept beyond the PDU callback: views (pinned chunks or buffers the reader filled). */
export interface Retained {
  readonly parts: readonly Uint8Array[];
  /** Unpins the chunks behind `parts` (call once, when the parts are no longer used). */
  readonly release: () => void;
}

export interface Pdu {
  /** The 48-byte BHS; valid during the callback only (copy what is kept). */
  readonly bhs: Uint8Array;
  /** DataSegmentLength as received (0 for a problem other than 'reserved-opcode'/'ahs'). */
  readonly dataLength: number;
  /**
   * The data segment without padding in one array, valid during the callback only: a view when it
   * arrived in one piece, else joined (a copy) on first use. Data-Out keepers use `retain`.
   */
  readonly data: Uint8Array;
  readonly problem?: PduProblem;
  /**
   * Keeps the data segment after the callback (call during the callback). SCSI Command immediate
   * data and Data-Out come as views of the received chunks, pinned through `hold`, one part per
   * chunk; the rest (other PDUs, input without `hold`, a refused hold) as copies. A PDU not
   * retained has its pins dropped when the callback returns.
   */
  retain(): Retained;
}

const NOOP = () => { /* nothing held */ };
const EMPTY = new Uint8Array(0);
const NOTHING: Retained = { parts: [], release: NOOP };

const enum St { Header, Data, Skip, Dead }

/** One function that runs every release in `pins` once. */
function releaser(pins: Array<() => void>): () => void {
  if (pins.length === 0) return NOOP;
  if (pins.length === 1) return pins[0];
  let done = false;
  return () => { if (!done) { done = true; for (const r of pins) r(); } };
}

function join(parts: readonly Uint8Array[], len: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(len);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

/**
 * Frames the initiator's byte stream. Digests and the data limit may change between PDUs (after
 * the last Login Response, RFC 7143 13.1: digests start with the first PDU after it).
 *
 * Copies: a SCSI Command's immediate data or a Data-Out payload that spans several input chunks is
 * gathered as views, one per chunk, each chunk pinned with `hold` while the piece is read; the
 * keeper (the task) gets the views and the pins, so the only copy is the backend's. Other PDUs'
 * data, and every byte after a refused hold, is copied into a buffer of the reader's.
 */
export class PduReader {
  headerDigest = false;
  dataDigest = false;
  /** Our MaxRecvDataSegmentLength (RFC 7143 13.12); longer data segments are skipped and reported. */
  maxData = 8192;
  /** Data segment bytes of SCSI Command / Data-Out PDUs that were copied, and pieces kept as pinned views. */
  readonly stats = { copiedBytes: 0, heldPieces: 0, refusedHolds: 0 };

  private st = St.Header;
  /** Header bytes gathered across chunks (BHS + AHS + digest, at most 48 + 1020 + 4). */
  private hdr = new Uint8Array(BHS_LEN + 1020 + DIGEST_LEN);
  private hdrHave = 0;
  private hdrNeed = BHS_LEN;
  /** The current PDU's header once complete (a copy in `hdr` or a view of a chunk). */
  private cur: Uint8Array = EMPTY;
  private curProblem: PduProblem | undefined;
  /** The current PDU's data may be kept as views (SCSI Command immediate data, Data-Out). */
  private viewable = false;
  /** Data segment gathering: data (parts), padding + digest (tail). */
  private dsl = 0;
  private dataHave = 0;
  private parts: Uint8Array[] = [];
  private pins: Array<() => void> = [];
  /** Once a piece is copied, the rest of the segment is copied too (parts stay in order). */
  private copyBuf: Uint8Array = EMPTY;
  private copyHave = 0;
  private tail = new Uint8Array(3 + DIGEST_LEN);
  private tailHave = 0;
  private tailNeed = 0;
  private skipLeft = 0;

  constructor(private readonly onPdu: (p: Pdu) => void, private readonly onFatal: (r: PduFatal) => void) {}

  /** True when bytes of an unfinished PDU are buffered (a close now is "mid-PDU"). */
  get midPdu(): boolean { return this.st !== St.Dead && (this.st !== St.Header || this.hdrHave > 0); }

  /** Stops reading (after a fatal error or when the connection ends); pins of a partial PDU are dropped. */
  stop(): void {
    this.st = St.Dead;
    this.dropGathered();
  }

  input(chunk: Uint8Array, hold?: Hold): void {
    let pos = 0;
    const n = chunk.length;
    while (pos < n && this.st !== St.Dead) {
      if (this.st === St.Header) {
        // Fast path: a whole header sits in this chunk and nothing is buffered.
        if (this.hdrHave === 0 && n - pos >= BHS_LEN) {
          const need = this.headerLen(chunk, pos);
          if (n - pos >= need) {
            this.cur = chunk.subarray(pos, pos + need);
            pos += need;
            if (!this.headerDone()) return;
            continue;
          }
        }
        const take = Math.min(this.hdrNeed - this.hdrHave, n - pos);
        this.hdr.set(chunk.subarray(pos, pos + take), this.hdrHave);
        this.hdrHave += take;
        pos += take;
        if (this.hdrHave === BHS_LEN && this.hdrNeed === BHS_LEN) this.hdrNeed = this.headerLen(this.hdr, 0);
        if (this.hdrHave < this.hdrNeed) continue;
        this.cur = this.hdr.subarray(0, this.hdrNeed);
        this.hdrHave = 0;
        this.hdrNeed = BHS_LEN;
        if (!this.headerDone()) return;
      } else if (this.st === St.Skip) {
        const take = Math.min(this.skipLeft, n - pos);
        this.skipLeft -= take;
        pos += take;
        if (this.skipLeft === 0) this.deliver([], 0, [], true, undefined);
      } else {
        // Data segment, padding, digest.
        const dsl = this.dsl;
        const full = dsl + this.tailNeed;
        if (this.dataHave === 0 && this.tailHave === 0 && n - pos >= full) {
          // All of it in this chunk: a view, pinned only if the keeper retains it.
          const data = chunk.subarray(pos, pos + dsl);
          const tail = chunk.subarray(pos + dsl, pos + full);
          pos += full;
          this.dataDone([data], tail, [], false, this.viewable ? hold : undefined);
          continue;
        }
        if (this.dataHave < dsl) {
          const take = Math.min(dsl - this.dataHave, n - pos);
          this.gather(chunk.subarray(pos, pos + take), hold);
          this.dataHave += take;
          pos += take;
          if (this.dataHave < dsl) continue;
          if (this.copyBuf.length) { this.parts.push(this.copyBuf); this.copyBuf = EMPTY; }
        }
        // Padding and digest may themselves be split across chunks: gathered in `tail`.
        const take = Math.min(this.tailNeed - this.tailHave, n - pos);
        this.tail.set(chunk.subarray(pos, pos + take), this.tailHave);
        this.tailHave += take;
        pos += take;
        if (this.tailHave < this.tailNeed) continue;
        const parts = this.parts;
        const pins = this.pins;
        this.parts = [];
        this.pins = [];
        this.dataHave = 0;
        this.tailHave = 0;
        this.dataDone(parts, this.tail.subarray(0, this.tailNeed), pins, true, undefined);
      }
    }
    // A header whose data segment is still to come may be a view of this chunk: keep a copy.
    if (this.st === St.Data && this.cur.buffer !== this.hdr.buffer) {
      this.hdr.set(this.cur.subarray(0, BHS_LEN));
      this.cur = this.hdr.subarray(0, BHS_LEN);
    }
  }

  /** One chunk's piece of a data segment that spans chunks: a pinned view, or copied. */
  private gather(piece: Uint8Array, hold: Hold | undefined): void {
    if (this.viewable && this.copyBuf.length === 0) {
      const rel = hold ? hold() : null;
      if (rel) {
        this.parts.push(piece);
        this.pins.push(rel);
        this.stats.heldPieces++;
        return;
      }
      if (hold) this.stats.refusedHolds++;
    }
    if (this.copyBuf.length === 0) {
      this.copyBuf = new Uint8Array(this.dsl - this.dataHave);
      this.copyHave = 0;
    }
    this.copyBuf.set(piece, this.copyHave);
    this.copyHave += piece.length;
    if (this.viewable) this.stats.copiedBytes += piece.length;
  }

  /** Forgets a partially gathered data segment and drops its pins. */
  private dropGathered(): void {
    const pins = this.pins;
    this.parts = [];
    this.pins = [];
    this.copyBuf = EMPTY;
    this.dataHave = 0;
    this.tailHave = 0;
    for (const r of pins) r();
  }

/** Header length: BHS, AHS (TotalAHSLength words, RFC 7143 11.2.1.4), header digest. */
  private headerLen(b: Uint8Array, o: number): number {
    return BHS_LEN + b[o + 4] * 4 + (this.headerDigest ? DIGEST_LEN : 0);
  }

  /** A complete header is in `cur`. Returns false when reading must stop. */
  private headerDone(): boolean {
    const h = this.cur;
    const hlen = h.length - (this.headerDigest ? DIGEST_LEN : 0);
    if (this.headerDigest && crc32c(h, 0, 0, hlen) !== getDigest(h, hlen)) {
      // RFC 7143 7.8: a header digest error means the length fields cannot be trusted; without a
      // sync and steering layer the only way on is to close the connection.
      this.st = St.Dead;
      this.onFatal('header-digest');
      return false;
    }
    this.dsl = rd24(h, 5);
    this.curProblem = h[4] !== 0 ? 'ahs' : !isInitiatorOpcode(h[0] & 0x3f) ? 'reserved-opcode' : undefined;
    const op = h[0] & 0x3f;
    this.viewable = this.curProblem === undefined && (op === Op.ScsiCmd || op === Op.DataOut);
    const wire = this.dsl + padLen(this.dsl) + (this.dsl && this.dataDigest ? DIGEST_LEN : 0);
    if (this.dsl > this.maxData) {
      // Never buffered: skipped, then reported.
      this.curProblem = 'data-too-long';
      this.cur = h.slice(0, BHS_LEN);
      this.skipLeft = wire;
      this.st = St.Skip;
      if (wire === 0) this.deliver([], 0, [], true, undefined);
      return true;
    }
    if (this.dsl === 0) {
      this.deliver([], 0, [], true, undefined);
      return this.st !== St.Dead;
    }
    this.cur = h.subarray(0, BHS_LEN);
    this.tailNeed = padLen(this.dsl) + (this.dataDigest ? DIGEST_LEN : 0);
    this.st = St.Data;
    return true;
  }

  /**
   * A data segment is complete. `stable`: the parts outlive this input call (pinned with `pins`, or
   * the reader's copies); else they are views of the current chunk, pinned on retain via `hold`.
   */
  private dataDone(parts: Uint8Array[], tail: Uint8Array, pins: Array<() => void>, stable: boolean,
                   hold: Hold | undefined): void {
    const len = this.dsl;
    if (this.dataDigest) {
      // RFC 7143 11.2.3 / 13.1: the data digest covers the data and its padding; CRC32C chains over
      // the parts, so a segment spread over chunks needs no copy to be checked.
      const pad = tail.length - DIGEST_LEN;
      let crc = 0;
      for (const p of parts) crc = crc32c(p, crc);
      if (pad) crc = crc32c(tail, crc, 0, pad);
      if (crc !== getDigest(tail, pad)) {
        // RFC 7143 7.8: the PDU is discarded and answered with a Reject (Data Digest Error).
        for (const r of pins) r();
        this.curProblem = 'data-digest';
        this.deliver([], 0, [], true, undefined);
        return;
      }
    }
    this.deliver(parts, len, pins, stable, hold);
  }

  private deliver(parts: readonly Uint8Array[], len: number, pins: Array<() => void>, stable: boolean,
                  hold: Hold | undefined): void {
    const h = this.cur.length > BHS_LEN ? this.cur.subarray(0, BHS_LEN) : this.cur;
    const problem = this.curProblem;
    const viewable = this.viewable;
    this.st = St.Header;
    this.cur = EMPTY;
    this.curProblem = undefined;
    this.viewable = false;
    const stats = this.stats;
    let joined: Uint8Array | null = null;
    let kept = false;
    const pdu: Pdu = {
      bhs: h, dataLength: len, problem,
      get data() { return (joined ??= len === 0 ? EMPTY : join(parts, len)); },
      retain: (): Retained => {
        if (len === 0) return NOTHING;
        if (kept) return { parts: parts.map((p) => p.slice()), release: NOOP }; // a second keeper gets its own copy
        kept = true;
        if (stable) return { parts, release: releaser(pins) };
        const rel = hold ? hold() : null;
        if (rel) { stats.heldPieces++; return { parts, release: rel }; }
        if (hold) stats.refusedHolds++;
        if (viewable) stats.copiedBytes += len;
        return { parts: parts.map((p) => p.slice()), release: NOOP };
      },
    };
    try {
      this.onPdu(pdu);
    } finally {
      // Not kept: the pins taken while gathering go now.
      if (!kept) for (const r of pins) r();
    }
  }
}

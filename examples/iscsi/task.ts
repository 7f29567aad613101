/**
 * One SCSI task on an iSCSI connection (RFC 7143 sections 4.2.5, 11.3-11.8): Data-Out collection
 * (immediate, unsolicited and R2T-solicited data, with the DataSN / Buffer Offset / length checks),
 * R2T generation (MaxBurstLength, MaxOutstandingR2T), execution on the SCSI layer with the whole
 * Data-Out, then Data-In split by the initiator's MaxRecvDataSegmentLength and MaxBurstLength with
 * the status in the last Data-In when it can be (phase collapse, 11.7.4), or a SCSI Response with
 * sense data, and the residual counts (11.4.5).
 *
 * Error recovery level 0: a sequence error in Data-Out (wrong DataSN or Buffer Offset) is treated
 * as the digest error it implies (RFC 7143 7.1.4.1 / 7.8 b): the task ends with CHECK CONDITION,
 * "protocol service CRC error", once every outstanding data sequence has ended (F bit).
 */
import { ScsiCommand, ScsiResult, ScsiStatus, ScsiTarget, TaskAttr } from './scsi/types';
import { Op, RESERVED_TAG, Retained, newBhs, wr32, rd32, bhs as B } from './pdu';

/** What a task needs from its connection. */
export interface TaskHost {
  readonly scsi: ScsiTarget;
  readonly nexus: string;
  /** Negotiated values. */
  readonly mrdslOut: number; // the initiator's MaxRecvDataSegmentLength
  readonly maxBurstLength: number;
  readonly firstBurstLength: number;
  readonly maxOutstandingR2T: number;
  readonly initialR2T: boolean;
  readonly immediateData: boolean;
  /** Largest write we collect (bytes); larger commands end with CHECK CONDITION. */
  readonly maxTransferLength: number;
  /**
   * Reserves buffer room for a task's solicited data (all of it at once, so tasks never hold part
   * of the budget while waiting for the rest); false when the connection's budget is used up, and
   * then the task is resumed (deliver()) once room is freed.
   */
  reserve(t: Task, n: number): boolean;
  unreserve(n: number): void;
  /**
   * Whether a task whose data is complete may start executing now, reserving `dataIn` bytes of
   * the connection's Data-In room; false: it waits and is resumed (resume()) in its turn.
   */
  admit(t: Task, dataIn: number): boolean;
  /** Gives the Data-In room back once the task's Data-In was handed to the connection. */
  unadmit(dataIn: number): void;
  /** A fresh Target Transfer Tag (never 0xffffffff). */
  nextTtt(): number;
  /**
   * Sends a PDU. `stat`: 'advance' fills StatSN and advances it, 'peek' fills the next StatSN
   * without advancing (R2T, 11.8.3), 'none' leaves the field reserved. ExpCmdSN/MaxCmdSN are filled.
   */
  send(h: Uint8Array, data: readonly Uint8Array[], len: number, stat: 'advance' | 'peek' | 'none'): void;
  /** Runs `fn` and sends what it produced in one host.send (a Data-In train and its status). */
  batch(fn: () => void): void;
  /** The task is finished (answered or aborted): forget it. */
  finished(t: Task): void;
  count(reason: string): void;
}

/** SPC-4 4.5.3 fixed format sense, current error. */
export function fixedSense(key: number, asc: number, ascq: number): Uint8Array {
  const s = new Uint8Array(18);
  s[0] = 0x70;
  s[2] = key & 0x0f;
  s[7] = 10;
  s[12] = asc;
  s[13] = ascq;
  return s;
}

/** RFC 7143 11.4.7.2: iSCSI conditions reported as CHECK CONDITION, ABORTED COMMAND (0x0b). */
export const SENSE_UNEXPECTED_UNSOLICITED = () => fixedSense(0x0b, 0x0c, 0x0c);
export const SENSE_INCORRECT_AMOUNT = () => fixedSense(0x0b, 0x0c, 0x0d);
export const SENSE_PROTOCOL_CRC = () => fixedSense(0x0b, 0x47, 0x05);

interface R2tState { off: number; end: number; next: number; dataSN: number }
/** Data-Out of one PDU at its buffer offset: views of received chunks (pinned) or copies. */
interface Piece { off: number; parts: readonly Uint8Array[]; release: () => void }

export class Task {
  readonly itt: number;
  readonly lunBytes: Uint8Array;
  readonly lun: number;
  readonly cdb: Uint8Array;
  readonly expected: number;
  readonly read: boolean;
  readonly write: boolean;
  readonly attr: TaskAttr;
  readonly cmdSN: number;
  readonly immediate: boolean;
  /** Reached its turn in CmdSN order (or immediate). */
  delivered = false;
  state: 'collect' | 'exec' | 'done' = 'collect';
  aborted = false;

  private pieces: Piece[] = [];
  private received = 0;
  /** Unsolicited Data-Out sequence (TTT 0xffffffff) still open (no F yet). */
  private unsolOpen = false;
  private unsolNext = 0;
  private unsolLimit = 0;
  private unsolDataSN = 0;
  private r2tNext = 0;
  private r2tSN = 0;
  private r2ts = new Map<number, R2tState>();
  private error: Uint8Array | null = null;
  private dataInSN = 0;
  /** Budget reserved for solicited data (0 = none yet). */
  private reserved = 0;
  /** Admitted to execute (admit()), with this much Data-In room. */
  private admitted = false;
  private inReserved = 0;

  constructor(private readonly host: TaskHost, h: Uint8Array, lun: number) {
    this.itt = B.itt(h);
    this.lunBytes = h.slice(8, 16);
    this.lun = lun;
    this.cdb = h.slice(32, 48);
    this.expected = rd32(h, 20);
    this.read = (h[1] & 0x40) !== 0;
    this.write = (h[1] & 0x20) !== 0;
    this.attr = (h[1] & 0x07) as TaskAttr;
    this.cmdSN = B.cmdSN(h);
    this.immediate = B.immediate(h);
  }

  /**
   * The command PDU's immediate data and F bit (RFC 7143 11.3.4 / 4.2.5.1 / 13.10-13.14).
   * `retain` keeps the immediate data beyond the callback.
   */
  start(final: boolean, immLen: number, retain: () => Retained): void {
    const E = this.write ? this.expected : 0;
    if (E > this.host.maxTransferLength) {
      // Beyond what this target collects for one command (SBC-3 5.x: a transfer above the
      // maximum transfer length is INVALID FIELD IN CDB).
      this.fail(fixedSense(0x05, 0x24, 0x00), 'write-too-long');
    } else if (immLen > 0) {
      if (!this.write) this.fail(SENSE_INCORRECT_AMOUNT(), 'immediate-data-without-write');
      else if (!this.host.immediateData) this.fail(SENSE_UNEXPECTED_UNSOLICITED(), 'immediate-data-not-negotiated');
      else if (immLen > E || immLen > this.host.firstBurstLength) this.fail(SENSE_INCORRECT_AMOUNT(), 'immediate-data-too-long');
      else {
        const r = retain();
        this.pieces.push({ off: 0, parts: r.parts, release: r.release });
        this.received = immLen;
      }
    }
    this.unsolNext = immLen;
    this.r2tNext = immLen;
    if (!final) {
      // RFC 7143 11.3.4: F clear means unsolicited Data-Out PDUs follow, up to FirstBurstLength
      // (13.14); with InitialR2T=Yes (13.10) there must be none.
      this.unsolOpen = true;
      this.unsolLimit = Math.min(E, this.host.firstBurstLength);
      if (!this.write) this.fail(SENSE_UNEXPECTED_UNSOLICITED(), 'unsolicited-without-write');
      else if (this.host.initialR2T) this.fail(SENSE_UNEXPECTED_UNSOLICITED(), 'unsolicited-data-not-negotiated');
    }
  }

  /**
   * A Data-Out PDU for this task (RFC 7143 11.7). `retain` null: the PDU was discarded for a data
   * digest error (7.8 b): the task fails, the sequence still ends with its F bit.
   */
  dataOut(h: Uint8Array, retain: (() => Retained) | null, len: number): void {
    if (this.state !== 'collect' || this.aborted) { this.host.count('data-out-task-not-collecting'); return; }
    const ttt = B.ttt(h);
    const final = B.final(h);
    const dataSN = rd32(h, 36);
    const off = rd32(h, 40);
    if (!retain) {
      this.fail(SENSE_PROTOCOL_CRC(), 'data-out-digest-lost');
      if (final) {
        if (ttt === RESERVED_TAG) this.unsolOpen = false;
        else this.r2ts.delete(ttt);
      }
      this.kick();
      return;
    }
    if (ttt === RESERVED_TAG) {
      // Unsolicited data (11.7.4: TTT 0xffffffff).
      if (!this.unsolOpen) {
        this.fail(SENSE_UNEXPECTED_UNSOLICITED(), 'unsolicited-data-unexpected');
      } else if (dataSN !== this.unsolDataSN || off !== this.unsolNext) {
        // 11.7.5 / 11.7.6: DataSN counts from 0 in the sequence; offsets in order (DataPDUInOrder=Yes).
        this.fail(SENSE_PROTOCOL_CRC(), dataSN !== this.unsolDataSN ? 'data-out-bad-datasn' : 'data-out-bad-offset');
      } else if (off + len > this.unsolLimit) {
        this.fail(SENSE_INCORRECT_AMOUNT(), 'unsolicited-data-too-long');
      } else if (!this.error) {
        this.accept(off, len, retain);
        this.unsolNext += len;
        this.unsolDataSN++;
      }
      if (final) {
        this.unsolOpen = false;
        if (!this.error) this.r2tNext = this.unsolNext;
      }
      this.kick();
      return;
    }
    const r = this.r2ts.get(ttt);
    if (!r) { this.host.count('data-out-unknown-ttt'); return; }
    if (dataSN !== r.dataSN || off !== r.next) {
      // RFC 7143 7.1.4.1: a DataSN gap implies a lost (digest-failed) PDU: handled as 7.8 b.
      this.fail(SENSE_PROTOCOL_CRC(), dataSN !== r.dataSN ? 'data-out-bad-datasn' : 'data-out-bad-offset');
    } else if (off + len > r.end) {
      this.fail(SENSE_INCORRECT_AMOUNT(), 'data-out-beyond-r2t');
    } else if (final && off + len !== r.end) {
      this.fail(SENSE_INCORRECT_AMOUNT(), 'data-out-short-sequence');
    } else if (!this.error) {
      this.accept(off, len, retain);
      r.next += len;
      r.dataSN++;
    }
    if (final) this.r2ts.delete(ttt);
    this.kick();
  }

  /** The task reached its turn in CmdSN order. */
  deliver(): void {
    this.delivered = true;
    this.kick();
  }

  /** Room was freed: try to solicit again. */
  resume(): void { this.kick(); }

  /** Aborted by task management or session end: never answered; pinned data released now or when the SCSI layer is done. */
  abort(): void {
    if (this.aborted || this.state === 'done') return;
    this.aborted = true;
    if (this.state === 'collect') {
      this.releaseAll();
      this.state = 'done';
      this.host.finished(this);
      this.settle();
    }
  }

  private waiters: (() => void)[] | null = null;

  /** Calls `fn` once this task can have no further effect: at once when done, else when its command returns. */
  whenSettled(fn: () => void): void {
    if (this.state === 'done') fn();
    else (this.waiters ??= []).push(fn);
  }

  private settle(): void {
    const w = this.waiters;
    this.waiters = null;
    if (w) for (const f of w) f();
  }

  /**
   * Whether a Data-Out with this TTT can belong to the task: unsolicited (0xffffffff), an open R2T
   * of ours, or any TTT once the task no longer collects (that Data-Out is only counted).
   */
  knowsTtt(ttt: number): boolean {
    return ttt === RESERVED_TAG || this.state !== 'collect' || this.aborted || this.r2ts.has(ttt);
  }

  /** Number of R2T sequences still open (tests and TMF checks). */
  get openSequences(): number { return this.r2ts.size + (this.unsolOpen ? 1 : 0); }

  private accept(off: number, len: number, retain: () => Retained): void {
    if (len === 0) return;
    const r = retain();
    this.pieces.push({ off, parts: r.parts, release: r.release });
    this.received += len;
  }

  private fail(sense: Uint8Array, reason: string): void {
    this.host.count(reason);
    if (!this.error) this.error = sense;
  }

  /** Moves the task on: respond after an error, execute when all data is in, or solicit more. */
  private kick(): void {
    if (!this.delivered || this.state !== 'collect' || this.aborted) return;
    if (this.error) {
      // RFC 7143 7.8 b / 11.17.1: wait for the last PDU (F) of every open sequence, then answer.
      if (this.r2ts.size === 0 && !this.unsolOpen) {
        this.releaseAll();
        this.respond({ status: ScsiStatus.CheckCondition, sense: this.error });
      }
      return;
    }
    const E = this.write ? this.expected : 0;
    if (this.received >= E && !this.unsolOpen && this.r2ts.size === 0) {
      if (!this.admitted) {
        // A read's Data-In is at most the transfer limit (the SCSI layer refuses longer ones).
        const n = this.read ? Math.min(this.expected, this.host.maxTransferLength) : 0;
        if (!this.host.admit(this, n)) return; // resumed in its turn
        this.admitted = true;
        this.inReserved = n;
      }
      this.execute();
      return;
    }
    if (this.unsolOpen) return; // R2Ts follow the unsolicited burst (DataSequenceInOrder=Yes)
    // RFC 7143 11.8: R2Ts for what is missing, each at most MaxBurstLength (13.13), at most
    // MaxOutstandingR2T open at once (13.17).
    if (this.r2tNext < E && this.reserved === 0) {
      const need = E - this.r2tNext;
      if (!this.host.reserve(this, need)) return; // resumed when room is freed
      this.reserved = need;
    }
    while (this.r2tNext < E && this.r2ts.size < this.host.maxOutstandingR2T) {
      const len = Math.min(this.host.maxBurstLength, E - this.r2tNext);
      const ttt = this.host.nextTtt();
      this.r2ts.set(ttt, { off: this.r2tNext, end: this.r2tNext + len, next: this.r2tNext, dataSN: 0 });
      const h = newBhs(Op.R2t, 0x80);
      h.set(this.lunBytes, 8);
      wr32(h, 16, this.itt);
      wr32(h, 20, ttt);
      wr32(h, 36, this.r2tSN++);
      wr32(h, 40, this.r2tNext);
      wr32(h, 44, len);
      this.host.send(h, [], 0, 'peek');
      this.r2tNext += len;
    }
  }

  private execute(): void {
    this.state = 'exec';
    this.pieces.sort((a, b) => a.off - b.off);
    const cmd: ScsiCommand = {
      lun: this.lun, cdb: this.cdb, expectedLength: this.expected, read: this.read, write: this.write,
      // ScsiCommand.dataOut: every piece's parts in offset order, as received (no copy here).
      dataOut: this.pieces.flatMap((p) => p.parts), nexus: this.host.nexus, attr: this.attr, taskTag: this.itt,
    };
    let called = false;
    try {
      this.host.scsi.execute(cmd, (r) => {
        if (called) return; // "done is called exactly once"; a second call is ignored
        called = true;
        if (this.aborted) { this.releaseAll(); this.state = 'done'; this.host.finished(this); this.settle(); return; }
        this.host.batch(() => {
          this.respond(r);
          this.releaseAll(); // after the answer: freed room may start another task's R2Ts
        });
      });
    } catch {
      // The SCSI layer never throws by contract; if it does, the task fails as a target failure.
      if (!called) {
        called = true;
        this.releaseAll();
        this.host.count('scsi-execute-threw');
        if (this.aborted) { this.state = 'done'; this.host.finished(this); this.settle(); return; }
        this.respond({ status: ScsiStatus.CheckCondition, sense: fixedSense(0x04, 0x44, 0x00) });
      }
    }
  }

  private releaseAll(): void {
    for (const p of this.pieces) p.release();
    this.pieces = [];
    if (this.reserved) { const n = this.reserved; this.reserved = 0; this.host.unreserve(n); }
    if (this.inReserved) { const n = this.inReserved; this.inReserved = 0; this.host.unadmit(n); }
  }

  /** Data-In and/or SCSI Response (RFC 7143 11.4, 11.7). */
  private respond(r: ScsiResult): void {
    this.state = 'done';
    // Forgotten first, so the window in these PDUs' MaxCmdSN already counts this task as done.
    this.host.finished(this);
    this.settle();
    const E = this.expected;
    let flags = 0;
    let residual = 0;
    const dataIn = r.dataIn ?? [];
    let total = 0;
    for (const d of dataIn) total += d.length;
    // 11.4.5: residuals against the Expected Data Transfer Length.
    const readE = this.read ? E : 0;
    if (this.read || total > 0) {
      if (total > readE) { flags |= 0x04; residual = total - readE; } else if (total < readE) { flags |= 0x02; residual = readE - total; }
    } else if (this.write) {
      const tl = r.transferLength ?? E;
      if (tl > E) { flags |= 0x04; residual = tl - E; } else if (tl < E) { flags |= 0x02; residual = E - tl; }
    }
    const send = Math.min(total, readE);
    const collapse = send > 0 && !r.sense && (r.status === ScsiStatus.Good || r.status === ScsiStatus.ConditionMet);
    if (send > 0) this.sendDataIn(dataIn, send, collapse ? { status: r.status, flags, residual } : null);
    if (!collapse) {
      const h = newBhs(Op.ScsiRsp, 0x80 | flags);
      h[2] = 0x00; // 11.4.3: Command Completed at Target
      h[3] = r.status;
      wr32(h, 16, this.itt);
      // 11.4.8 ExpDataSN: the Data-In PDUs sent (R2Ts share the numbering only for bidirectional
      // commands, which are not supported); 0 when no Data-In was sent.
      wr32(h, 36, this.dataInSN);
      wr32(h, 44, residual);
      let data: Uint8Array[] = [];
      let len = 0;
      if (r.sense && r.sense.length) {
        // 11.4.7: SenseLength (2 bytes) then the sense data.
        const sl = new Uint8Array(2);
        sl[0] = (r.sense.length >>> 8) & 0xff;
        sl[1] = r.sense.length & 0xff;
        data = [sl, r.sense];
        len = 2 + r.sense.length;
      }
      this.host.send(h, data, len, 'advance');
    }
  }

  /**
   * RFC 7143 11.7: Data-In PDUs of at most the initiator's MaxRecvDataSegmentLength, sequences of
   * at most MaxBurstLength ended by F, DataSN from 0, Buffer Offset increasing; with `status` the
   * last PDU carries S, the status, residual flags and count (phase collapse, 11.7.4).
   */
  private sendDataIn(views: readonly Uint8Array[], total: number,
                     status: { status: number; flags: number; residual: number } | null): void {
    const seg = Math.max(512, this.host.mrdslOut);
    const burst = Math.max(512, this.host.maxBurstLength);
    let vi = 0;
    let vo = 0;
    let off = 0;
    let inBurst = 0;
    while (off < total) {
      const len = Math.min(seg, total - off, burst - inBurst);
      const parts: Uint8Array[] = [];
      let need = len;
      while (need > 0) {
        const v = views[vi];
        const take = Math.min(need, v.length - vo);
        parts.push(vo === 0 && take === v.length ? v : v.subarray(vo, vo + take));
        need -= take;
        vo += take;
        if (vo === v.length) { vi++; vo = 0; }
      }
      off += len;
      inBurst += len;
      const last = off === total;
      const endBurst = last || inBurst === burst;
      let flags = endBurst ? 0x80 : 0;
      if (last && status) flags |= 0x01 | status.flags;
      const h = newBhs(Op.DataIn, flags);
      if (last && status) h[3] = status.status;
      wr32(h, 16, this.itt);
      wr32(h, 20, RESERVED_TAG);
      wr32(h, 36, this.dataInSN++);
      wr32(h, 40, off - len);
      if (last && status) wr32(h, 44, status.residual);
      this.host.send(h, parts, len, last && status ? 'advance' : 'none');
      if (endBurst) inBurst = 0;
    }
  }
}

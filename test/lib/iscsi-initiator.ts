/**
 * A small iSCSI initiator over node:net for lab tests against real TCP (written from RFC 7143; the
 * CRC32C and the BHS field helpers come from examples/iscsi, everything the initiator decides is
 * its own): login (normal and discovery sessions, every operational key offered explicitly,
 * optional CRC32C header/data digests, optional one-way CHAP), SCSI commands with Data-In
 * reassembly, R2T-solicited, immediate and unsolicited Data-Out, SendTargets, NOP-Out, Logout, and
 * a raw mode (`sendRaw`, `sendPdu`, `received`) that sends arbitrary bytes and collects every PDU
 * that comes back. Every wait is bounded (`timeoutMs`).
 *
 * What the target sends is checked as it arrives (digests, padding, StatSN one by one, DataSN and
 * Buffer Offset order, Data-In within the expected length, our MaxRecvDataSegmentLength and
 * MaxBurstLength, R2T within the command and MaxBurstLength); a violation is recorded in
 * `violations` and fails the waiting operation. PDU types and helpers: iscsi-ini-types.ts.
 */
import * as net from 'node:net';
import { createHash } from 'node:crypto';
import { crc32c, getDigest, putDigest } from '../../examples/iscsi/crc32c';
import { BHS_LEN, DIGEST_LEN, padLen, rd16, rd24, rd32, wr16, wr24, wr32 } from '../../examples/iscsi/pdu';
import {
  InPdu, IscsiError, LoginError, LoginOptions, Negotiated, OP, RejectError, ScsiReply, ScsiRequest, TAG_NONE,
  cdb16, lunBytes, senseCodes, snLt, textData, textPairs,
} from './iscsi-ini-types';

export * from './iscsi-ini-types';

interface Pending {
  itt: number;
  resolve: (p: InPdu) => void;
  reject: (e: Error) => void;
  /** Called for every PDU with this ITT; returns true when the operation is complete. */
  on: (p: InPdu) => boolean;
}

export interface ConnectOptions { host: string; port: number; timeoutMs?: number; localAddress?: string }

export class IscsiInitiator {
  /** Every PDU from the target, in order. */
  readonly received: InPdu[] = [];
  /** Protocol violations seen in what the target sent. */
  readonly violations: string[] = [];
  /** Target NOP-In pings answered / seen. */
  pingsAnswered = 0;
  pingsSeen = 0;
  /** Answer the target's NOP-In pings (off: play a dead initiator). */
  answerPings = true;
  timeoutMs: number;
  cmdSN = 1;
  expStatSN = 0;
  expCmdSN = 1;
  maxCmdSN = 1;
  hd = false;
  dd = false;
  negotiated: Negotiated | null = null;
  /** The final Login Response arrived. */
  fullFeature = false;
  /** Resolves when the TCP connection has closed (either side). */
  readonly closedP: Promise<void>;
  closed = false;
  /** The target ended its side (FIN) or reset the connection. */
  peerEnded = false;
  isid: Uint8Array;

  private itt = 0x100;
  private buf: Buffer = Buffer.alloc(0);
  private readonly pending = new Map<number, Pending>();
  private readonly t0 = Date.now();
  private readonly waiters = new Set<() => void>();
  /** Keys answered in Login Responses so far (digests turn on after the final one, RFC 7143 13.1). */
  private loginAnswers: Map<string, string> | null = null;
  /** Our declared MaxRecvDataSegmentLength (Data-In segments are checked against it). */
  private ourMrdsl = 8192;

  private constructor(readonly sock: net.Socket, timeoutMs: number) {
    this.timeoutMs = timeoutMs;
    this.isid = Uint8Array.of(0x80, (Math.random() * 256) | 0, (Math.random() * 256) | 0, (Math.random() * 256) | 0, 0, 1);
    sock.setNoDelay(true);
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('end', () => { this.peerEnded = true; this.wake(); });
    sock.on('error', () => { this.peerEnded = true; });
    this.closedP = new Promise((r) => sock.once('close', () => {
      this.closed = true;
      for (const p of [...this.pending.values()]) p.reject(new IscsiError('connection closed'));
      this.pending.clear();
      this.wake();
      r();
    }));
  }

  static connect(o: ConnectOptions): Promise<IscsiInitiator> {
    const ms = o.timeoutMs ?? 10000;
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: o.host, port: o.port, ...(o.localAddress ? { localAddress: o.localAddress } : {}) });
      const t = setTimeout(() => { s.destroy(); reject(new Error(`connect ${o.host}:${o.port}: no answer within ${ms} ms`)); }, ms);
      s.once('connect', () => { clearTimeout(t); resolve(new IscsiInitiator(s, ms)); });
      s.once('error', (e) => { clearTimeout(t); reject(e); });
    });
  }

  nextItt(): number { const i = this.itt; this.itt = this.itt >= 0xfffffff0 ? 0x100 : this.itt + 1; return i; }

  // ---- output -----------------------------------------------------------------------------------

  /**
   * One PDU as bytes: BHS (TotalAHSLength and DataSegmentLength filled in), AHS, header digest,
   * data, zero padding, data digest (RFC 7143 11.2: digests as negotiated; `o` overrides).
   */
  encode(bhs: Uint8Array, data: Uint8Array = new Uint8Array(0), o: { hd?: boolean; dd?: boolean; ahs?: Uint8Array; dsl?: number } = {}): Buffer {
    const hd = o.hd ?? this.hd;
    const dd = o.dd ?? this.dd;
    const ahs = o.ahs ?? new Uint8Array(0);
    const head = new Uint8Array(BHS_LEN + ahs.length + (hd ? DIGEST_LEN : 0));
    head.set(bhs.subarray(0, BHS_LEN));
    head[4] = ahs.length / 4;
    wr24(head, 5, o.dsl ?? data.length);
    head.set(ahs, BHS_LEN);
    if (hd) putDigest(head, BHS_LEN + ahs.length, crc32c(head, 0, 0, BHS_LEN + ahs.length));
    const parts: Uint8Array[] = [head];
    if (data.length) {
      const tail = new Uint8Array(padLen(data.length) + (dd ? DIGEST_LEN : 0));
      if (dd) putDigest(tail, tail.length - DIGEST_LEN, crc32c(tail, crc32c(data), 0, tail.length - DIGEST_LEN));
      parts.push(data, tail);
    }
    return Buffer.concat(parts);
  }

  /** Sends raw bytes as they are. */
  sendRaw(b: Uint8Array): void { if (!this.sock.destroyed) this.sock.write(b); }
  /** Sends one PDU (see encode). */
  sendPdu(bhs: Uint8Array, data?: Uint8Array, o?: { hd?: boolean; dd?: boolean; ahs?: Uint8Array }): void {
    this.sendRaw(this.encode(bhs, data, o));
  }

  /** A BHS with the common fields (RFC 7143 11.2.1); ExpStatSN is filled in. */
  header(op: number, flags: number, f: { immediate?: boolean; itt?: number; ttt?: number; cmdSN?: number; lun?: number } = {}): Uint8Array {
    const h = new Uint8Array(BHS_LEN);
    h[0] = op | (f.immediate ? 0x40 : 0);
    h[1] = flags;
    if (f.lun !== undefined) h.set(lunBytes(f.lun), 8);
    wr32(h, 16, f.itt ?? 0);
    wr32(h, 20, f.ttt ?? TAG_NONE);
    wr32(h, 24, f.cmdSN ?? this.cmdSN);
    wr32(h, 28, this.expStatSN);
    return h;
  }

  // ---- input ------------------------------------------------------------------------------------

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (let guard = 0; guard < 100000; guard++) {
      if (this.buf.length < BHS_LEN) break;
      const ahsLen = this.buf[4] * 4;
      const dsl = rd24(this.buf, 5);
      const hl = BHS_LEN + ahsLen + (this.hd ? DIGEST_LEN : 0);
      const total = hl + dsl + padLen(dsl) + (this.dd && dsl ? DIGEST_LEN : 0);
      if (this.buf.length < total) break;
      const b = Uint8Array.from(this.buf.subarray(0, total));
      this.buf = this.buf.subarray(total);
      if (this.hd && crc32c(b, 0, 0, BHS_LEN + ahsLen) !== getDigest(b, BHS_LEN + ahsLen)) {
        this.violation('bad header digest from the target');
        this.sock.destroy();
        return;
      }
      const pad = padLen(dsl);
      for (let i = 0; i < pad; i++) if (b[hl + dsl + i] !== 0) this.violation('non-zero padding (RFC 7143 11.2.3)');
      if (this.dd && dsl && crc32c(b, 0, hl, hl + dsl + pad) !== getDigest(b, hl + dsl + pad)) this.violation('bad data digest from the target');
      const h = b.subarray(0, BHS_LEN);
      const p: InPdu = {
        op: h[0] & 0x3f, flags: h[1], bhs: h, ahs: b.subarray(BHS_LEN, BHS_LEN + ahsLen), data: b.subarray(hl, hl + dsl),
        itt: rd32(h, 16), ttt: rd32(h, 20), statSN: rd32(h, 24), expCmdSN: rd32(h, 28), maxCmdSN: rd32(h, 32), at: Date.now() - this.t0,
      };
      this.onPdu(p);
    }
    this.wake();
  }

  private violation(v: string): void {
    this.violations.push(v);
    for (const p of [...this.pending.values()]) p.reject(new IscsiError(`target protocol violation: ${v}`));
    this.pending.clear();
  }

  private onPdu(p: InPdu): void {
    this.received.push(p);
    // RFC 7143 4.2.2.1: ExpCmdSN/MaxCmdSN in every target PDU (sequence fields valid in all but
    // a Login Response that failed); they never go back.
    if (p.op !== OP.LoginRsp || p.bhs[36] === 0) {
      if (snLt(this.expCmdSN, p.expCmdSN)) this.expCmdSN = p.expCmdSN;
      if (snLt(this.maxCmdSN, p.maxCmdSN) || p.op === OP.LoginRsp) this.maxCmdSN = p.maxCmdSN;
    }
    // StatSN is valid in responses that carry status (11.4.4 etc.; Data-In only with S, R2T never).
    const hasStatus = p.op === OP.ScsiRsp || p.op === OP.TmfRsp || p.op === OP.LoginRsp || p.op === OP.TextRsp ||
      p.op === OP.LogoutRsp || p.op === OP.Reject || p.op === OP.AsyncMsg || (p.op === OP.DataIn && (p.flags & 0x01) !== 0) ||
      (p.op === OP.NopIn && p.itt !== TAG_NONE);
    if (hasStatus) {
      // 4.2.2.2: StatSN counts the status-bearing responses of the connection one by one.
      if (this.fullFeature && p.op !== OP.LoginRsp && p.statSN !== this.expStatSN) {
        this.violations.push(`StatSN ${p.statSN} where ${this.expStatSN} was next (RFC 7143 4.2.2.2), opcode 0x${p.op.toString(16)}`);
      }
      this.expStatSN = (p.statSN + 1) >>> 0;
    }
    if (p.op === OP.LoginRsp && this.loginAnswers && p.bhs[36] === 0) {
      for (const [k, v] of textPairs(p.data)) this.loginAnswers.set(k, v);
      if ((p.flags & 0x80) && (p.flags & 3) === 3) {
        // RFC 7143 13.1: digests start with the first PDU after the last Login Response (the
        // bytes after it in this chunk are framed with them).
        this.hd = this.loginAnswers.get('HeaderDigest') === 'CRC32C';
        this.dd = this.loginAnswers.get('DataDigest') === 'CRC32C';
        this.fullFeature = true;
      }
    }
    if (p.op === OP.NopIn && p.itt === TAG_NONE) {
      // 11.19: a ping from the target (TTT not reserved) is answered with a NOP-Out echoing the TTT.
      if (p.ttt !== TAG_NONE) this.pingsSeen++;
      // 11.19.4: with ITT 0xffffffff the StatSN field holds the next StatSN, not advanced.
      if (this.fullFeature && p.statSN !== this.expStatSN) this.violations.push(`NOP-In ping with StatSN ${p.statSN}, next is ${this.expStatSN} (11.19.4)`);
      if (p.ttt !== TAG_NONE && this.answerPings) {
        const h = this.header(OP.NopOut, 0x80, { immediate: true, itt: TAG_NONE, ttt: p.ttt });
        h.set(p.bhs.subarray(8, 16), 8);
        this.sendPdu(h);
        this.pingsAnswered++;
      }
      return;
    }
    if (p.op === OP.Reject) {
      const rejected = p.data.length >= BHS_LEN ? rd32(p.data, 16) : TAG_NONE;
      const w = this.pending.get(rejected);
      if (w && rejected !== TAG_NONE) { this.pending.delete(rejected); w.reject(new RejectError(p.bhs[2], p)); }
      return;
    }
    const w = this.pending.get(p.itt);
    if (!w) return;
    let done = false;
    try { done = w.on(p); } catch (e) { this.pending.delete(p.itt); w.reject(e as Error); return; }
    if (done) { this.pending.delete(p.itt); w.resolve(p); }
  }

  private wake(): void { for (const w of [...this.waiters]) w(); }

  /** Waits until `cond()` holds (checked after every input), at most `ms`. Returns the last value. */
  async waitFor(cond: () => boolean, ms = this.timeoutMs): Promise<boolean> {
    if (cond()) return true;
    return new Promise((resolve) => {
      const done = (v: boolean) => { clearTimeout(t); this.waiters.delete(check); resolve(v); };
      const check = () => { if (cond()) done(true); };
      const t = setTimeout(() => done(cond()), ms);
      this.waiters.add(check);
    });
  }

  /** PDUs received after `from` (an index into `received`) within `ms`, or until `until` holds. */
  async collect(from: number, ms: number, until?: (got: InPdu[]) => boolean): Promise<InPdu[]> {
    await this.waitFor(() => this.closed || (until ? until(this.received.slice(from)) : false), ms);
    return this.received.slice(from);
  }

  /** Registers an operation by ITT; it fails after the timeout. */
  private expect(itt: number, on: (p: InPdu) => boolean, what: string): Promise<InPdu> {
    return new Promise((resolve, reject) => {
      if (this.closed) { reject(new IscsiError(`${what}: connection closed`)); return; }
      const t = setTimeout(() => { this.pending.delete(itt); reject(new IscsiError(`${what}: no answer within ${this.timeoutMs} ms`)); }, this.timeoutMs);
      this.pending.set(itt, {
        itt, on,
        resolve: (p) => { clearTimeout(t); resolve(p); },
        reject: (e) => { clearTimeout(t); reject(e); },
      });
    });
  }

  /** Waits for room in the command window (RFC 7143 4.2.2.1: CmdSN ≤ MaxCmdSN), then takes a CmdSN. */
  private async takeCmdSN(immediate: boolean): Promise<number> {
    if (immediate) return this.cmdSN;
    if (!(await this.waitFor(() => this.closed || !snLt(this.maxCmdSN, this.cmdSN)))) throw new IscsiError('command window stayed closed');
    if (this.closed) throw new IscsiError('connection closed');
    const sn = this.cmdSN;
    this.cmdSN = (this.cmdSN + 1) >>> 0;
    return sn;
  }

  // ---- login ------------------------------------------------------------------------------------

  async login(o: LoginOptions = {}): Promise<Negotiated> {
    const discovery = o.discovery || !o.targetName;
    const itt = this.nextItt();
    const answers = new Map<string, string>();
    this.loginAnswers = answers;
    let tsih = 0;
    const step = async (csg: number, transit: boolean, nsg: number, pairs: Array<[string, string]>): Promise<InPdu> => {
      const h = this.header(OP.LoginReq, (transit ? 0x80 : 0) | (csg << 2) | (transit ? nsg : 0), { immediate: true, itt, cmdSN: this.cmdSN });
      h[2] = 0; h[3] = 0; // 11.12.4: Version-max / Version-min 0
      h.set(this.isid, 8);
      wr16(h, 14, tsih);
      wr16(h, 20, 0); // CID
      const reply = this.expect(itt, () => true, 'login');
      this.sendPdu(h, textData(pairs), { hd: false, dd: false });
      const r = await reply;
      const status = rd16(r.bhs, 36);
      if (status !== 0) throw new LoginError(status, r);
      tsih = rd16(r.bhs, 14);
      return r;
    };
    const declare: Array<[string, string]> = [
      ['InitiatorName', o.initiatorName ?? 'iqn.2026-12.org.xdpstack:test-initiator'],
      ['SessionType', discovery ? 'Discovery' : 'Normal'],
      ...(!discovery ? [['TargetName', o.targetName!] as [string, string]] : []),
    ];
    let stage = 0;
    let first = true;
    if (!o.skipSecurity) {
      // Security stage (RFC 7143 6.3.1, 12.1.3): AuthMethod, then CHAP_A / CHAP_I+C / CHAP_N+R.
      let r = await step(0, !o.chap, 1, [...declare, ['AuthMethod', o.chap ? 'CHAP' : 'None']]);
      first = false;
      if (o.chap) {
        if (answers.get('AuthMethod') !== 'CHAP') throw new IscsiError(`AuthMethod answered ${answers.get('AuthMethod')}`, r);
        r = await step(0, false, 0, [['CHAP_A', '5']]);
        const id = Number(answers.get('CHAP_I'));
        const c = answers.get('CHAP_C') ?? '';
        if (answers.get('CHAP_A') !== '5' || !Number.isInteger(id) || !/^0x[0-9a-fA-F]+$/.test(c)) throw new IscsiError('bad CHAP challenge', r);
        // RFC 1994 4.1: Response = MD5(Identifier || secret || Challenge).
        const md5 = createHash('md5').update(Uint8Array.of(id & 0xff)).update(Buffer.from(o.chap.secret)).update(Buffer.from(c.slice(2), 'hex')).digest('hex');
        r = await step(0, true, 1, [['CHAP_N', o.chap.user], ['CHAP_R', '0x' + md5]]);
      }
      if (!(r.flags & 0x80) || (r.flags & 3) !== 1) throw new IscsiError('the target did not move to operational negotiation', r);
      stage = 1;
    }
    const mrdsl = o.maxRecvDataSegmentLength ?? 65536;
    this.ourMrdsl = mrdsl;
    const offered: Array<[string, string]> = [
      ['HeaderDigest', o.headerDigest ? 'CRC32C,None' : 'None'],
      ['DataDigest', o.dataDigest ? 'CRC32C,None' : 'None'],
      ['MaxRecvDataSegmentLength', String(mrdsl)],
      ['DefaultTime2Wait', '2'],
      ['DefaultTime2Retain', '0'],
      ['ErrorRecoveryLevel', '0'],
    ];
    if (!discovery) {
      offered.push(
        ['MaxConnections', '1'],
        ['InitialR2T', o.initialR2T === true ? 'Yes' : 'No'],
        ['ImmediateData', o.immediateData === false ? 'No' : 'Yes'],
        ['MaxBurstLength', String(o.maxBurstLength ?? 262144)],
        ['FirstBurstLength', String(o.firstBurstLength ?? 65536)],
        ['MaxOutstandingR2T', String(o.maxOutstandingR2T ?? 1)],
        ['DataPDUInOrder', 'Yes'],
        ['DataSequenceInOrder', 'Yes'],
      );
    }
    // Operational stage: every key in one request, T set toward full feature phase; a target that
    // wants another round answers without T (bounded).
    let r = await step(stage, true, 3, [...(first ? declare : []), ...offered]);
    for (let i = 0; i < 4 && !((r.flags & 0x80) && (r.flags & 3) === 3); i++) r = await step((r.flags >>> 2) & 3, true, 3, []);
    if (!((r.flags & 0x80) && (r.flags & 3) === 3)) throw new IscsiError('login did not reach full feature phase', r);
    this.cmdSN = r.expCmdSN;
    const num = (k: string, dflt: number) => { const v = answers.get(k); return v === undefined ? dflt : Number(v); };
    const n: Negotiated = {
      headerDigest: answers.get('HeaderDigest') === 'CRC32C',
      dataDigest: answers.get('DataDigest') === 'CRC32C',
      targetMrdsl: num('MaxRecvDataSegmentLength', 8192),
      maxBurstLength: num('MaxBurstLength', 262144),
      firstBurstLength: num('FirstBurstLength', 65536),
      initialR2T: (answers.get('InitialR2T') ?? 'Yes') === 'Yes',
      immediateData: (answers.get('ImmediateData') ?? 'Yes') === 'Yes',
      maxOutstandingR2T: num('MaxOutstandingR2T', 1),
      tsih,
      answers,
      unanswered: offered.map(([k]) => k).filter((k) => k !== 'MaxRecvDataSegmentLength' && !answers.has(k)),
    };
    this.loginAnswers = null;
    this.negotiated = n;
    return n;
  }

  // ---- full feature phase -------------------------------------------------------------------------

  /** A SCSI command (RFC 7143 11.3) with its Data-In / Data-Out, to its SCSI Response. */
  async command(req: ScsiRequest): Promise<ScsiReply> {
    const n = this.negotiated;
    if (!n) throw new IscsiError('not logged in');
    const lun = req.lun ?? 0;
    const out = req.writeData ?? new Uint8Array(0);
    const E = req.writeData ? out.length : (req.readLength ?? 0);
    const itt = this.nextItt();
    const rd = req.readLength !== undefined && req.readLength > 0;
    const wr = req.writeData !== undefined && out.length > 0;
    const seg = n.targetMrdsl;
    // Unsolicited data (11.3.4, 13.10/13.11/13.14): immediate up to FirstBurstLength and the
    // target's MRDSL; with InitialR2T=No Data-Out PDUs carry the rest of the first burst.
    const imm = wr && n.immediateData ? Math.min(E, n.firstBurstLength, seg) : 0;
    const unsolEnd = wr && !n.initialR2T ? Math.min(E, n.firstBurstLength) : imm;
    const data = new Uint8Array(rd ? req.readLength! : 0);
    const reply: ScsiReply = { status: -1, response: 0, data, received: 0, overflow: false, underflow: false, residual: 0, r2ts: 0, dataOuts: 0, unsolicited: 0, immediateBytes: imm, dataIns: 0 };
    let nextDataSN = 0;
    let nextOffset = 0;
    let inBurst = 0;
    let finished = false;
    const sendData = (ttt: number, from: number, to: number) => {
      let sn = 0;
      for (let off = from; off < to && !finished && !this.closed; off += seg) {
        const len = Math.min(seg, to - off);
        const h = this.header(OP.DataOut, off + len === to ? 0x80 : 0, { itt, ttt, lun });
        wr32(h, 24, 0); // reserved in Data-Out (11.7)
        wr32(h, 36, sn++); // 11.7.5 DataSN per sequence
        wr32(h, 40, off); // 11.7.6 Buffer Offset
        this.sendPdu(h, out.subarray(off, off + len));
        reply.dataOuts++;
        if (ttt === TAG_NONE) reply.unsolicited++;
      }
    };
    const done = this.expect(itt, (p) => {
      if (p.op === OP.DataIn) {
        const off = rd32(p.bhs, 40);
        if (rd32(p.bhs, 36) !== nextDataSN) throw new IscsiError(`Data-In DataSN ${rd32(p.bhs, 36)}, expected ${nextDataSN} (11.7.5)`);
        nextDataSN++;
        reply.dataIns++;
        // DataPDUInOrder=Yes (13.18): offsets increase without gaps.
        if (off !== nextOffset) throw new IscsiError(`Data-In at offset ${off}, expected ${nextOffset} (13.18 DataPDUInOrder=Yes)`);
        nextOffset += p.data.length;
        // 13.13: a Data-In sequence (ended by F) carries at most MaxBurstLength.
        inBurst += p.data.length;
        if (inBurst > n.maxBurstLength) throw new IscsiError(`Data-In sequence of ${inBurst} bytes above MaxBurstLength ${n.maxBurstLength} (13.13)`);
        if (p.flags & 0x80) inBurst = 0;
        if (p.data.length > this.ourMrdsl) throw new IscsiError(`Data-In segment ${p.data.length} above our MaxRecvDataSegmentLength (13.12)`);
        if (off + p.data.length > data.length) throw new IscsiError(`Data-In beyond the expected length: ${off}+${p.data.length} > ${data.length}`);
        data.set(p.data, off);
        reply.received += p.data.length;
        if (p.flags & 0x01) { // S: status in the last Data-In (11.7.4)
          reply.status = p.bhs[3];
          reply.overflow = (p.flags & 0x04) !== 0;
          reply.underflow = (p.flags & 0x02) !== 0;
          reply.residual = rd32(p.bhs, 44);
          return true;
        }
        return false;
      }
      if (p.op === OP.R2t) {
        const off = rd32(p.bhs, 40);
        const len = rd32(p.bhs, 44);
        reply.r2ts++;
        if (!wr || off + len > E) throw new IscsiError(`R2T ${off}+${len} outside the write (${E}) (11.8.5)`);
        if (len > n.maxBurstLength) throw new IscsiError(`R2T for ${len} above MaxBurstLength ${n.maxBurstLength} (13.13)`);
        sendData(p.ttt, off, off + len);
        return false;
      }
      if (p.op === OP.ScsiRsp) {
        reply.response = p.bhs[2];
        reply.status = p.bhs[3];
        reply.overflow = (p.flags & 0x04) !== 0;
        reply.underflow = (p.flags & 0x02) !== 0;
        reply.residual = rd32(p.bhs, 44);
        if (p.data.length >= 2) {
          const sl = rd16(p.data, 0);
          reply.sense = p.data.slice(2, 2 + sl);
        }
        return true;
      }
      return false;
    }, `SCSI command 0x${req.cdb[0].toString(16)}`);
    const cmdSN = await this.takeCmdSN(!!req.immediate);
    const h = this.header(OP.ScsiCmd, (unsolEnd > imm ? 0 : 0x80) | (rd ? 0x40 : 0) | (wr ? 0x20 : 0) | 0x01 /* SIMPLE */,
      { immediate: req.immediate, itt, cmdSN, lun });
    wr32(h, 20, E); // Expected Data Transfer Length (11.3.6)
    h.set(req.cdb.subarray(0, 16), 32);
    this.sendPdu(h, out.subarray(0, imm));
    if (unsolEnd > imm) sendData(TAG_NONE, imm, unsolEnd);
    try {
      await done;
    } finally {
      finished = true;
    }
    return reply;
  }

  /** A SCSI command retried (bounded) while the target reports UNIT ATTENTION (SAM-5 5.14). */
  async commandUa(req: ScsiRequest): Promise<ScsiReply> {
    let r = await this.command(req);
    for (let i = 0; i < 4 && r.status === 0x02 && senseCodes(r.sense)?.key === 0x06; i++) r = await this.command(req);
    return r;
  }

  async readCapacity16(lun = 0): Promise<{ blocks: bigint; blockSize: number }> {
    const c = new Uint8Array(16);
    c[0] = 0x9e; c[1] = 0x10; wr32(c, 10, 32);
    const r = await this.commandUa({ cdb: c, lun, readLength: 32 });
    if (r.status !== 0) throw new IscsiError(`READ CAPACITY(16): status 0x${r.status.toString(16)}`);
    const dv = new DataView(r.data.buffer, r.data.byteOffset);
    return { blocks: dv.getBigUint64(0) + 1n, blockSize: dv.getUint32(8) };
  }

  read16(lba: bigint | number, blocks: number, blockSize: number, lun = 0): Promise<ScsiReply> {
    return this.commandUa({ cdb: cdb16(0x88, BigInt(lba), blocks), lun, readLength: blocks * blockSize });
  }

  write16(lba: bigint | number, data: Uint8Array, blockSize: number, lun = 0): Promise<ScsiReply> {
    return this.commandUa({ cdb: cdb16(0x8a, BigInt(lba), data.length / blockSize), lun, writeData: data });
  }

  testUnitReady(lun = 0, immediate = false): Promise<ScsiReply> {
    return this.command({ cdb: new Uint8Array(6), lun, immediate });
  }

  /** Text Request SendTargets=<value> (RFC 7143 13.3, appendix C), following continuations. */
  async sendTargets(value = 'All'): Promise<Array<[string, string]>> {
    const itt = this.nextItt();
    const parts: Uint8Array[] = [];
    let ttt = TAG_NONE;
    let first = true;
    for (let i = 0; i < 64; i++) {
      const cmdSN = await this.takeCmdSN(false);
      const h = this.header(OP.TextReq, 0x80, { itt, ttt, cmdSN });
      const p = this.expect(itt, (x) => x.op === OP.TextRsp, 'SendTargets');
      this.sendPdu(h, first ? textData([['SendTargets', value]]) : new Uint8Array(0));
      first = false;
      const r = await p;
      parts.push(r.data);
      if (r.flags & 0x80) return textPairs(Buffer.concat(parts));
      ttt = r.ttt; // 11.11.4: continue with the target's TTT
    }
    throw new IscsiError('SendTargets: too many continuations');
  }

  /** NOP-Out ping with data (11.18); resolves with the NOP-In's echoed data. */
  async nop(data: Uint8Array = new Uint8Array(0), immediate = true): Promise<Uint8Array> {
    const itt = this.nextItt();
    const cmdSN = await this.takeCmdSN(immediate);
    const p = this.expect(itt, (x) => x.op === OP.NopIn, 'NOP-Out');
    this.sendPdu(this.header(OP.NopOut, 0x80, { immediate, itt, cmdSN }), data);
    return (await p).data;
  }

  /** Logout (close the session, 11.14); resolves with the response code once the target closed. */
  async logout(): Promise<number> {
    const itt = this.nextItt();
    const p = this.expect(itt, (x) => x.op === OP.LogoutRsp, 'Logout');
    this.sendPdu(this.header(OP.LogoutReq, 0x80, { immediate: true, itt, cmdSN: this.cmdSN }));
    const r = await p;
    // 11.15: after the response the target closes the connection (session close).
    await this.waitFor(() => this.peerEnded || this.closed);
    await this.end();
    return r.bhs[2];
  }

  /** Closes our side; resolves once closed (bounded: destroyed after the timeout). */
  async end(): Promise<void> {
    if (this.closed) return;
    this.sock.end();
    const t = setTimeout(() => this.sock.destroy(), Math.min(this.timeoutMs, 2000));
    await this.closedP;
    clearTimeout(t);
  }

  destroy(): void { this.sock.destroy(); }
}

/** Connects and logs in. */
export async function openSession(c: ConnectOptions, o: LoginOptions): Promise<{ ini: IscsiInitiator; neg: Negotiated }> {
  const ini = await IscsiInitiator.connect(c);
  try {
    const neg = await ini.login(o);
    return { ini, neg };
  } catch (e) {
    ini.destroy();
    throw e;
  }
}

/**
 * Hostile input for an iSCSI target over a real TCP connection, one case per connection: each case
 * sends something RFC 7143 forbids (or an ordinary request the target must refuse) through the raw
 * side of the test initiator and reports what came back, as plain JSON, so a lab test running it
 * in a peer namespace can assert the RFC's answer. Nothing here decides pass or fail.
 */
import { createHash } from 'node:crypto';
import { rd16, rd32, wr32 } from '../../examples/iscsi/pdu';
import { ConnectOptions, InPdu, IscsiInitiator, LoginOptions, OP, TAG_NONE, cdb16, openSession, senseCodes } from './iscsi-initiator';
import { pattern } from './iscsi-pattern';

export interface HostileContext {
  conn: ConnectOptions;
  targetName: string;
  lun: number;
  /** Blocks [lba, lba + 2048) may be written by the cases (a scratch area). */
  scratchLba: number;
}

/** A PDU from the target as JSON. */
export interface PduSummary {
  op: number; flags: number; itt: number;
  /** Reject: reason (11.17.1) and the returned header (hex). */
  reason?: number; rejected?: string;
  /** SCSI Response / Data-In with S: status; Login Response: status class/detail. */
  status?: number; loginStatus?: number;
  sense?: { key: number; asc: number; ascq: number };
  dataLength: number;
}

export function summarize(p: InPdu): PduSummary {
  const s: PduSummary = { op: p.op, flags: p.flags, itt: p.itt, dataLength: p.data.length };
  if (p.op === OP.Reject) { s.reason = p.bhs[2]; s.rejected = Buffer.from(p.data).toString('hex'); }
  if (p.op === OP.ScsiRsp || (p.op === OP.DataIn && (p.flags & 1))) s.status = p.bhs[3];
  if (p.op === OP.ScsiRsp && p.data.length >= 2) s.sense = senseCodes(p.data.subarray(2, 2 + rd16(p.data, 0)));
  if (p.op === OP.LoginRsp) s.loginStatus = rd16(p.bhs, 36);
  return s;
}

export interface Probe {
  /** The header(s) we sent, hex (what a Reject must return). */
  sent: string[];
  replies: PduSummary[];
  /** The target closed the connection. */
  closed: boolean;
  /** A TEST UNIT READY on the same connection afterwards (status), when it was still open. */
  after?: number | string;
  [k: string]: unknown;
}

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');

/** Sends a PDU; the BHS as it went on the wire (TotalAHSLength and DataSegmentLength filled in), hex. */
function put(ini: IscsiInitiator, h: Uint8Array, data?: Uint8Array, o?: { ahs?: Uint8Array }): string {
  const pdu = ini.encode(h, data, o);
  ini.sendRaw(pdu);
  return hex(pdu.subarray(0, 48));
}
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Sends with `send`, collects for `ms` (or until `until`), then checks the connection with a TUR. */
async function probe(ini: IscsiInitiator, send: () => string[], ms: number, until?: (g: InPdu[]) => boolean, check = true): Promise<Probe> {
  const mark = ini.received.length;
  const sent = send();
  const got = await ini.collect(mark, ms, until);
  const out: Probe = { sent, replies: got.map(summarize), closed: ini.closed || ini.peerEnded };
  if (check && !out.closed) {
    try { out.after = (await ini.testUnitReady()).status; } catch (e) { out.after = (e as Error).message; }
  }
  return out;
}

const hasOp = (op: number, itt?: number) => (g: InPdu[]) => g.some((p) => p.op === op && (itt === undefined || p.itt === itt));

async function session(ctx: HostileContext, o: Partial<LoginOptions> = {}): Promise<IscsiInitiator> {
  const { ini } = await openSession(ctx.conn, { targetName: ctx.targetName, ...o });
  // Clear the power-on / nexus unit attention (SAM-5) so later commands see their own status.
  for (let i = 0; i < 4 && (await ini.testUnitReady(ctx.lun)).status !== 0; i++) { /* retry */ }
  return ini;
}

async function done(ini: IscsiInitiator): Promise<void> {
  if (ini.closed) return;
  try { await ini.logout(); } catch { ini.destroy(); }
}

/** A connection with no login at all. */
async function bare(ctx: HostileContext): Promise<IscsiInitiator> {
  return IscsiInitiator.connect(ctx.conn);
}

function loginHeader(ini: IscsiInitiator, flags: number, itt: number): Uint8Array {
  const h = ini.header(OP.LoginReq, flags, { immediate: true, itt, cmdSN: 1 });
  h.set(ini.isid, 8);
  return h;
}
const keys = (pairs: Array<[string, string]>) => Uint8Array.from(Buffer.from(pairs.map(([k, v]) => `${k}=${v}\0`).join('')));

type Case = (ctx: HostileContext) => Promise<Probe>;


/** Ends a probe that wrote `before` at `lba` first: records that write's status and whether the 8 blocks still hold `before`. */
async function unchangedAfter(ctx: HostileContext, ini: IscsiInitiator, r: Probe, firstWrite: number, lba: number, before: Uint8Array): Promise<Probe> {
  r.firstWrite = firstWrite;
  if (!ini.closed) {
    const back = await ini.read16(lba, 8, 512, ctx.lun);
    r.unchanged = back.status === 0 && sha(back.data) === sha(before);
  }
  await done(ini);
  return r;
}

export const CASES: Record<string, Case> = {
  /** RFC 7143 11.2.1.2: opcode 0x0d is not defined for an initiator. */
  async 'reserved-opcode'(ctx) {
    const ini = await session(ctx);
    const itt = ini.nextItt();
    const r = await probe(ini, () => {
      const h = ini.header(0x0d, 0x80, { immediate: true, itt });
      return [put(ini, h)];
    }, 1000, hasOp(OP.Reject));
    await done(ini);
    return r;
  },

  /** RFC 7143 11.2.1.4: TotalAHSLength non-zero (an extended-CDB AHS, 11.2.2.3) on a target without AHS support. */
  async 'ahs'(ctx) {
    const ini = await session(ctx);
    const itt = ini.nextItt();
    const r = await probe(ini, () => {
      const h = ini.header(OP.ScsiCmd, 0x81, { immediate: true, itt, lun: ctx.lun });
      const ahs = Uint8Array.of(0x00, 0x05, 0x01, 0x00, 0, 0, 0, 0);
      return [put(ini, h, undefined, { ahs })];
    }, 1000, hasOp(OP.Reject));
    await done(ini);
    return r;
  },

  /** A data segment longer than the target's declared MaxRecvDataSegmentLength (RFC 7143 13.12). */
  async 'data-too-long'(ctx) {
    const ini = await session(ctx);
    const itt = ini.nextItt();
    const mrdsl = ini.negotiated!.targetMrdsl;
    const r = await probe(ini, () => {
      const h = ini.header(OP.NopOut, 0x80, { immediate: true, itt });
      return [put(ini, h, new Uint8Array(mrdsl + 512).fill(0x5a))];
    }, 2000, (g) => hasOp(OP.Reject)(g) || hasOp(OP.NopIn, itt)(g));
    r.mrdsl = mrdsl;
    await done(ini);
    return r;
  },

  /** Solicited Data-Out past the R2T's (and the command's) transfer length (RFC 7143 11.7.6, 11.8). */
  async 'data-out-beyond-r2t'(ctx) {
    const ini = await session(ctx, { initialR2T: true, immediateData: false });
    const lba = ctx.scratchLba;
    const before = pattern(lba, 8, 512, 0xa11ce);
    const w0 = await ini.write16(lba, before, 512, ctx.lun);
    const itt = ini.nextItt();
    const mark = ini.received.length;
    const h = ini.header(OP.ScsiCmd, 0x80 | 0x20 | 0x01, { itt, cmdSN: ini.cmdSN, lun: ctx.lun });
    ini.cmdSN = (ini.cmdSN + 1) >>> 0;
    wr32(h, 20, 4096);
    h.set(cdb16(0x8a, BigInt(lba), 8), 32);
    const sentCmd = put(ini, h);
    const g = await ini.collect(mark, 3000, hasOp(OP.R2t, itt));
    const r2t = g.find((p) => p.op === OP.R2t && p.itt === itt);
    let r: Probe;
    if (!r2t) {
      r = { sent: [sentCmd], replies: g.map(summarize), closed: ini.closed };
    } else {
      r = await probe(ini, () => {
        const d = ini.header(OP.DataOut, 0x80, { itt, ttt: r2t.ttt, lun: ctx.lun });
        wr32(d, 24, 0);
        wr32(d, 36, 0);
        wr32(d, 40, rd32(r2t.bhs, 40));
        return [sentCmd, put(ini, d, new Uint8Array(8192).fill(0xee))];
      }, 3000, hasOp(OP.ScsiRsp, itt));
      r.r2t = { offset: rd32(r2t.bhs, 40), length: rd32(r2t.bhs, 44) };
    }
    return unchangedAfter(ctx, ini, r, w0.status, lba, before);
  },

  /** Unsolicited data (immediate + Data-Out) past the Expected Data Transfer Length (11.3.4, 11.7). */
  async 'unsolicited-beyond-edtl'(ctx) {
    const ini = await session(ctx, { initialR2T: false, immediateData: true });
    const lba = ctx.scratchLba + 8;
    const before = pattern(lba, 8, 512, 0xb0b);
    const w0 = await ini.write16(lba, before, 512, ctx.lun);
    const itt = ini.nextItt();
    const r = await probe(ini, () => {
      const h = ini.header(OP.ScsiCmd, 0x20 | 0x01 /* F clear: Data-Out follows */, { itt, cmdSN: ini.cmdSN, lun: ctx.lun });
      ini.cmdSN = (ini.cmdSN + 1) >>> 0;
      wr32(h, 20, 4096);
      h.set(cdb16(0x8a, BigInt(lba), 8), 32);
      const sentCmd = put(ini, h, new Uint8Array(2048).fill(0xdd));
      const d = ini.header(OP.DataOut, 0x80, { itt, ttt: TAG_NONE, lun: ctx.lun });
      wr32(d, 24, 0);
      wr32(d, 36, 0);
      wr32(d, 40, 2048);
      return [sentCmd, put(ini, d, new Uint8Array(4096).fill(0xdd))];
    }, 3000, hasOp(OP.ScsiRsp, itt));
    return unchangedAfter(ctx, ini, r, w0.status, lba, before);
  },

  /** WRITE(16) across the end of the LUN and at LBA 2^64-1 (SBC-3: LBA OUT OF RANGE), then the last blocks read back. */
  async 'write-past-end'(ctx) {
    const ini = await session(ctx);
    const cap = await ini.readCapacity16(ctx.lun);
    const last = Number(cap.blocks) - 2;
    const bs = cap.blockSize;
    const before = pattern(last, 2, bs, 0xe0f);
    const w0 = await ini.write16(last, before, bs, ctx.lun);
    const across = await ini.write16(last, new Uint8Array(4 * bs).fill(0xff), bs, ctx.lun);
    const wrap = await ini.command({ cdb: cdb16(0x8a, 2n ** 64n - 1n, 2), lun: ctx.lun, writeData: new Uint8Array(2 * bs).fill(0xff) });
    const readAcross = await ini.read16(last, 4, bs, ctx.lun);
    const back = await ini.read16(last, 2, bs, ctx.lun);
    const r: Probe = {
      sent: [], replies: [], closed: ini.closed, capacity: Number(cap.blocks), blockSize: bs, firstWrite: w0.status,
      across: { status: across.status, sense: senseCodes(across.sense) },
      wrap: { status: wrap.status, sense: senseCodes(wrap.sense) },
      readAcross: { status: readAcross.status, sense: senseCodes(readAcross.sense) },
      unchanged: back.status === 0 && sha(back.data) === sha(before),
    };
    await done(ini);
    return r;
  },

  /** CmdSN above MaxCmdSN, below ExpCmdSN and half the number space away (RFC 7143 4.2.2.1, 3.2.2.1). */
  async 'cmdsn-outside-window'(ctx) {
    const ini = await session(ctx);
    await ini.nop(); // the latest ExpCmdSN/MaxCmdSN
    const exp = ini.expCmdSN;
    const max = ini.maxCmdSN;
    const itts: number[] = [];
    const r = await probe(ini, () => {
      const sent: string[] = [];
      for (const sn of [(max + 1) >>> 0, (exp - 1) >>> 0, (exp + 0x80000000) >>> 0]) {
        const itt = ini.nextItt();
        itts.push(itt);
        const h = ini.header(OP.ScsiCmd, 0x81, { itt, cmdSN: sn, lun: ctx.lun });
        sent.push(put(ini, h));
      }
      return sent;
    }, 600);
    // Later traffic does not bring them back either.
    await ini.collect(ini.received.length, 300);
    r.window = [exp, max];
    r.ignoredItts = itts;
    r.answeredIgnored = ini.received.filter((p) => itts.includes(p.itt)).map(summarize);
    r.expAfter = ini.expCmdSN;
    await done(ini);
    return r;
  },

  /**
   * RFC 7143 11.18: a NOP-Out with ITT 0xffffffff must have the I bit set. One without it, numbered
   * with the next CmdSN as a non-immediate PDU is; the TEST UNIT READY after it takes the CmdSN after.
   */
  async 'nop-out-reserved-itt-not-immediate'(ctx) {
    const ini = await session(ctx);
    const sn = ini.cmdSN;
    const r = await probe(ini, () => {
      const h = ini.header(OP.NopOut, 0x80, { itt: TAG_NONE, cmdSN: sn });
      ini.cmdSN = (sn + 1) >>> 0;
      return [put(ini, h)];
    }, 600, hasOp(OP.Reject));
    r.cmdSN = sn;
    r.expAfter = ini.expCmdSN;
    await done(ini);
    return r;
  },

  /** RFC 7143 6.2: one key twice in one Text Request (SendTargets=All twice). */
  async 'text-repeated-key'(ctx) {
    const ini = await session(ctx);
    const itt = ini.nextItt();
    const r = await probe(ini, () => {
      const h = ini.header(OP.TextReq, 0x80, { itt, cmdSN: ini.cmdSN });
      ini.cmdSN = (ini.cmdSN + 1) >>> 0;
      return [put(ini, h, keys([['SendTargets', 'All'], ['SendTargets', 'All']]))];
    }, 600, (g) => g.some((p) => p.op === OP.Reject || p.op === OP.TextRsp));
    await done(ini);
    return r;
  },

  /**
   * RFC 7143 11.11.1: a Text Request with F clear is answered with F clear and a TTT; the follow-on
   * request carrying that TTT with F set ends the exchange (F set, TTT 0xffffffff).
   */
  async 'text-f-clear'(ctx) {
    const ini = await session(ctx);
    const itt = ini.nextItt();
    const r = await probe(ini, () => {
      const h = ini.header(OP.TextReq, 0x00, { itt, cmdSN: ini.cmdSN });
      ini.cmdSN = (ini.cmdSN + 1) >>> 0;
      return [put(ini, h, keys([['MaxRecvDataSegmentLength', '65536']]))];
    }, 600, hasOp(OP.TextRsp, itt), false);
    const first = ini.received.find((p) => p.op === OP.TextRsp && p.itt === itt);
    r.first = first ? { flags: first.flags, ttt: first.ttt, keys: Buffer.from(first.data).toString('utf8').split('\0').filter((x) => x) } : null;
    if (first && first.ttt !== TAG_NONE && !ini.closed) {
      const mark = ini.received.length;
      const h = ini.header(OP.TextReq, 0x80, { itt, ttt: first.ttt, cmdSN: ini.cmdSN });
      ini.cmdSN = (ini.cmdSN + 1) >>> 0;
      put(ini, h);
      const got = await ini.collect(mark, 600, hasOp(OP.TextRsp, itt));
      const last = got.find((p) => p.op === OP.TextRsp && p.itt === itt);
      r.last = last ? { flags: last.flags, ttt: last.ttt } : null;
    }
    if (!ini.closed) {
      try { r.after = (await ini.testUnitReady()).status; } catch (e) { r.after = (e as Error).message; }
    }
    await done(ini);
    return r;
  },

  /** A SCSI command as the first PDU of a connection (RFC 7143 6: only Login Requests before full feature phase). */
  async 'scsi-before-login'(ctx) {
    const ini = await bare(ctx);
    const r = await probe(ini, () => {
      const h = ini.header(OP.ScsiCmd, 0x81, { itt: 7, cmdSN: 1, lun: ctx.lun });
      return [put(ini, h)];
    }, 3000, () => ini.closed || ini.peerEnded, false);
    ini.destroy();
    return r;
  },

  /** A SCSI command after the first Login Request, before the login completed (RFC 7143 6). */
  async 'scsi-during-login'(ctx) {
    const ini = await bare(ctx);
    const mark = ini.received.length;
    ini.sendPdu(loginHeader(ini, 0x00 /* CSG 0, no transit */, 1), keys([['InitiatorName', 'iqn.2026-12.org.xdpstack:hostile'], ['SessionType', 'Normal'], ['TargetName', ctx.targetName], ['AuthMethod', 'None']]));
    const first = await ini.collect(mark, 2000, hasOp(OP.LoginRsp));
    const r = await probe(ini, () => {
      const h = ini.header(OP.ScsiCmd, 0x81, { itt: 9, cmdSN: 1, lun: ctx.lun });
      return [put(ini, h)];
    }, 3000, () => ini.closed || ini.peerEnded, false);
    r.first = first.map(summarize);
    ini.destroy();
    return r;
  },

  /** A first Login Request whose CSG is FullFeaturePhase (RFC 7143 11.12.3: not a CSG). */
  async 'login-csg-full-feature'(ctx) {
    const ini = await bare(ctx);
    const r = await probe(ini, () => {
      const h = loginHeader(ini, 0x80 | (3 << 2) | 3, 1);
      return [put(ini, h, keys([['InitiatorName', 'iqn.2026-12.org.xdpstack:hostile'], ['SessionType', 'Normal'], ['TargetName', ctx.targetName]]))];
    }, 3000, () => ini.closed || ini.peerEnded, false);
    ini.destroy();
    return r;
  },

  /** Back to SecurityNegotiation after the target moved to operational negotiation (RFC 7143 6.3). */
  async 'login-stage-back'(ctx) {
    const ini = await bare(ctx);
    const mark = ini.received.length;
    ini.sendPdu(loginHeader(ini, 0x80 | (0 << 2) | 1, 1), keys([['InitiatorName', 'iqn.2026-12.org.xdpstack:hostile'], ['SessionType', 'Normal'], ['TargetName', ctx.targetName], ['AuthMethod', 'None']]));
    const first = await ini.collect(mark, 2000, hasOp(OP.LoginRsp));
    const r = await probe(ini, () => {
      const h = loginHeader(ini, 0x80 | (0 << 2) | 1, 1);
      return [put(ini, h, keys([['AuthMethod', 'None']]))];
    }, 3000, () => ini.closed || ini.peerEnded, false);
    r.first = first.map(summarize);
    ini.destroy();
    return r;
  },

  /** The TCP connection closes in the middle of a BHS, and in the middle of a data segment. */
  async 'closed-mid-pdu'(ctx) {
    const out: Probe = { sent: [], replies: [], closed: false };
    const a = await session(ctx);
    const h = a.header(OP.ScsiCmd, 0x81, { itt: a.nextItt(), cmdSN: a.cmdSN, lun: ctx.lun });
    a.sendRaw(h.subarray(0, 20));
    await a.end();
    out.headerCut = { closed: a.closed };
    const b = await session(ctx, { immediateData: true, initialR2T: true });
    const w = b.header(OP.ScsiCmd, 0x80 | 0x20 | 0x01, { itt: b.nextItt(), cmdSN: b.cmdSN, lun: ctx.lun });
    wr32(w, 20, 4096);
    w.set(cdb16(0x8a, BigInt(ctx.scratchLba), 8), 32);
    const pdu = b.encode(w, new Uint8Array(4096).fill(0x77));
    b.sendRaw(pdu.subarray(0, 48 + 1000));
    await b.end();
    out.dataCut = { closed: b.closed };
    // Half of a solicited burst in (the target may hold those Data-Out payloads), then the close.
    const c = await session(ctx, { immediateData: false, initialR2T: true });
    const itt = c.nextItt();
    const mark = c.received.length;
    const x = c.header(OP.ScsiCmd, 0x80 | 0x20 | 0x01, { itt, cmdSN: c.cmdSN, lun: ctx.lun });
    c.cmdSN = (c.cmdSN + 1) >>> 0;
    wr32(x, 20, 65536);
    x.set(cdb16(0x8a, BigInt(ctx.scratchLba + 16), 128), 32);
    c.sendPdu(x);
    const g = await c.collect(mark, 3000, hasOp(OP.R2t, itt));
    const r2t = g.find((p) => p.op === OP.R2t && p.itt === itt);
    for (let i = 0; r2t && i < 4; i++) {
      const d = c.header(OP.DataOut, 0, { itt, ttt: r2t.ttt, lun: ctx.lun });
      wr32(d, 24, 0);
      wr32(d, 36, i);
      wr32(d, 40, i * 8192);
      c.sendPdu(d, new Uint8Array(8192).fill(0x66));
    }
    await new Promise((r) => setTimeout(r, 100));
    await c.end();
    out.writeCut = { r2t: !!r2t, closed: c.closed };
    out.closed = a.closed && b.closed && c.closed;
    return out;
  },

  /**
   * MaxOutstandingR2T (RFC 7143 13.17) and MaxBurstLength (13.13) on the target's side: a 512 KiB
   * write with InitialR2T=Yes, MaxBurstLength 64 KiB, MaxOutstandingR2T 2, R2Ts answered late.
   */
  async 'max-outstanding-r2t'(ctx) {
    const ini = await session(ctx, { initialR2T: true, immediateData: false, maxOutstandingR2T: 2, maxBurstLength: 65536, firstBurstLength: 65536 });
    const neg = ini.negotiated!;
    const lba = ctx.scratchLba + 1024;
    const E = 512 * 1024;
    const body = pattern(lba, E / 512, 512, 0x0b5);
    const itt = ini.nextItt();
    const mark = ini.received.length;
    const h = ini.header(OP.ScsiCmd, 0x80 | 0x20 | 0x01, { itt, cmdSN: ini.cmdSN, lun: ctx.lun });
    ini.cmdSN = (ini.cmdSN + 1) >>> 0;
    wr32(h, 20, E);
    h.set(cdb16(0x8a, BigInt(lba), E / 512), 32);
    const sent = [put(ini, h)];
    const mine = (t: InPdu[]) => t.filter((p) => p.itt === itt);
    let answered = 0;
    let maxOut = 0;
    const r2ts: Array<{ sn: number; offset: number; length: number }> = [];
    for (let guard = 0; guard < 64 && !ini.closed; guard++) {
      await ini.collect(mark, 2000, (g) => mine(g).some((p) => p.op === OP.ScsiRsp) || mine(g).filter((p) => p.op === OP.R2t).length > answered);
      // Give the target a moment to (wrongly) send more before answering.
      await ini.collect(mark, 60);
      const got = mine(ini.received.slice(mark));
      const list = got.filter((p) => p.op === OP.R2t);
      maxOut = Math.max(maxOut, list.length - answered);
      if (got.some((p) => p.op === OP.ScsiRsp) || list.length === answered) break;
      const r = list[answered]!;
      const off = rd32(r.bhs, 40);
      const len = rd32(r.bhs, 44);
      r2ts.push({ sn: rd32(r.bhs, 36), offset: off, length: len });
      for (let o = off, sn = 0; o < off + len; o += neg.targetMrdsl, sn++) {
        const n = Math.min(neg.targetMrdsl, off + len - o);
        const d = ini.header(OP.DataOut, o + n === off + len ? 0x80 : 0, { itt, ttt: r.ttt, lun: ctx.lun });
        wr32(d, 24, 0);
        wr32(d, 36, sn);
        wr32(d, 40, o);
        ini.sendPdu(d, body.subarray(o, o + n));
      }
      answered++;
    }
    const rsp = mine(ini.received.slice(mark)).find((p) => p.op === OP.ScsiRsp);
    const back = await ini.read16(lba, E / 512, 512, ctx.lun);
    const out: Probe = {
      sent, replies: [], closed: ini.closed, negotiated: { maxOutstandingR2T: neg.maxOutstandingR2T, maxBurstLength: neg.maxBurstLength },
      r2ts, maxOutstanding: maxOut, status: rsp ? rsp.bhs[3] : null, written: back.status === 0 && sha(back.data) === sha(body),
    };
    await done(ini);
    return out;
  },

  /** A header digest that does not match (RFC 7143 7.8): the target cannot trust the lengths. */
  async 'header-digest-error'(ctx) {
    const ini = await session(ctx, { headerDigest: true });
    const itt = ini.nextItt();
    const r = await probe(ini, () => {
      const h = ini.header(OP.NopOut, 0x80, { immediate: true, itt });
      const pdu = ini.encode(h);
      pdu[48] ^= 0xff;
      ini.sendRaw(pdu);
      return [hex(pdu.subarray(0, 48))];
    }, 3000, () => ini.closed || ini.peerEnded, false);
    r.negotiatedHd = ini.negotiated!.headerDigest;
    ini.destroy();
    return r;
  },

  /** A data digest that does not match (RFC 7143 7.8): the PDU is discarded and rejected. */
  async 'data-digest-error'(ctx) {
    const ini = await session(ctx, { dataDigest: true });
    const itt = ini.nextItt();
    const r = await probe(ini, () => {
      const h = ini.header(OP.NopOut, 0x80, { immediate: true, itt });
      const pdu = ini.encode(h, new Uint8Array(100).fill(0x42));
      pdu[pdu.length - 1] ^= 0xff;
      ini.sendRaw(pdu);
      return [hex(pdu.subarray(0, 48))];
    }, 1500, (g) => hasOp(OP.Reject)(g) || hasOp(OP.NopIn, itt)(g));
    r.negotiatedDd = ini.negotiated!.dataDigest;
    await done(ini);
    return r;
  },
};

/** Extra cases: initiators that send requests and never read the answers (run with a memory probe on the target). */
export const FLOODS: Record<string, Case> = {
  /** 120 READ(16) of 8 MiB each in the command window, nothing read back, for 2.5 s. */
  async 'read-flood-no-read'(ctx) {
    const ini = await session(ctx);
    const cap = await ini.readCapacity16(ctx.lun);
    const per = (8 << 20) / cap.blockSize;
    const spots = Math.max(1, Math.floor(Number(cap.blocks) / per));
    await ini.nop();
    ini.sock.pause();
    const n = Math.min(120, (ini.maxCmdSN - ini.cmdSN + 1) >>> 0);
    for (let i = 0; i < n; i++) {
      const h = ini.header(OP.ScsiCmd, 0x80 | 0x40 | 0x01, { itt: ini.nextItt(), cmdSN: ini.cmdSN, lun: ctx.lun });
      ini.cmdSN = (ini.cmdSN + 1) >>> 0;
      wr32(h, 20, 8 << 20);
      h.set(cdb16(0x88, BigInt((i % spots) * per), per), 32);
      ini.sendPdu(h);
    }
    await new Promise((r) => setTimeout(r, 2500));
    ini.destroy();
    return { sent: [], replies: [], closed: ini.closed, reads: n, bytesAsked: n * (8 << 20) };
  },

  /**
   * NOP-Outs with 8 KiB of ping data (each answered by an 8 KiB NOP-In) for 2.5 s, nothing read
   * back; then still nothing read until the target resets the connection (at most 8 s more).
   */
  async 'echo-flood-no-read'(ctx) {
    const ini = await session(ctx);
    ini.sock.pause();
    const data = new Uint8Array(8192).fill(0x3c);
    const t0 = Date.now();
    let sent = 0;
    for (let i = 0; Date.now() - t0 < 2500 && i < 100000 && !ini.closed; i++) {
      if (ini.sock.writableLength > 8 << 20) { await new Promise((r) => setTimeout(r, 20)); continue; }
      ini.sendPdu(ini.header(OP.NopOut, 0x80, { immediate: true, itt: ini.nextItt() }), data);
      sent += 48 + data.length;
      if (i % 256 === 255) await new Promise((r) => setImmediate(r));
    }
    const unsent = ini.sock.writableLength;
    // A reset arrives even though nothing is read (a FIN would wait behind the unread data). A
    // paused socket notices a reset only when it writes: a small NOP-Out every 200 ms.
    for (let i = 0; i < 40 && !ini.closed; i++) {
      ini.sendPdu(ini.header(OP.NopOut, 0x80, { immediate: true, itt: ini.nextItt() }));
      await ini.waitFor(() => ini.closed, 200);
    }
    const out = { sent: [], replies: [], closed: ini.closed, bytesOffered: sent, unsentAtEnd: unsent, closedAfterMs: ini.closed ? Date.now() - t0 : null };
    ini.destroy();
    return out;
  },
};

/** Runs the named cases one after the other, each on its own connection(s). */
export async function runCases(ctx: HostileContext, names: string[]): Promise<Record<string, Probe | { error: string }>> {
  const out: Record<string, Probe | { error: string }> = {};
  for (const n of names) {
    const c = CASES[n] ?? FLOODS[n];
    if (!c) { out[n] = { error: 'no such case' }; continue; }
    try { out[n] = await c(ctx); } catch (e) { out[n] = { error: (e as Error).stack ?? String(e) }; }
  }
  return out;
}

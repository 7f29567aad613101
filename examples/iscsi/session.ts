/**
 * One iSCSI connection of the target, sans-IO (bytes and time in, PDUs out): login (login.ts),
 * then full feature phase (RFC 7143): SCSI tasks (task.ts), NOP-Out/NOP-In, Text (SendTargets),
 * task management, Logout, Reject for malformed PDUs. The CmdSN window, output and timers are in
 * conn-core.ts. One connection per session (MaxConnections=1), error recovery level 0.
 */
import { Pdu, RejectReason, RESERVED_TAG, Op, bhs as B, decodeLun, newBhs, rd16, rd32, wr16, wr32 } from './pdu';
import { LoginLimits, LoginNegotiator, LoginStatus, STAGE_FULL_FEATURE } from './login';
import { encodeText, parseText } from './keys';
import { Task } from './task';
import { answerText, repeatedKey, targetAddress } from './text';
import { ConnCore, ConnHost, ConnOptions, Portal, NOOP, snLe, snLt } from './conn-core';
import { Settling, whenAllSettled } from './sessions';

export { SessionTable } from './sessions';
export type { SessionMember } from './sessions';
export type { ConnHost, ConnOptions, Portal } from './conn-core';

export class IscsiConnection extends ConnCore {
  private login: LoginNegotiator | null = null;
  private loginIsid: Uint8Array | null = null;
  private loginTsih = 0;
  private cid = 0;
  /**
   * A Text exchange that continues: our answer's rest to send (`done`: the exchange ends with it),
   * the request's next part to take (`collecting`), or the initiator's next request of a
   * negotiation it left open with F clear (`open`).
   */
  private textPending: { ttt: number; rest: Uint8Array; done: boolean; collecting?: boolean; open?: boolean } | null = null;
  private textIn: Uint8Array[] = [];
  /** Keys negotiated so far in the open Text exchange (RFC 7143 6.2: each at most once). */
  private readonly textKeys = new Set<string>();

  constructor(portal: Portal, host: ConnHost, private readonly local: { address: string; port: number }, now: number, opts: ConnOptions = {}) {
    super(portal, host, now, opts);
  }

  // ---- PDU dispatch -----------------------------------------------------------------------------
  protected onPdu(p: Pdu): void {
    if (this.phase === 'closed') return;
    this.lastRx = this.now;
    this.pingTtt = null;
    if (this.phase === 'login') { this.onLoginPhasePdu(p); return; }
    const h = p.bhs;
    const op = B.opcode(h);
    switch (p.problem) {
      case 'reserved-opcode': this.reject(RejectReason.CommandNotSupported, h, 'pdu-reserved-opcode'); return;
      case 'ahs':
        // No AHS is supported: extended CDBs and bidirectional commands (RFC 7143 11.17.1).
        this.reject(op === Op.ScsiCmd ? RejectReason.CommandNotSupported : RejectReason.InvalidPduField, h, 'pdu-ahs');
        if (op === Op.ScsiCmd && !B.immediate(h) && this.inCmdWindow(B.cmdSN(h))) this.ordered(h, false, NOOP);
        return;
      case 'data-too-long':
        // More data than our declared MaxRecvDataSegmentLength (RFC 7143 13.12): protocol error.
        this.reject(RejectReason.ProtocolError, h, 'pdu-data-too-long');
        if (op === Op.ScsiCmd && !B.immediate(h) && this.inCmdWindow(B.cmdSN(h))) this.ordered(h, false, NOOP);
        if (op === Op.DataOut) this.tasks.get(B.itt(h))?.dataOut(h, null, 0); // its data is lost: the task fails (7.8 b)
        return;
      case 'data-digest':
        // RFC 7143 7.8: discarded and answered with a Reject; a command's CmdSN is not consumed
        // (the initiator plugs the gap, 11.17.1); lost Data-Out fails its task (7.8 b).
        this.reject(RejectReason.DataDigest, h, 'pdu-data-digest');
        if (op === Op.DataOut) {
          const t = this.tasks.get(B.itt(h));
          if (t) t.dataOut(h, null, 0);
        }
        return;
    }
    const discovery = this.params?.sessionType === 'Discovery';
    switch (op) {
      case Op.ScsiCmd:
        if (discovery) { this.reject(RejectReason.ProtocolError, h, 'scsi-in-discovery'); return; }
        this.onScsiCmd(p);
        return;
      case Op.DataOut: {
        const t = this.tasks.get(B.itt(h));
        if (!t) { this.count('data-out-unknown-task'); return; } // aborted or never accepted
        // RFC 7143 11.17.1 note 2: an invalid TTT is answered "Invalid PDU field"; the task itself
        // goes on (a Reject never ends a task implicitly) and still waits for its R2T's data.
        if (!t.knowsTtt(B.ttt(h))) { this.reject(RejectReason.InvalidPduField, h, 'data-out-unknown-ttt'); return; }
        t.dataOut(h, p.retain, p.dataLength);
        return;
      }
      case Op.NopOut: this.onNopOut(p); return;
      case Op.TextReq: {
        const hc = h.slice(0, 48);
        const d = p.data.slice();
        this.ordered(h, B.immediate(h), () => this.onText(hc, d));
        return;
      }
      case Op.TmfReq: {
        if (discovery) { this.reject(RejectReason.ProtocolError, h, 'tmf-in-discovery'); return; }
        const hc = h.slice(0, 48);
        this.ordered(h, B.immediate(h), () => this.onTmf(hc));
        return;
      }
      case Op.LogoutReq: {
        const hc = h.slice(0, 48);
        this.ordered(h, B.immediate(h), () => this.onLogout(hc));
        return;
      }
      case Op.Snack:
        // ErrorRecoveryLevel 0: no SNACK support (RFC 7143 11.16, 7.1.5).
        this.reject(RejectReason.ProtocolError, h, 'snack-at-erl0');
        return;
      case Op.LoginReq:
        this.reject(RejectReason.ProtocolError, h, 'login-in-full-feature');
        return;
      default:
        this.reject(RejectReason.CommandNotSupported, h, 'pdu-unsupported-opcode');
    }
  }


  // ---- login phase ------------------------------------------------------------------------------
  private onLoginPhasePdu(p: Pdu): void {
    const h = p.bhs;
    if (B.opcode(h) === Op.LoginReq && p.problem === 'ahs') {
      // A Login Request is still a Login Request with an AHS it may not carry (11.12 has none):
      // a malformed request, failed as an initiator error (11.13.5), not "invalid during login".
      this.loginFail(h, LoginStatus.InitiatorError, 'login-ahs');
      return;
    }
    if (B.opcode(h) !== Op.LoginReq || (p.problem && p.problem !== 'data-too-long')) {
      if (!this.login) {
        // RFC 7143 6: a PDU other than a Login Request before login started: close at once.
        this.count('pdu-before-login');
        this.shutdown(true);
        return;
      }
      // RFC 7143 6: once login started, anything else gets a Login reject and the connection ends.
      this.loginFail(h, LoginStatus.InvalidDuringLogin, 'pdu-during-login');
      return;
    }
    if (p.problem === 'data-too-long') { this.loginFail(h, LoginStatus.InitiatorError, 'login-data-too-long'); return; }
    // RFC 7143 11.12: the I bit of a Login Request is always 1 (login PDUs are immediate).
    if (!B.immediate(h)) { this.loginFail(h, LoginStatus.InitiatorError, 'login-not-immediate'); return; }
    const isid = h.subarray(8, 14);
    const tsih = rd16(h, 14);
    if (!this.login) {
      this.loginIsid = isid.slice();
      this.loginTsih = tsih;
      this.cid = rd16(h, 20);
      this.expCmdSN = B.cmdSN(h); // 11.12.? the login's CmdSN is the session's first CmdSN
      this.maxAdv = (this.expCmdSN + this.o.cmdWindow - 1) >>> 0;
      if (tsih !== 0) {
        // Adding a connection to a session: MaxConnections=1 here (13.2). The session must be
        // this initiator's (RFC 7143 6.3.1 table: an ISID or initiator not of the session with
        // that TSIH fails with "session does not exist", and a live TSIH is not revealed).
        const s = this.portal.sessions.get(tsih);
        const name = parseText(p.data).pairs.find(([k]) => k === 'InitiatorName')?.[1];
        const exists = s !== undefined && s.isid === Buffer.from(isid).toString('hex') && s.initiatorName === name;
        this.loginFail(h, exists ? LoginStatus.TooManyConnections : LoginStatus.SessionDoesNotExist,
          exists ? 'login-too-many-connections' : 'login-session-does-not-exist');
        return;
      }
      const limits: LoginLimits = {
        maxRecvDataSegmentLength: this.o.maxRecvDataSegmentLength, maxBurstLength: this.o.maxBurstLength,
        firstBurstLength: this.o.firstBurstLength, maxOutstandingR2T: this.o.maxOutstandingR2T,
        initialR2T: this.o.initialR2T, immediateData: this.o.immediateData,
        defaultTime2Wait: this.o.defaultTime2Wait, defaultTime2Retain: this.o.defaultTime2Retain,
        targetAlias: this.o.targetAlias, portalGroupTag: this.o.portalGroupTag,
      };
      this.login = new LoginNegotiator(limits, (iqn) => {
        const t = this.portal.targets.get(iqn);
        return t ? { chap: t.spec.chap } : undefined;
      }, this.o.random);
    } else if (!equalBytes(isid, this.loginIsid!) || tsih !== this.loginTsih) {
      // 11.12.5: ISID and TSIH stay the same across the login's PDUs.
      this.loginFail(h, LoginStatus.InitiatorError, 'login-isid-changed');
      return;
    }
    const f = h[1];
    const reply = this.login.step({
      transit: (f & 0x80) !== 0, cont: (f & 0x40) !== 0, csg: (f >>> 2) & 3, nsg: f & 3,
      versionMax: h[2], versionMin: h[3], data: p.data,
    });
    if (reply.status !== LoginStatus.Success) {
      this.loginFail(h, reply.status, reply.reason ?? 'login-failed', encodeText(reply.keys));
      return;
    }
    const params = this.login.params;
    let tsihOut = this.loginTsih;
    if (reply.complete) {
      this.initiatorName = params.initiatorName;
      this.isid = Buffer.from(this.loginIsid!).toString('hex');
      this.nexus = `${params.initiatorName},i,0x${this.isid}`;
      if (params.sessionType === 'Normal') {
        const t = this.portal.targets.get(params.targetName!);
        if (!t) { this.loginFail(h, LoginStatus.TargetRemoved, 'login-target-removed'); return; }
        this.scsi = t.scsi;
        this.targetName = params.targetName!;
      }
      this.tsih = this.portal.sessions.allocateTsih();
      if (this.tsih === 0) { this.loginFail(h, LoginStatus.OutOfResources, 'login-no-tsih'); return; }
      tsihOut = this.tsih;
    }
    const r = newBhs(Op.LoginRsp, (reply.transit ? 0x80 : 0) | (reply.csg << 2) | (reply.transit ? reply.nsg : 0));
    r[2] = 0; r[3] = 0; // 11.13.2: Version-max / Version-active 0
    r.set(this.loginIsid!, 8);
    wr16(r, 14, tsihOut);
    wr32(r, 16, B.itt(h));
    const data = encodeText(reply.keys);
    this.send(r, [data], data.length, 'advance');
    if (reply.complete && this.login.stage === STAGE_FULL_FEATURE) {
      this.params = params;
      this.phase = 'ffp';
      this.count(`login-${params.sessionType.toLowerCase()}`);
      this.portal.sessions.add(this);
      this.registered = true;
      // RFC 7143 13.1: digests apply from the first PDU after the last Login Response.
      this.reader.headerDigest = params.headerDigest;
      this.reader.dataDigest = params.dataDigest;
      this.reader.maxData = params.targetMaxRecvDataSegmentLength;
      this.log(`iscsi: ${this.nexus} logged in (${params.sessionType}${this.targetName ? ' ' + this.targetName : ''})`);
    }
  }

  /** A Login Response with a failure status, then the connection closes (RFC 7143 11.13.5). */
  private loginFail(h: Uint8Array, status: LoginStatus, reason: string, data: Uint8Array = new Uint8Array(0)): void {
    this.count(reason);
    const f = h[1];
    const r = newBhs(Op.LoginRsp, ((f >>> 2) & 3) << 2);
    r.set(h.subarray(8, 14), 8);
    wr16(r, 14, rd16(h, 14));
    wr32(r, 16, B.itt(h));
    r[36] = status >>> 8;
    r[37] = status & 0xff;
    this.send(r, [data], data.length, 'advance');
    this.shutdown(true);
  }

  // ---- full feature phase -----------------------------------------------------------------------
  private onScsiCmd(p: Pdu): void {
    const h = p.bhs;
    const imm = B.immediate(h);
    // Outside the window: silently ignored (RFC 7143 3.2.2.1 / 4.2.2.1), no task created.
    if (!imm) {
      const sn = B.cmdSN(h);
      if (!this.inCmdWindow(sn)) { this.count('cmdsn-outside-window'); return; }
      if (sn !== this.expCmdSN && this.queue.has(sn)) { this.count('cmdsn-duplicate'); return; }
    }
    const itt = B.itt(h);
    const read = (h[1] & 0x40) !== 0;
    const write = (h[1] & 0x20) !== 0;
    let bad: [RejectReason, string] | null = null;
    if (itt === RESERVED_TAG) bad = [RejectReason.InvalidPduField, 'scsi-reserved-itt'];
    else if (this.tasks.has(itt)) bad = [RejectReason.ProtocolError, 'scsi-itt-in-use'];
    else if (read && write) bad = [RejectReason.CommandNotSupported, 'scsi-bidirectional'];
    // Immediate commands bypass the CmdSN window (3.2.2.1), so they are bounded here: past as many
    // open ones as the window holds, "Immediate command reject - too many immediate commands"
    // (11.17.1 reason 0x06).
    else if (imm && this.immediateTasks() >= this.o.cmdWindow) bad = [RejectReason.ImmediateReject, 'scsi-too-many-immediate'];
    if (bad) {
      this.reject(bad[0], h, bad[1]);
      if (!imm) this.ordered(h, false, NOOP); // the header was sound: its CmdSN is consumed
      return;
    }
    const t = new Task(this, h, decodeLun(B.lun(h)));
    this.tasks.set(itt, t);
    t.start(B.final(h), p.dataLength, p.retain);
    this.ordered(h, imm, () => {
      if (t.aborted) return;
      if (!imm) this.inWindow.add(t);
      t.deliver();
    });
  }

  /** Open immediate SCSI tasks (only counted once there are many tasks). */
  private immediateTasks(): number {
    if (this.tasks.size < this.o.cmdWindow) return this.tasks.size;
    let n = 0;
    for (const t of this.tasks.values()) if (t.immediate) n++;
    return n;
  }

  private onNopOut(p: Pdu): void {
    const h = p.bhs;
    const itt = B.itt(h);
    if (itt === RESERVED_TAG) {
      // 11.18.1: ITT 0xffffffff is an answer to our ping (TTT echoed) or a ping wanting no reply;
      // either way the I bit must be set and nothing is sent back.
      if (!B.immediate(h)) {
        this.reject(RejectReason.ProtocolError, h, 'nop-out-reserved-itt-not-immediate');
        // The header is sound and names a non-immediate CmdSN: it is consumed (as for a rejected
        // SCSI command), or every later command would wait for a CmdSN that never comes; outside
        // the window it is ignored like any other (4.2.2.1).
        this.ordered(h, false, NOOP);
      } else this.count(B.ttt(h) === RESERVED_TAG ? 'nop-out-no-reply' : 'nop-out-ping-answer');
      return;
    }
    const hc = h.slice(0, 48);
    const data = p.data.slice(0, this.mrdslOut);
    this.ordered(h, B.immediate(h), () => {
      // 11.19: NOP-In answer: same ITT and LUN, TTT reserved, the ping data echoed, StatSN advances.
      const r = newBhs(Op.NopIn, 0x80);
      r.set(hc.subarray(8, 16), 8);
      wr32(r, 16, B.itt(hc));
      wr32(r, 20, RESERVED_TAG);
      this.send(r, [data], data.length, 'advance');
    });
  }

  private onText(h: Uint8Array, data: Uint8Array): void {
    const itt = B.itt(h);
    const ttt = B.ttt(h);
    const final = (h[1] & 0x80) !== 0;
    const cont = (h[1] & 0x40) !== 0;
    const reset = () => { this.textIn = []; this.textPending = null; this.textKeys.clear(); };
    /**
     * One Text Response with (the first part of) `all`. `done`: the initiator's request had F set,
     * so the last part ends the exchange (F=1, TTT reserved); otherwise (11.11.1: "a Text Response
     * with the F bit set to 1 in response to a Text Request with the F bit set to 0 is a protocol
     * error") it keeps F clear with a TTT for the initiator's next request of this negotiation.
     */
    const sendPart = (all: Uint8Array, done: boolean) => {
      const max = this.mrdslOut;
      const r = newBhs(Op.TextRsp, 0);
      r.set(h.subarray(8, 16), 8);
      wr32(r, 16, itt);
      if (all.length > max) {
        // 11.11.1 / 11.11.4: a long answer continues (C set, F clear, a TTT to come back with).
        const tag = this.nextTtt();
        this.textPending = { ttt: tag, rest: all.subarray(max), done };
        r[1] = 0x40;
        wr32(r, 20, tag);
        this.send(r, [all.subarray(0, max)], max, 'advance');
      } else if (done) {
        reset();
        r[1] = 0x80;
        wr32(r, 20, RESERVED_TAG);
        this.send(r, [all], all.length, 'advance');
      } else {
        // 11.11.1 / 11.11.4: F clear, a TTT other than 0xffffffff: the negotiation stays open.
        const tag = this.nextTtt();
        this.textPending = { ttt: tag, rest: new Uint8Array(0), done: false, open: true };
        wr32(r, 20, tag);
        this.send(r, [all], all.length, 'advance');
      }
    };
    if (cont && final) {
      // 11.10.2: "If the C bit is set to 1, the F bit MUST be set to 0."
      reset();
      this.reject(RejectReason.ProtocolError, h, 'text-c-and-f');
      return;
    }
    if (ttt !== RESERVED_TAG) {
      const pend = this.textPending;
      if (!pend || pend.ttt !== ttt) { this.reject(RejectReason.InvalidPduField, h, 'text-unknown-ttt'); return; }
      // 11.10.4: the initiator copied our TTT to continue: the rest of our answer, or (after an
      // empty answer to a request with C set, or an answer with F clear) its next request text,
      // taken below.
      if (!pend.collecting && !pend.open) { sendPart(pend.rest, pend.done); return; }
    } else {
      // 11.10.4: TTT 0xffffffff is a new request: the state of an earlier one is reset.
      reset();
    }
    if (cont) {
      // 11.10.2: C set: the request text continues; answer empty with F clear and a TTT.
      this.textIn.push(data);
      if (this.textIn.reduce((n, d) => n + d.length, 0) > 65536) { reset(); this.reject(RejectReason.OutOfResources, h, 'text-too-long'); return; }
      const r = newBhs(Op.TextRsp, 0);
      r.set(h.subarray(8, 16), 8);
      wr32(r, 16, itt);
      const tag = this.nextTtt();
      this.textPending = { ttt: tag, rest: new Uint8Array(0), done: false, collecting: true };
      wr32(r, 20, tag);
      this.send(r, [], 0, 'advance');
      return;
    }
    this.textPending = null;
    if (this.textIn.length) { this.textIn.push(data); data = Buffer.concat(this.textIn); this.textIn = []; }
    const parsed = parseText(data);
    if (parsed.error) { reset(); this.reject(RejectReason.ProtocolError, h, 'text-malformed'); return; }
    // RFC 7143 6.2: a key negotiated twice in one negotiation (in one request, or again in a later
    // request of the same exchange) is a protocol error, not two answers.
    if (repeatedKey(parsed.pairs) !== undefined || parsed.pairs.some(([k]) => this.textKeys.has(k))) {
      reset();
      this.reject(RejectReason.ProtocolError, h, 'text-repeated-key');
      return;
    }
    for (const [k] of parsed.pairs) this.textKeys.add(k);
    if (this.textKeys.size > 256) { reset(); this.reject(RejectReason.OutOfResources, h, 'text-too-many-keys'); return; }
    const pairs = answerText(parsed.pairs, {
      discovery: this.params?.sessionType === 'Discovery',
      sessionTarget: this.targetName || undefined,
      targets: this.portal.targets.keys(),
      address: targetAddress(this.local, this.o.portalGroupTag),
      ourMrdsl: this.o.maxRecvDataSegmentLength,
      setInitiatorMrdsl: (n) => { if (this.params) this.params.initiatorMaxRecvDataSegmentLength = n; },
    });
    this.count('text-request');
    sendPart(encodeText(pairs), final);
  }

  private onTmf(h: Uint8Array): void {
    const fn = h[1] & 0x7f;
    const lun = decodeLun(B.lun(h));
    const itt = B.itt(h);
    const respond = (code: number) => {
      const r = newBhs(Op.TmfRsp, 0x80);
      r[2] = code;
      wr32(r, 16, itt);
      this.send(r, [], 0, 'advance');
    };
    // RFC 7143 4.2.3 / SAM-5: "Function complete" only once the aborted tasks can have no further
    // effect: a command still running in a backend (a file write) returns first.
    const completeAfter = (tasks: readonly Settling[]) => whenAllSettled(tasks, () => {
      if (this.phase !== 'closed') this.batch(() => respond(0));
    });
    const lunExists = this.scsi.luns.includes(lun);
    const others = () => this.portal.sessions.forTarget(this.targetName).filter((s) => s !== this);
    this.count(`tmf-${fn}`);
    // RFC 7143 11.5.1 functions, 11.6.1 responses (0 complete, 1 no task, 2 no LUN, 4 reassign
    // not supported, 5 not supported).
    switch (fn) {
      case 1: { // ABORT TASK
        // SAM-5: ABORT TASK names the task by its I_T_L_Q nexus: the Referenced Task Tag on the
        // TMF's LUN (RFC 7143 11.5.1); a tag of another LUN is no task of this one.
        const found = this.tasks.get(rd32(h, 20));
        const t = found && found.lun === lun ? found : undefined;
        if (t) { t.abort(); completeAfter([t]); return; }
        const ref = rd32(h, 32);
        const tmfSN = B.cmdSN(h);
        // 11.5.1 b: an unknown task whose RefCmdSN is in the window and before the TMF: the
        // CmdSN is taken as received (the gap is plugged) and the answer is Function complete.
        if (snLe(this.expCmdSN, ref) && snLt(ref, tmfSN) && snLe(ref, this.maxCmdSN())) {
          if (!this.queue.has(ref)) this.queue.set(ref, NOOP);
          respond(0);
          this.drain();
          return;
        }
        respond(1);
        return;
      }
      case 2: // ABORT TASK SET: this session's tasks on the LUN
        if (!lunExists) { respond(2); return; }
        completeAfter(this.abortTasks(lun, 'abort-task-set'));
        return;
      case 4: // CLEAR TASK SET: every initiator's tasks on the LUN
        if (!lunExists) { respond(2); return; }
        completeAfter([...this.abortTasks(lun, 'clear-task-set'), ...others().flatMap((s) => s.abortTasks(lun, 'clear-task-set'))]);
        return;
      case 5: // LOGICAL UNIT RESET
        if (!lunExists) { respond(2); return; }
        {
          const aborted = [...this.abortTasks(lun, 'lun-reset'), ...others().flatMap((s) => s.abortTasks(lun, 'lun-reset'))];
          this.scsi.lunReset(lun, this.nexus);
          completeAfter(aborted);
        }
        return;
      case 6: // TARGET WARM RESET
        {
          const aborted = [...this.abortTasks(null, 'target-reset'), ...others().flatMap((s) => s.abortTasks(null, 'target-reset'))];
          this.scsi.targetReset(this.nexus);
          completeAfter(aborted);
        }
        return;
      case 7: // TARGET COLD RESET: as warm, then every connection to the target ends (11.5.1)
        this.abortTasks(null, 'target-reset');
        for (const s of others()) s.terminate('cold-reset');
        this.scsi.targetReset(this.nexus);
        respond(0);
        this.shutdown(true);
        return;
      case 8: respond(4); return; // TASK REASSIGN needs ErrorRecoveryLevel 2
      default: respond(5); // CLEAR ACA (no NACA support) and undefined functions
    }
  }

  private onLogout(h: Uint8Array): void {
    const reason = h[1] & 0x7f;
    // 11.14.1 reasons: 0 close session, 1 close connection, 2 remove for recovery.
    // 11.15.1 responses: 0 closed, 1 CID not found, 2 recovery not supported.
    let code = 0;
    if (reason === 1 && rd16(h, 20) !== this.cid) code = 1;
    else if (reason === 2) code = 2;
    else if (reason > 2) { this.reject(RejectReason.InvalidPduField, h, 'logout-bad-reason'); return; }
    if (code === 0) for (const t of [...this.tasks.values()]) t.abort(); // 11.14: the session's tasks end
    const r = newBhs(Op.LogoutRsp, 0x80);
    r[2] = code;
    wr32(r, 16, B.itt(h));
    // 11.15.4/5: Time2Wait / Time2Retain 0: nothing is kept at error recovery level 0.
    this.send(r, [], 0, 'advance');
    this.count(code === 0 ? 'logout' : 'logout-refused');
    if (code === 0) this.shutdown(true);
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
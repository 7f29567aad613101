/**
 * The core of an iSCSI connection (RFC 7143), shared by the login and full feature phases: output
 * with StatSN/ExpCmdSN/MaxCmdSN filled in, CmdSN ordering with the ExpCmdSN/MaxCmdSN window
 * (4.2.2.1), Reject, timers (login timeout, target NOP-In pings), and the end of the session.
 * session.ts builds the PDU handlers on it.
 */
import { MAX_TRANSFER_BYTES } from './scsi/limits';
import { ScsiTarget, TargetSpec } from './scsi/types';
import { Hold, Op, Pdu, PduFatal, PduReader, RejectReason, RESERVED_TAG, bhs as B, newBhs, frame, wr32 } from './pdu';
import { SessionParams } from './login';
import { SessionMember, SessionTable } from './sessions';
import { Task, TaskHost } from './task';
export interface ConnHost {
  /** Writes PDU bytes to the TCP connection, in order (views are fine: the socket copies them). */
  send(bufs: readonly Uint8Array[]): void;
  /** Ends the TCP connection (after a Logout Response, or on a fatal protocol error). */
  close(): void;
  log?(msg: string): void;
  /**
   * Bytes handed to send() that the transport has not taken yet (optional; absent = 0). Above
   * ConnOptions.outputHighWater no new task starts until advance() is called with the backlog
   * below it again: an initiator that does not read its Data-In cannot make the target buffer
   * without bound.
   */
  backlog?(): number;
}

export interface Portal {
  /** Targets served on this portal (one VS), by IQN. */
  readonly targets: ReadonlyMap<string, { spec: TargetSpec; scsi: ScsiTarget }>;
  /** Sessions of this portal (reinstatement by initiator name + ISID, TSIH allocation). */
  readonly sessions: SessionTable;
}

export interface ConnOptions {
  /** Our MaxRecvDataSegmentLength (RFC 7143 13.12), default 262144. */
  maxRecvDataSegmentLength?: number;
  /** Upper bounds we accept for MaxBurstLength / FirstBurstLength (13.13/13.14), default 262144. */
  maxBurstLength?: number;
  firstBurstLength?: number;
  /** Upper bound for MaxOutstandingR2T (13.17), default 4. */
  maxOutstandingR2T?: number;
  /** Our InitialR2T wish (13.10, OR), default false: unsolicited data allowed if the initiator agrees. */
  initialR2T?: boolean;
  /** Our ImmediateData wish (13.11, AND), default true. */
  immediateData?: boolean;
  /** Largest write collected for one command (bytes), default the SCSI layer's MAXIMUM TRANSFER LENGTH (8 MiB). */
  maxTransferLength?: number;
  /** Buffer budget for solicited Data-Out per connection (bytes, at least maxTransferLength), default 64 MiB. */
  dataOutBudget?: number;
  /** Data-In of reads executing at once per connection (bytes, at least maxTransferLength), default 64 MiB. */
  dataInBudget?: number;
  /** ConnHost.backlog() above which no new task starts (bytes), default 1 MiB. */
  outputHighWater?: number;
  /** Commands accepted ahead (MaxCmdSN - ExpCmdSN + 1 when idle), default 128. */
  cmdWindow?: number;
  /** Idle time before a target NOP-In ping (ms); 0 disables; default 5000. */
  nopInterval?: number;
  /** Time the initiator has to answer a ping before the connection is closed (ms), default 10000. */
  nopTimeout?: number;
  /** Time allowed to complete login (ms), default 15000. */
  loginTimeout?: number;
  defaultTime2Wait?: number;
  defaultTime2Retain?: number;
  targetAlias?: string;
  /** Target portal group tag (13.9), default 1. */
  portalGroupTag?: number;
  /** Random bytes (CHAP challenges, first StatSN). */
  random?: (n: number) => Uint8Array;
  /** First StatSN (RFC 7143 11.13.3); random when absent. */
  initialStatSN?: number;
}

export type Phase = 'login' | 'ffp' | 'closed';

/** RFC 1982 serial number arithmetic on 32 bits (RFC 7143 4.2.2.1 / 11.3.? CmdSN). */
export const snLt = (a: number, b: number) => ((a - b) | 0) < 0;
export const snLe = (a: number, b: number) => a === b || snLt(a, b);

export const NOOP = () => { /* a consumed CmdSN with nothing to do */ };
export abstract class ConnCore implements SessionMember, TaskHost {
  phase: Phase = 'login';
  initiatorName = '';
  isid = '';
  targetName = '';
  tsih = 0;
  nexus = '';
  params: SessionParams | null = null;
  scsi!: ScsiTarget;

  protected readonly reader: PduReader;
  protected readonly o: Required<Omit<ConnOptions, 'targetAlias' | 'random' | 'initialStatSN'>> & ConnOptions;
  protected now: number;
  protected loginDeadline: number;
  protected statSN: number;
  protected expCmdSN = 0;
  protected maxAdv = 0;
  protected readonly tasks = new Map<number, Task>();
  protected readonly inWindow = new Set<Task>();
  protected readonly queue = new Map<number, () => void>();
  protected ttt = 1;
  protected lastRx: number;
  protected pingTtt: number | null = null;
  protected pingDeadline = Infinity;
  protected out: Uint8Array[] = [];
  protected depth = 0;
  protected registered = false;
  /** Solicited Data-Out room left, and tasks waiting for room. */
  protected budget = 0;
  protected readonly waitingRoom = new Set<Task>();
  /** Data-In room left for executing reads, and the tasks waiting to start, in arrival order. */
  protected inRoom = 0;
  protected admitQueue: Task[] = [];

  constructor(protected readonly portal: Portal, protected readonly host: ConnHost, now: number, opts: ConnOptions = {}) {
    this.o = {
      maxRecvDataSegmentLength: 262144, maxBurstLength: 262144, firstBurstLength: 262144, maxOutstandingR2T: 4,
      initialR2T: false, immediateData: true, cmdWindow: 128, nopInterval: 5000, nopTimeout: 10000,
      loginTimeout: 15000, defaultTime2Wait: 2, defaultTime2Retain: 20, portalGroupTag: 1,
      maxTransferLength: MAX_TRANSFER_BYTES, dataOutBudget: 64 << 20, dataInBudget: 64 << 20, outputHighWater: 1 << 20, ...opts,
    };
    this.inRoom = Math.max(this.o.dataInBudget, this.o.maxTransferLength);
    this.budget = Math.max(this.o.dataOutBudget, this.o.maxTransferLength);
    this.now = now;
    this.lastRx = now;
    this.loginDeadline = now + this.o.loginTimeout;
    const r = opts.random ? opts.random(4) : crypto.getRandomValues(new Uint8Array(4));
    this.statSN = opts.initialStatSN ?? (((r[0] << 24) | (r[1] << 16) | (r[2] << 8) | r[3]) >>> 0);
    this.reader = new PduReader((p) => this.onPdu(p), (f) => this.onFatal(f));
    // RFC 7143 6.3 / 13.12: "The default MaxRecvDataSegmentLength is used during Login" (8192),
    // whatever we declare for full feature phase; a longer Login Request fails the login.
    this.reader.maxData = 8192;
  }

  // ---- TaskHost ---------------------------------------------------------------------------------
  get mrdslOut(): number { return this.params?.initiatorMaxRecvDataSegmentLength ?? 8192; }
  get maxBurstLength(): number { return this.params?.maxBurstLength ?? 262144; }
  get firstBurstLength(): number { return this.params?.firstBurstLength ?? 65536; }
  get maxOutstandingR2T(): number { return this.params?.maxOutstandingR2T ?? 1; }
  get initialR2T(): boolean { return this.params?.initialR2T ?? true; }
  get immediateData(): boolean { return this.params?.immediateData ?? true; }
  /** The current ExpCmdSN (tests, status). */
  get expectedCmdSN(): number { return this.expCmdSN; }
  /** Tasks known to the connection (received, not yet answered or aborted). */
  get taskCount(): number { return this.tasks.size; }

  get maxTransferLength(): number { return this.o.maxTransferLength; }
  /** Data-Out bytes copied / pieces kept as pinned views / holds refused, by this connection's reader. */
  get dataOutStats(): { readonly copiedBytes: number; readonly heldPieces: number; readonly refusedHolds: number } { return this.reader.stats; }

  reserve(t: Task, n: number): boolean {
    if (n <= this.budget) { this.budget -= n; this.waitingRoom.delete(t); return true; }
    if (!this.waitingRoom.has(t)) { this.waitingRoom.add(t); this.count('data-out-budget-wait'); }
    return false;
  }

  unreserve(n: number): void {
    this.budget += n;
    for (const t of [...this.waitingRoom]) {
      if (this.phase === 'closed') return;
      if (t.aborted || t.state !== 'collect') { this.waitingRoom.delete(t); continue; }
      t.resume();
    }
  }

  /**
   * Whether a task whose data is complete may start now. Tasks start in the order they become
   * ready: once one waits, the ones after it wait too (the SCSI layer sees them in the same order,
   * so ORDERED and HEAD OF QUEUE keep their meaning). A read waits while the Data-In of the reads
   * already executing would exceed the budget, and any task waits while the transport holds more
   * than outputHighWater unsent bytes (the initiator is not reading).
   */
  admit(t: Task, dataIn: number): boolean {
    const queued = this.admitQueue.length > 0;
    const first = !queued || this.admitQueue[0] === t;
    const backlog = this.host.backlog ? this.host.backlog() : 0;
    if (first && backlog <= this.o.outputHighWater && dataIn <= this.inRoom) {
      if (queued) this.admitQueue.shift();
      this.inRoom -= dataIn;
      return true;
    }
    if (!this.admitQueue.includes(t)) {
      this.admitQueue.push(t);
      this.count(backlog > this.o.outputHighWater ? 'task-wait-output' : first ? 'task-wait-data-in-budget' : 'task-wait-in-order');
    }
    return false;
  }

  unadmit(dataIn: number): void {
    this.inRoom += dataIn;
    this.resumeAdmitted();
  }

  /** Starts waiting tasks from the head of the queue while they are admitted. */
  protected resumeAdmitted(): void {
    for (let i = 0; i < 100000 && this.admitQueue.length && this.phase !== 'closed'; i++) {
      const t = this.admitQueue[0]!;
      if (t.aborted || t.state !== 'collect') { this.admitQueue.shift(); continue; }
      t.resume();
      if (this.admitQueue[0] === t) return; // still waiting
    }
  }

  nextTtt(): number {
    const t = this.ttt;
    this.ttt = this.ttt >= 0xfffffffe ? 1 : this.ttt + 1;
    return t;
  }

  count(reason: string): void {
    this.portal.sessions.count(reason);
  }

  send(h: Uint8Array, data: readonly Uint8Array[], len: number, stat: 'advance' | 'peek' | 'none'): void {
    if (this.phase === 'closed') return;
    if (stat !== 'none') {
      wr32(h, 24, this.statSN);
      if (stat === 'advance') this.statSN = (this.statSN + 1) >>> 0;
    }
    wr32(h, 28, this.expCmdSN);
    wr32(h, 32, this.maxCmdSN());
    const p = this.params;
    for (const b of frame(h, data, len, !!p && this.phase === 'ffp' && p.headerDigest, !!p && this.phase === 'ffp' && p.dataDigest)) this.out.push(b);
    if (this.depth === 0) this.flush();
  }

  batch(fn: () => void): void {
    this.depth++;
    // Also the way in for completions (a backend's callback): guarded like input.
    try { fn(); } catch (e) { this.internalError(e); } finally { this.depth--; }
    if (this.depth === 0) this.flush();
  }

  /**
   * A bug must never reach the event loop (one initiator would stop every tenant's service): the
   * connection ends, counted and logged; at error recovery level 0 that ends the session.
   */
  private internalError(e: unknown): void {
    this.count('internal-error');
    this.log(`iscsi: internal error, closing: ${(e as Error)?.stack ?? e}`);
    if (this.phase === 'closed') return;
    const depth = this.depth;
    this.depth = 1;
    try { this.shutdown(true); } catch { /* already ending */ } finally { this.depth = depth; }
  }

  finished(t: Task): void {
    this.waitingRoom.delete(t);
    const q = this.admitQueue.indexOf(t);
    if (q >= 0) {
      this.admitQueue.splice(q, 1);
      if (q === 0) this.resumeAdmitted(); // the head went away (aborted): the next may start
    }
    if (this.tasks.get(t.itt) === t) this.tasks.delete(t.itt);
    this.inWindow.delete(t);
  }

  // ---- SessionMember ----------------------------------------------------------------------------
  terminate(reason: string): void {
    this.count(`session-terminated-${reason}`);
    this.shutdown(true);
  }

  abortTasks(lun: number | null, reason: string): Task[] {
    const out: Task[] = [];
    for (const t of [...this.tasks.values()]) {
      if (lun === null || t.lun === lun) { t.abort(); out.push(t); }
    }
    if (out.length) this.count(`tasks-aborted-${reason}`);
    return out;
  }

  // ---- input ------------------------------------------------------------------------------------
  /**
   * Bytes received, in order. `hold`, when given, pins the chunk's memory: it returns a release
   * function, or null when the holder is over budget (the bytes are then copied). Views of SCSI
   * Command immediate data and Data-Out stay pinned until the command is done (the SCSI layer's
   * `done`), aborted before execution, or the connection closes; everything else is released
   * before input returns.
   */
  input(bytes: Uint8Array, now: number, hold?: Hold): void {
    if (this.phase === 'closed') return;
    this.now = now;
    // Any bytes show the initiator is alive (an outstanding ping needs no answer beyond that).
    this.lastRx = now;
    this.pingTtt = null;
    this.depth++;
    try {
      this.reader.input(bytes, hold);
    } catch (e) {
      this.internalError(e);
    } finally {
      this.depth--;
    }
    this.flush();
  }

  advance(now: number): number {
    try {
      return this.advanceTimers(now);
    } catch (e) {
      this.internalError(e);
      this.flush();
      return Infinity;
    }
  }

  private advanceTimers(now: number): number {
    this.now = now;
    if (this.phase === 'closed') return Infinity;
    // The host calls advance when its backlog went down: tasks waiting for the output may start.
    if (this.admitQueue.length) this.resumeAdmitted();
    if ((this.phase as Phase) === 'closed') return Infinity;
    if (this.phase === 'login') {
      if (now >= this.loginDeadline) { this.count('login-timeout'); this.shutdown(true); return Infinity; }
      return this.loginDeadline;
    }
    if (this.o.nopInterval <= 0) return Infinity;
    if (this.pingTtt !== null) {
      if (now >= this.pingDeadline) {
        // The initiator did not answer the NOP-In ping (RFC 7143 11.19: a NOP-In with a valid TTT asks for a NOP-Out).
        this.count('nop-timeout');
        this.shutdown(true);
        return Infinity;
      }
      return this.pingDeadline;
    }
    if (now - this.lastRx >= this.o.nopInterval) {
      this.pingTtt = this.nextTtt();
      this.pingDeadline = now + this.o.nopTimeout;
      const h = newBhs(Op.NopIn, 0x80);
      wr32(h, 16, RESERVED_TAG); // 11.19.2: ITT 0xffffffff for a target-initiated NOP-In
      wr32(h, 20, this.pingTtt);
      this.send(h, [], 0, 'peek'); // 11.19.4: StatSN not advanced when ITT is 0xffffffff
      this.count('nop-in-ping');
      return this.pingDeadline;
    }
    return this.lastRx + this.o.nopInterval;
  }

  closed(_now: number): void {
    if (this.phase === 'closed') return;
    if (this.reader.midPdu) this.count('closed-mid-pdu');
    this.count('connection-closed');
    this.shutdown(false);
  }

  protected flush(): void {
    if (this.out.length === 0) return;
    const bufs = this.out;
    this.out = [];
    this.host.send(bufs);
  }

  protected log(m: string): void { this.host.log?.(m); }

  protected shutdown(closeHost: boolean): void {
    if (this.phase === 'closed') return;
    this.flush();
    this.phase = 'closed';
    this.reader.stop();
    for (const t of [...this.tasks.values()]) t.abort();
    this.tasks.clear();
    this.queue.clear();
    if (this.registered) {
      this.registered = false;
      this.portal.sessions.remove(this);
      // SAM-5: the I_T nexus ends with the session (logout, connection loss at ERL 0, reinstatement).
      if (this.scsi) this.scsi.nexusLost(this.nexus);
    }
    if (closeHost) this.host.close();
  }

  protected onFatal(f: PduFatal): void {
    this.count(f);
    this.log(`iscsi: ${f}, closing`);
    this.shutdown(true);
  }

  protected maxCmdSN(): number {
    // MaxCmdSN never goes back (RFC 7143 4.2.2.1: the initiator ignores a smaller one).
    const m = (this.expCmdSN + this.o.cmdWindow - 1 - this.inWindow.size) >>> 0;
    if (snLt(this.maxAdv, m)) this.maxAdv = m;
    return this.maxAdv;
  }

  protected reject(reason: RejectReason, h: Uint8Array, why: string): void {
    this.count(why);
    // RFC 7143 11.17: the Reject carries the complete header of the bad PDU.
    const r = newBhs(Op.Reject, 0x80);
    r[2] = reason;
    wr32(r, 16, RESERVED_TAG);
    this.send(r, [h.slice(0, 48)], 48, 'advance');
  }

  protected abstract onPdu(p: Pdu): void;

  protected inCmdWindow(sn: number): boolean {
    return snLe(this.expCmdSN, sn) && snLe(sn, this.maxCmdSN());
  }

  /**
   * RFC 7143 4.2.2.1 / 3.2.2.1: immediate PDUs are processed at once; others in CmdSN order:
   * ExpCmdSN is processed, later ones within MaxCmdSN wait, anything outside the window is
   * silently ignored. Returns false when ignored.
   */
  protected ordered(h: Uint8Array, immediate: boolean, fn: () => void): boolean {
    if (immediate) { fn(); return true; }
    const sn = B.cmdSN(h);
    if (sn === this.expCmdSN) {
      this.expCmdSN = (this.expCmdSN + 1) >>> 0;
      fn();
      this.drain();
      return true;
    }
    if (!this.inCmdWindow(sn)) { this.count('cmdsn-outside-window'); return false; }
    if (this.queue.has(sn)) { this.count('cmdsn-duplicate'); return false; }
    this.queue.set(sn, fn);
    this.count('cmdsn-queued-out-of-order');
    return true;
  }

  protected drain(): void {
    for (let i = 0; i <= this.o.cmdWindow && this.phase !== 'closed'; i++) {
      const fn = this.queue.get(this.expCmdSN);
      if (!fn) return;
      this.queue.delete(this.expCmdSN);
      this.expCmdSN = (this.expCmdSN + 1) >>> 0;
      fn();
    }
  }

}

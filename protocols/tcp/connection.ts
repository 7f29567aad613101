/**
 * The TCP connection state machine (RFC 9293), sans-IO. See ./types for the host interface.
 *
 * Choices (documented for the integrator and the tests):
 * - RTO per RFC 6298 with a 200 ms minimum (as Linux; RFC 6298 says 1 s), 1 s initial, 120 s
 *   maximum, exponential backoff, Karn's rule (RTT from timestamps when negotiated, else one
 *   timed segment not retransmitted). After a timeout, an echoed timestamp older than the
 *   retransmission gives no sample (it only measures how long the ACKs were lost).
 * - Loss recovery: with SACK, RFC 6675 (pipe, NextSeg with the rescue retransmission, IsLost by
 *   3 SMSS SACKed above a hole); without, NewReno (RFC 6582) with window inflation. Congestion
 *   control NewReno or CUBIC. Early retransmit (RFC 5827) for flights under four segments. Limited
 *   Transmit (RFC 3042): the first two duplicate ACKs each let one new segment out beyond cwnd
 *   (at most cwnd + 2 SMSS outstanding), left out of the ssthresh of a recovery that follows. As a
 *   receiver, duplicates are reported with D-SACK (RFC 2883).
 * - A SYN or SYN-ACK that had to be retransmitted starts the transfer with a one-segment window
 *   (RFC 5681 3.1) and, without an RTT sample from the handshake, a 3 s RTO (RFC 6298 5.7).
 * - Zero-window and keepalive probes are ACKs with SEG.SEQ = SND.UNA - 1 (as Linux): they
 *   always elicit an ACK with the current window.
 * - RST in TIME_WAIT is ignored (RFC 1337). RST/SYN checks follow RFC 5961 with a per
 *   connection challenge-ACK rate limit.
 * - Received data is delivered at once (zero copy from the frame) through host.onData; it counts
 *   against the receive window until consumed(n). Out-of-order data is copied into a ring of
 *   rcvBuf bytes indexed by sequence number, in at most maxOooRanges ranges.
 * - The send buffer is a ring indexed by sequence number; a segment never spans the ring's end
 *   (it is cut there), so host.send always gets one contiguous range.
 */
import { Drop } from '../drop';
import { CongestionControl, createCc } from './cc';
import { HashKey } from './hash';
import { isnFor, tsOffsetFor } from './isn';
import { bufSize, DEFAULT_PEER_MSS, defaultPeerMss, resolveOptions, wscaleFor } from './options';
import { addRange, RANGE_RADIX } from './ranges';
import { giveRing, takeRing } from './rings';
import { seqAdd, seqGeq, seqGt, seqLeq, seqLt, seqMax, seqMin } from './seq';
import { keyOf, SynCookieInfo } from './syncookie';
import {
  TcpCounters, TcpError, TcpHost, TcpOptions, TcpSegmentIn, TcpSegmentOut, TcpState, TcpStats, TcpTuple,
  TH_ACK, TH_FIN, TH_PSH, TH_RST, TH_SYN, TCP_STATE_NAMES,
} from './types';

const MAX_SB = 32; // SACK scoreboard ranges
const NO_BYTES = new Uint8Array(0);
/** Linearizes a segment that wraps the send ring (host.send consumes it synchronously). */
const WRAP_SCRATCH = new Uint8Array(65536);
const DUP_THRESH = 3;
const TS_STALE_US = 24 * 24 * 3600 * 1_000_000; // RFC 7323 5.5: TS.Recent invalid after 24 days idle
/** Where connections whose host keeps no counters count (never read). */
const NO_COUNTERS = new TcpCounters();

export class TcpConnection {
  readonly tuple: TcpTuple;
  user: unknown = null;
  state: TcpState = TcpState.Closed;
  readonly stats = new TcpStats();
  /** The counters of this connection's group (its virtual server), shared with the others. */
  private readonly mib: TcpCounters;
  readonly opts: TcpOptions;
  private readonly host: TcpHost;
  private readonly out = new TcpSegmentOut();

  // ---- send side
  iss = 0;
  sndUna = 0;
  sndNxt = 0;
  /** Highest sequence sent + 1. */
  sndMax = 0;
  /** Send window in bytes (scaled). */
  sndWnd = 0;
  private maxSndWnd = 0;
  private sndWl1 = 0;
  private sndWl2 = 0;
  private sndWscale = 0;
  /** MSS used for sending (after option overhead). */
  sndMss = DEFAULT_PEER_MSS;
  private peerMss = DEFAULT_PEER_MSS;
  /** Send ring, allocated on the first write (idle connections cost no buffer). */
  private sbuf: Uint8Array = NO_BYTES;
  private readonly sCap: number;
  /** Mask of the current send ring (its length - 1); the ring grows up to sCap as data queues. */
  private sMask = 0;
  /** Sequence of the first byte held in the send buffer, and one past the last. */
  private sbufStart = 0;
  private sbufEnd = 0;
  private finQueued = false;
  private finAcked = false;
  private writeBlocked = false;

  // ---- receive side
  irs = 0;
  rcvNxt = 0;
  /** Right edge of the window last advertised. */
  private rcvAdv = 0;
  private rcvWscale = 0;
  private readonly rcvCap: number;
  /** Out-of-order ring, allocated on the first out-of-order segment. */
  private rbuf: Uint8Array = NO_BYTES;
  /** Delivered to the application and not yet consumed. */
  private unread = 0;
  private readonly oooStart: Uint32Array;
  private readonly oooEnd: Uint32Array;
  private oooN = 0;
  /** Range that received the latest out-of-order segment (first SACK block), -1 none. */
  private oooLast = -1;
  /** D-SACK (RFC 2883): a duplicate range received, reported once as the first SACK block. */
  private dsackStart = 0;
  private dsackEnd = 0;
  private dsackPending = false;
  /** TSval of our last retransmission timeout's retransmission (-1: none since the last new ACK). */
  private rtoTsVal = -1;
  /** Our retransmission timer expired while the peer's window was zero (the retransmissions were probes in effect). */
  private rtoInZeroWnd = false;
  /** The ACK completing a passive open was already used for an RTT sample. */
  private handshakeSampled = false;
  private finRcvd = false;
  private finSeq = 0;
  private finPending = false;
  private lastAckSent = 0;
  private ackPending = 0; // segments received since the last ACK

  // ---- options
  private tsOk = false;
  private sackOk = false;
  private tsOffset = 0;
  private tsRecent = 0;
  private tsRecentAge = 0;

  // ---- RTT / RTO
  srtt = 0;
  rttvar = 0;
  rto: number;
  private backoff = 0;
  private retries = 0;
  private rttSeq = 0;
  private rttTime = -1;

  // ---- congestion and recovery
  readonly cc: CongestionControl;
  private dupAcks = 0;
  /** Bytes sent beyond cwnd by Limited Transmit since the last new ACK (RFC 3042). */
  private ltBytes = 0;
  private inRecovery = false;
  private recoverSeq = 0;
  private highRxt = 0;
  /** RFC 6675 RescueRxt: RecoveryPoint of the last rescue retransmission (-1: undefined). */
  private rescueRxt = -1;
  private readonly sbStart = new Uint32Array(MAX_SB);
  private readonly sbEnd = new Uint32Array(MAX_SB);
  private sbN = 0;

  // ---- timers (µs, Infinity = off)
  private tRtx = Infinity; // retransmission or persist
  private persist = false;
  private tDelack = Infinity;
  private tKeep = Infinity;
  private tLinger = Infinity; // TIME_WAIT or FIN_WAIT_2
  private armed = Infinity;
  private keepProbes = 0;
  private lastRecv = 0;
  private orphan = false;
  private closedReported = false;
  private released = false;
  private chalStart = 0;
  private chalCount = 0;
  private passive = false;

  constructor(host: TcpHost, tuple: TcpTuple, opts: Partial<TcpOptions> | undefined, secret: Uint8Array | HashKey | null, user: unknown = null) {
    this.host = host;
    this.tuple = tuple;
    this.user = user;
    this.mib = host.counters?.(this) ?? NO_COUNTERS;
    this.opts = resolveOptions(opts);
    const o = this.opts;
    this.rto = o.rtoInitialUs;
    const sc = bufSize(o.sndBuf);
    this.sCap = sc;
    this.rcvCap = bufSize(o.rcvBuf);
    this.oooStart = new Uint32Array(Math.max(1, o.maxOooRanges));
    this.oooEnd = new Uint32Array(Math.max(1, o.maxOooRanges));
    this.cc = createCc(o.cc, o.initialCwnd * DEFAULT_PEER_MSS);
    this.out.srcPort = tuple.localPort;
    this.out.dstPort = tuple.remotePort;
    if (secret) {
      const key = keyOf(secret);
      this.iss = isnFor(key, tuple.localAddr, tuple.localPort, tuple.remoteAddr, tuple.remotePort, 0);
      this.tsOffset = tsOffsetFor(key, tuple.localAddr, tuple.localPort, tuple.remoteAddr, tuple.remotePort);
      this.key = key;
    }
  }
  private key: HashKey | null = null;
  /**
   * SYN-ACK retransmissions allowed in SYN_RECEIVED before giving up (at most opts.synRetries): a
   * listener under a SYN flood lowers it (RFC 4987 3.2, Linux reqsk_timer_handler).
   */
  synAckRetryLimit = Infinity;
  /** SYN or SYN-ACK retransmissions so far (in the handshake). */
  get handshakeRetries(): number { return this.state === TcpState.SynSent || this.state === TcpState.SynReceived ? this.retries : 0; }

  // =================================================================== public API

  get stateName(): string {
    return TCP_STATE_NAMES[this.state]!;
  }
  get cwnd(): number {
    return this.cc.cwnd;
  }
  get ssthresh(): number {
    return this.cc.ssthresh;
  }
  /** Receive window we would advertise now (bytes). */
  get rcvWnd(): number {
    return Math.max(0, this.rcvCap - this.unread);
  }
  /** The window last advertised (bytes from RCV.NXT to the right edge we offered). */
  get advertisedWindow(): number {
    return Math.max(0, (this.rcvAdv - this.rcvNxt) | 0);
  }
  /** Bytes write() would accept now. */
  get writableBytes(): number {
    if (this.finQueued) return 0;
    return this.sCap - ((this.sbufEnd - this.sbufStart) >>> 0);
  }
  /** Bytes in the send buffer (unsent + unacknowledged). */
  get pendingBytes(): number {
    return (this.sbufEnd - this.sbufStart) >>> 0;
  }
  /** Bytes sent or queued and not sent yet (the part of pendingBytes beyond SND.MAX). */
  get unsentBytes(): number {
    const sent = seqGt(this.sndMax, this.sbufStart) ? (seqMin(this.sndMax, this.sbufEnd) - this.sbufStart) >>> 0 : 0;
    return this.pendingBytes - sent;
  }
  /** Bytes delivered to the application (host.onData) and not yet consumed(). */
  get unreadBytes(): number { return this.unread; }
  /** The retransmission timeout now in force (µs): RTO doubled for each backoff (RFC 6298 5.5). */
  get rtoNow(): number { return this.rtoBackedOff(); }
  /** Timeouts since the last new acknowledgment (exponential backoff steps). */
  get backoffCount(): number { return this.backoff; }
  /** Window scaling in use (RFC 7323 2.2: both SYNs carried the option). */
  get windowScaling(): boolean { return this.wsAgreed; }
  get timestamps(): boolean { return this.tsOk; }
  get sack(): boolean { return this.sackOk; }
  get sendWscale(): number { return this.sndWscale; }
  get recvWscale(): number { return this.rcvWscale; }
  /** Next timer deadline (also given to host.setTimer). */
  get deadline(): number { return this.armed; }

  /** Active open: sends SYN. */
  connect(now: number): void {
    if (this.state !== TcpState.Closed) throw new Error(`connect() in state ${this.stateName}`);
    if (this.key) this.iss = isnFor(this.key, this.tuple.localAddr, this.tuple.localPort, this.tuple.remoteAddr, this.tuple.remotePort, now);
    this.initSend(this.iss);
    this.rcvWscale = this.opts.windowScale ? wscaleFor(this.opts.rcvBuf) : 0;
    this.state = TcpState.SynSent;
    this.lastRecv = now;
    this.sendSyn(now, false);
    this.sndNxt = this.sndMax = seqAdd(this.iss, 1);
    this.tRtx = now + this.rto;
    this.arm();
  }

  /** Passive open: `syn` came to a listener; replies SYN-ACK and returns the connection in SYN_RECEIVED. */
  static acceptSyn(
    host: TcpHost, tuple: TcpTuple, opts: Partial<TcpOptions> | undefined, secret: Uint8Array | HashKey, syn: TcpSegmentIn, now: number,
    user: unknown = null,
  ): TcpConnection {
    const c = new TcpConnection(host, tuple, opts, secret, user);
    c.passive = true;
    c.stats.segsIn++; // the SYN
    if (c.key) c.iss = isnFor(c.key, tuple.localAddr, tuple.localPort, tuple.remoteAddr, tuple.remotePort, now);
    c.initSend(c.iss);
    c.negotiate(syn);
    c.irs = syn.seq;
    c.rcvNxt = seqAdd(syn.seq, 1);
    c.sndWnd = syn.window; // never scaled in a SYN
    c.maxSndWnd = c.sndWnd;
    c.sndWl1 = syn.seq;
    c.sndWl2 = c.iss;
    if (c.tsOk) { c.tsRecent = syn.tsVal; c.tsRecentAge = now; }
    c.state = TcpState.SynReceived;
    c.lastRecv = now;
    c.sendSyn(now, true);
    c.sndNxt = c.sndMax = seqAdd(c.iss, 1);
    c.tRtx = now + c.rto;
    c.arm();
    return c;
  }

  /**
   * Passive open from a SYN-cookie ACK: the connection starts ESTABLISHED (onEstablished is
   * called); then pass the same ACK to input() to process its data.
   */
  static fromCookie(
    host: TcpHost, tuple: TcpTuple, opts: Partial<TcpOptions> | undefined, ack: TcpSegmentIn, info: SynCookieInfo, now: number,
    user: unknown = null,
  ): TcpConnection {
    const o = { ...(opts ?? {}) };
    const c = new TcpConnection(host, tuple, o, null, user);
    c.passive = true;
    c.tsOffset = info.tsOffset;
    c.initSend(info.iss);
    c.sndUna = c.sndNxt = c.sndMax = seqAdd(info.iss, 1);
    c.sbufStart = c.sbufEnd = c.sndUna;
    c.irs = info.irs;
    c.rcvNxt = seqAdd(info.irs, 1);
    c.tsOk = info.tsOk;
    c.sackOk = info.sackOk;
    if (info.sndWscale >= 0) {
      c.wsAgreed = true;
      c.sndWscale = info.sndWscale;
      c.rcvWscale = wscaleFor(c.opts.rcvBuf);
    }
    c.peerMss = info.mss;
    c.setSndMss();
    if (c.tsOk) { c.tsRecent = info.tsRecent; c.tsRecentAge = now; }
    // Our TSvals continue from the SYN-ACK's (echoed in the ACK): never behind it (RFC 7323 5.4).
    if (c.tsOk && ack.hasTs && seqLt(c.tsNow(now), ack.tsEcr)) c.tsOffset = (c.tsOffset + ((ack.tsEcr - c.tsNow(now)) >>> 0)) >>> 0;
    c.sndWnd = ack.window << c.sndWscale;
    c.maxSndWnd = c.sndWnd;
    c.sndWl1 = ack.seq;
    c.sndWl2 = ack.ack;
    c.rcvAdv = seqAdd(c.rcvNxt, Math.min(c.opts.rcvBuf, 65535));
    c.lastAckSent = c.rcvNxt;
    c.state = TcpState.Established;
    c.lastRecv = now;
    c.established(now);
    return c;
  }

  /**
   * Processes a received segment of this connection's 4-tuple. Returns Drop.None when the
   * segment was used, else the reason it was dropped (an ACK or RST may have been sent).
   */
  input(seg: TcpSegmentIn, now: number): Drop {
    this.stats.segsIn++;
    const flags = seg.flags;
    // SYN with RST or FIN is nonsense, dropped; except SYN-SENT, where RFC 9293 3.10.7.3 checks
    // the ACK, then RST, before SYN: SYN+RST+ACK with an acceptable ACK resets (as Linux).
    if ((flags & TH_SYN) && (flags & (TH_RST | TH_FIN)) && !(this.state === TcpState.SynSent && (flags & TH_RST))) return Drop.TcpBadFlags;
    let r: Drop;
    switch (this.state) {
      case TcpState.Closed:
      case TcpState.Listen:
        return Drop.TcpClosed;
      case TcpState.SynSent:
        r = this.inputSynSent(seg, now);
        break;
      default:
        r = this.inputSynced(seg, now);
        break;
    }
    if (!this.isClosed()) {
      this.output(now);
      this.arm();
    }
    return r;
  }

  /** Queues data; returns how many bytes were accepted (0 when the buffer is full or after shutdown). */
  write(b: Uint8Array, off: number, len: number, now?: number): number {
    if (this.finQueued || this.state === TcpState.Closed || this.state === TcpState.TimeWait || this.state === TcpState.Listen) return 0;
    const room = this.writableBytes;
    const n = Math.min(room, len);
    if (n < len) this.writeBlocked = true;
    if (n <= 0) return 0;
    const used = (this.sbufEnd - this.sbufStart) >>> 0;
    if (used + n > this.sbuf.length) this.growSend(used + n);
    const pos = this.sbufEnd & this.sMask;
    const first = Math.min(n, this.sbuf.length - pos);
    this.sbuf.set(b.subarray(off, off + first), pos);
    if (first < n) this.sbuf.set(b.subarray(off + first, off + n), 0);
    this.sbufEnd = seqAdd(this.sbufEnd, n);
    if (now !== undefined && this.canSendData()) {
      this.output(now);
      this.arm();
    }
    return n;
  }

  /** Sends what write() queued (when write was called without `now`). */
  flush(now: number): void {
    if (this.state === TcpState.Closed) return;
    this.output(now);
    this.arm();
  }

  /**
   * Sends an ACK now with the current receive state (the host coalesces the ACKs of one receive
   * burst into one, as GRO does for a kernel receiver, and calls this at the end of the burst).
   */
  ackNow(now: number): void {
    if (this.state === TcpState.Closed || this.state === TcpState.SynSent || this.state === TcpState.Listen) return;
    this.sendAck(now);
    this.arm();
  }

  /** The application consumed `n` delivered bytes: the window opens (a window update may be sent). */
  consumed(n: number, now: number): void {
    this.unread = Math.max(0, this.unread - n);
    if (this.state === TcpState.Closed || this.state === TcpState.SynSent || this.state === TcpState.SynReceived) return;
    if (this.finRcvd) return;
    // Window update only when the read freed a lot: the right edge moves by at least
    // min(2 MSS, half the buffer) (RFC 9293 3.8.6.2.2) and the new window is at least twice what is
    // still advertised (as Linux does). While data flows, the every-second-segment ACKs carry the
    // window; a pure update is only worth a segment when the advertised window ran low.
    const wnd = this.rcvCap - this.unread;
    const adv = (this.rcvAdv - this.rcvNxt) | 0;
    if (wnd - adv >= Math.min(2 * this.sndMss, this.rcvCap >>> 1) && wnd >= 2 * adv) {
      this.sendAck(now);
      this.arm();
    }
  }

  /** Half-close: FIN after the queued data. */
  shutdown(now: number): void {
    switch (this.state) {
      case TcpState.Closed:
      case TcpState.Listen:
        return;
      case TcpState.SynSent:
        this.finQueued = true; // sent once established
        return;
      default:
        if (this.finQueued) return;
        this.finQueued = true;
        if (this.state === TcpState.Established || this.state === TcpState.SynReceived) {
          if (this.state === TcpState.Established) this.state = TcpState.FinWait1;
        } else if (this.state === TcpState.CloseWait) {
          this.state = TcpState.LastAck;
        }
        this.output(now);
        this.arm();
    }
  }

  /** shutdown() and orphan: FIN_WAIT_2 times out; data arriving afterwards is answered with RST. */
  close(now: number): void {
    this.orphan = true;
    if (this.state === TcpState.SynSent) { this.toClosed(null); return; }
    // Unread data at close: abort (RFC 9293 3.10.4 / RFC 2525 2.17).
    if (this.unread > 0 || this.oooN > 0) { this.abort(now); return; }
    this.shutdown(now);
  }

  /** Sends RST (in synchronized states) and closes at once (onClosed with ECONNABORTED is not called: the application asked). */
  /**
   * A hard error from the network (an ICMP port or protocol unreachable during the handshake,
   * RFC 1122 4.2.3.9): the connection ends without a RST and reports `err`.
   */
  fail(err: TcpError): void {
    if (this.state === TcpState.Closed) return;
    this.toClosed(err);
  }

  /**
   * The last soft error (RFC 1122 4.2.3.9: an ICMP net/host unreachable or time exceeded, or a
   * next hop that never answered address resolution): it MUST NOT abort the connection, and SHOULD
   * be made available to the application: it is the error the connection ends
   * with when it times out, instead of ETIMEDOUT, as Linux reports sk_err_soft. Cleared when an
   * ACK acknowledges new data (the path works again).
   */
  softError: TcpError | null = null;

  /** Notes a soft error (see softError). */
  noteSoftError(err: TcpError): void {
    if (this.state !== TcpState.Closed) this.softError = err;
  }

  /** The error a connection that timed out ends with: its last soft error, else ETIMEDOUT. */
  private timedOut(): TcpError {
    return this.softError ?? 'ETIMEDOUT';
  }

  abort(now: number): void {
    if (this.state === TcpState.Closed) return;
    if (this.state !== TcpState.SynSent && this.state !== TcpState.TimeWait && this.state !== TcpState.Listen) {
      this.emit(now, this.acceptableSeq(), TH_RST | TH_ACK, null, 0, 0);
    }
    this.closedReported = true;
    this.toClosed(null);
  }

  setNoDelay(on: boolean): void {
    this.opts.noDelay = on;
  }

  setKeepAlive(on: boolean, idleUs: number | undefined, now: number): void {
    this.opts.keepAlive = on;
    if (idleUs !== undefined && idleUs > 0) this.opts.keepIdleUs = idleUs;
    this.keepProbes = 0;
    this.tKeep = on && this.state === TcpState.Established ? now + this.opts.keepIdleUs : Infinity;
    this.arm();
  }

  /** Path MTU changed (ICMP fragmentation needed): MSS for the IP payload. */
  setMss(mss: number): void {
    if (mss >= 88 && mss < this.peerMss) {
      this.peerMss = mss;
      this.setSndMss();
    }
  }

  /** Whether a SYN for this TIME_WAIT tuple may start a new connection (RFC 6191 / RFC 9293 3.10.7.4). */
  timeWaitAcceptsSyn(syn: TcpSegmentIn): boolean {
    if (this.state !== TcpState.TimeWait) return false;
    if (this.tsOk && syn.hasTs) return seqGt(syn.tsVal, this.tsRecent);
    return seqGt(syn.seq, this.rcvNxt);
  }

  /** Timer callback: call when the deadline given to host.setTimer has passed. */
  onTimer(now: number): void {
    this.armed = Infinity;
    if (this.state === TcpState.Closed) return;
    if (now >= this.tLinger) {
      this.tLinger = Infinity;
      if (this.state === TcpState.TimeWait || this.state === TcpState.FinWait2) {
        this.toClosed(null);
        return;
      }
    }
    if (now >= this.tDelack) {
      this.tDelack = Infinity;
      if (this.ackPending > 0) this.sendAck(now);
    }
    if (now >= this.tRtx) {
      this.tRtx = Infinity;
      if (this.persist) this.onPersist(now);
      else this.onRto(now);
      if (this.isClosed()) return;
    }
    if (now >= this.tKeep) {
      this.tKeep = Infinity;
      this.onKeepalive(now);
      if (this.isClosed()) return;
    }
    this.arm();
  }

  // =================================================================== setup helpers

  private initSend(iss: number): void {
    this.iss = iss;
    this.sndUna = this.sndNxt = this.sndMax = iss;
    this.sbufStart = this.sbufEnd = seqAdd(iss, 1);
    this.highRxt = iss;
    this.recoverSeq = iss;
  }

  private negotiate(syn: TcpSegmentIn): void {
    const o = this.opts;
    this.wsAgreed = o.windowScale && syn.wscale >= 0;
    if (this.wsAgreed) {
      this.sndWscale = Math.min(syn.wscale, 14);
      this.rcvWscale = wscaleFor(o.rcvBuf);
    } else {
      this.sndWscale = 0;
      this.rcvWscale = 0;
    }
    this.tsOk = o.timestamps && syn.hasTs;
    this.sackOk = o.sack && syn.sackOk;
    // No MSS option (or a zero one, which Linux ignores too): 536 for IPv4, 1220 for IPv6 (RFC 9293
    // 3.7.1, MUST-15).
    this.peerMss = syn.mss > 0 ? syn.mss : defaultPeerMss(this.tuple.remoteAddr);
    this.setSndMss();
  }

  /**
   * Grows the send ring (powers of two, from 4 KiB up to sCap) to hold `need` bytes, moving the
   * queued bytes to their positions in the larger ring. Small writers never pay for a big buffer.
   */
  private growSend(need: number): void {
    let cap = Math.max(4096, this.sbuf.length);
    while (cap < need && cap < this.sCap) cap *= 2;
    if (cap > this.sCap) cap = this.sCap;
    if (cap === this.sbuf.length) return;
    const nb = takeRing(cap);
    const nmask = cap - 1;
    const used = (this.sbufEnd - this.sbufStart) >>> 0;
    if (used > 0) {
      const old = this.sbuf;
      let seq = this.sbufStart;
      let left = used;
      while (left > 0) {
        const from = seq & this.sMask;
        const to = seq & nmask;
        const n = Math.min(left, old.length - from, cap - to);
        nb.set(old.subarray(from, from + n), to);
        seq = seqAdd(seq, n);
        left -= n;
      }
    }
    giveRing(this.sbuf);
    this.sbuf = nb;
    this.sMask = nmask;
  }

  /** Emits a data segment from the send ring; one that wraps the ring's end goes through a scratch copy. */
  private emitData(now: number, seq: number, flags: number, pos: number, len: number): void {
    const ring = this.sbuf;
    if (pos + len <= ring.length) {
      this.emit(now, seq, flags, ring, pos, len);
      return;
    }
    const first = ring.length - pos;
    WRAP_SCRATCH.set(ring.subarray(pos, ring.length), 0);
    WRAP_SCRATCH.set(ring.subarray(0, len - first), first);
    this.emit(now, seq, flags, WRAP_SCRATCH, 0, len);
  }

  /** SACK blocks that fit in one segment's options next to a timestamp (3) or without one (4). */
  private maxSackBlocks(): number {
    return this.tsOk ? 3 : 4;
  }

  /**
   * Payload bytes a data segment may carry now: the send MSS less the room of the SACK blocks it will
   * carry (RFC 6691: options come out of the MSS), so data + options never exceed the path.
   */
  private dataMss(): number {
    const blocks = this.oooN + (this.dsackPending ? 1 : 0);
    if (!this.sackOk || blocks === 0) return this.sndMss;
    return Math.max(64, this.sndMss - (4 + 8 * Math.min(blocks, this.maxSackBlocks())));
  }

  private setSndMss(): void {
    this.sndMss = Math.max(64, Math.min(this.peerMss, this.opts.mss) - (this.tsOk ? 12 : 0));
    if (this.state === TcpState.Closed || this.state === TcpState.SynSent || this.state === TcpState.SynReceived) {
      this.cc.cwnd = this.opts.initialCwnd * this.sndMss;
    }
  }

  private established(now: number): void {
    this.cc.cwnd = this.opts.initialCwnd * this.sndMss;
    if (this.retries > 0) {
      // Our SYN or SYN-ACK was retransmitted by its timer: "If the SYN or SYN/ACK is lost, the
      // initial window used by a sender after a correctly transmitted SYN MUST be one segment"
      // (RFC 5681 3.1), and with an RTO under 3 s and no RTT sample (Karn), "the RTO MUST be
      // re-initialized to 3 seconds when data transmission begins" (RFC 6298 5.7; Linux too).
      this.cc.cwnd = this.sndMss;
      if (this.srtt === 0 && this.rto < 3_000_000) this.rto = Math.min(3_000_000, this.opts.rtoMaxUs);
    }
    this.tRtx = Infinity;
    this.backoff = 0;
    this.retries = 0;
    if (this.opts.keepAlive) this.tKeep = now + this.opts.keepIdleUs;
    this.host.onEstablished(this);
  }

  // =================================================================== input

  private inputSynSent(seg: TcpSegmentIn, now: number): Drop {
    const f = seg.flags;
    if (f & TH_ACK) {
      if (seqLeq(seg.ack, this.iss) || seqGt(seg.ack, this.sndMax)) {
        if (!(f & TH_RST)) this.emit(now, seg.ack, TH_RST, null, 0, 0, true);
        return Drop.TcpBadAck;
      }
    }
    if (f & TH_RST) {
      if (!(f & TH_ACK)) return Drop.TcpBadAck;
      this.mib.inRsts++;
      this.toClosed('ECONNREFUSED');
      return Drop.None;
    }
    if (!(f & TH_SYN)) return Drop.TcpNoAck;
    this.irs = seg.seq;
    this.rcvNxt = seqAdd(seg.seq, 1);
    this.rcvAdv = seqAdd(this.rcvNxt, Math.min(this.rcvCap - this.unread, 65535));
    this.lastAckSent = this.rcvNxt;
    this.negotiate(seg);
    if (this.tsOk) { this.tsRecent = seg.tsVal; this.tsRecentAge = now; }
    this.lastRecv = now;
    if (f & TH_ACK) {
      // RTT from the SYN exchange (Karn: only when the SYN was not retransmitted, also with
      // timestamps: the SYN-ACK may echo the first of several SYNs).
      if (this.backoff === 0) {
        if (this.tsOk && seg.tsEcr !== 0) this.rttSample(now, (this.tsNow(now) - seg.tsEcr) >>> 0, true);
        else if (this.rttTime >= 0) this.rttSample(now, now - this.rttTime, false);
      }
      this.rttTime = -1;
      this.sndUna = seg.ack;
      this.sndWnd = seg.window; // a SYN-ACK's window is never scaled (RFC 7323 2.2)
      this.maxSndWnd = this.sndWnd;
      this.sndWl1 = seg.seq;
      this.sndWl2 = seg.ack;
      this.state = TcpState.Established;
      this.sendAck(now);
      this.established(now);
      if (this.state !== TcpState.Established) return Drop.None;
      if (this.finQueued) this.state = TcpState.FinWait1;
      if (seg.payloadLen > 0 || (f & TH_FIN)) this.processData(seg, seqAdd(seg.seq, 1), now);
      return Drop.None;
    }
    // Simultaneous open (RFC 9293 3.5 figure 8).
    this.sndWnd = seg.window;
    this.maxSndWnd = this.sndWnd;
    this.sndWl1 = seg.seq;
    this.sndWl2 = this.iss;
    this.state = TcpState.SynReceived;
    this.sendSyn(now, true);
    this.tRtx = now + this.rto;
    return Drop.None;
  }

  private inputSynced(seg: TcpSegmentIn, now: number): Drop {
    const f = seg.flags;
    const st = this.state;
    // Retransmitted SYN while in SYN_RECEIVED: resend SYN-ACK.
    if (st === TcpState.SynReceived && (f & TH_SYN) && !(f & TH_ACK) && seg.seq === this.irs) {
      // Echo the newest SYN (RFC 7323 4.3), not the first one, or the peer's RTT sample spans its
      // SYN timeouts.
      if (this.tsOk && seg.hasTs && seqGeq(seg.tsVal, this.tsRecent)) { this.tsRecent = seg.tsVal; this.tsRecentAge = now; }
      this.countRetransmit(0);
      this.sendSyn(now, true);
      return Drop.None;
    }
    let segLen = seg.payloadLen;
    if (f & TH_SYN) segLen++;
    if (f & TH_FIN) segLen++;

    // PAWS (RFC 7323 5.3).
    if (this.tsOk && seg.hasTs && !(f & TH_RST) && seqLt(seg.tsVal, this.tsRecent)) {
      if (segLen === 0 && seg.seq === this.rcvNxt && (f & TH_ACK) && seqLeq(seg.ack, this.sndMax)) {
        // A reordered pure ACK carries no data to protect: use it without touching TS.Recent (as Linux).
      } else if (now - this.tsRecentAge > TS_STALE_US) {
        this.tsRecent = seg.tsVal; // stale TS.Recent: accept
      } else {
        this.stats.pawsDrops++;
        this.sendAck(now);
        return Drop.TcpPaws;
      }
    }

    // Sequence acceptability (RFC 9293 3.10.7.4).
    const wnd = Math.max(0, (this.rcvAdv - this.rcvNxt) | 0);
    let ok: boolean;
    if (segLen === 0) {
      ok = wnd === 0 ? seg.seq === this.rcvNxt : seqGeq(seg.seq, this.rcvNxt) && seqLt(seg.seq, seqAdd(this.rcvNxt, wnd));
    } else if (wnd === 0) {
      ok = false;
    } else {
      const last = seqAdd(seg.seq, segLen - 1);
      ok = (seqGeq(seg.seq, this.rcvNxt) && seqLt(seg.seq, seqAdd(this.rcvNxt, wnd))) ||
        (seqGeq(last, this.rcvNxt) && seqLt(last, seqAdd(this.rcvNxt, wnd)));
    }
    // A zero-window probe or keepalive (one byte or none below RCV.NXT) must still be ACKed: it is.
    if (!ok) {
      if (f & TH_RST) return Drop.TcpOutOfWindow;
      this.stats.outOfWindowDrops++;
      // RFC 9293 3.10.7.4: "If the RCV.WND is zero, no segments will be acceptable, but special
      // allowance should be made to accept valid ACKs": a segment at RCV.NXT (data beyond the closed
      // window, a probe with data) still acknowledges our data and updates the send window (as
      // Linux's tcp_sequence). Ignoring it deadlocks two senders that both wait for an ACK.
      if (wnd === 0 && (f & TH_ACK) && !(f & TH_SYN) && st !== TcpState.SynReceived && st !== TcpState.TimeWait &&
        seqLeq(seg.seq, this.rcvNxt) && seqGeq(seqAdd(seg.seq, segLen), this.rcvNxt)) {
        this.lastRecv = now;
        this.keepProbes = 0;
        const r = this.processAck(seg, now);
        if (r !== Drop.None || this.isClosed()) return r;
      }
      if (st === TcpState.TimeWait && (f & TH_FIN)) this.tLinger = now + this.opts.timeWaitUs;
      // An old duplicate (typically a spurious retransmission): tell the sender (D-SACK).
      if (seg.payloadLen > 0 && seqLt(seg.seq, this.rcvNxt) && st !== TcpState.TimeWait) {
        this.noteDuplicate(seg.seq, seqMin(seqAdd(seg.seq, seg.payloadLen), this.rcvNxt));
      }
      // Window probes with data at RCV.NXT when the window is 0 are answered too.
      this.sendAck(now);
      return Drop.TcpOutOfWindow;
    }

    // RST (RFC 5961 3.2).
    if (f & TH_RST) {
      if (seg.seq !== this.rcvNxt) {
        this.challengeAck(now);
        return Drop.TcpChallenged;
      }
      if (st === TcpState.TimeWait) return Drop.None; // RFC 1337
      this.mib.inRsts++;
      if (st === TcpState.SynReceived && this.passive) {
        this.closedReported = true; // never reached the application
        this.toClosed(null);
      } else if (st === TcpState.SynReceived) {
        this.toClosed('ECONNREFUSED');
      } else if (st === TcpState.Closing || st === TcpState.LastAck) {
        this.toClosed(null);
      } else {
        this.toClosed('ECONNRESET');
      }
      return Drop.None;
    }

    // SYN in a synchronized state (RFC 5961 4.2): challenge ACK.
    if (f & TH_SYN) {
      this.challengeAck(now);
      return Drop.TcpChallenged;
    }

    if (!(f & TH_ACK)) return Drop.TcpNoAck;

    this.lastRecv = now;
    this.keepProbes = 0;
    if (this.opts.keepAlive && (st === TcpState.Established || st === TcpState.CloseWait)) this.tKeep = now + this.opts.keepIdleUs;

    // Timestamp bookkeeping (RFC 7323 4.3).
    if (this.tsOk && seg.hasTs && seqLeq(seg.seq, this.lastAckSent) && seqGeq(seg.tsVal, this.tsRecent)) {
      this.tsRecent = seg.tsVal;
      this.tsRecentAge = now;
    }

    if (st === TcpState.SynReceived) {
      if (!(seqGt(seg.ack, this.sndUna) && seqLeq(seg.ack, this.sndMax))) {
        this.emit(now, seg.ack, TH_RST, null, 0, 0, true);
        return Drop.TcpBadAck;
      }
      this.sndWnd = seg.window << this.sndWscale;
      this.maxSndWnd = Math.max(this.maxSndWnd, this.sndWnd);
      this.sndWl1 = seg.seq;
      this.sndWl2 = seg.ack;
      this.state = this.finQueued ? TcpState.FinWait1 : TcpState.Established;
      if (this.backoff === 0) { // Karn, as for the SYN-ACK
        if (this.tsOk && seg.hasTs && seg.tsEcr !== 0) this.rttSample(now, (this.tsNow(now) - seg.tsEcr) >>> 0, true);
        else if (this.rttTime >= 0) this.rttSample(now, now - this.rttTime, false);
      }
      this.rttTime = -1;
      this.handshakeSampled = true; // processAck's new-ACK path must not sample the same ACK again
      this.established(now);
      if (this.isClosed()) return Drop.None;
    }

    const r = this.processAck(seg, now);
    this.handshakeSampled = false;
    if (r !== Drop.None) return r;
    if (this.state === TcpState.Closed || this.state === TcpState.TimeWait && !(f & TH_FIN)) return Drop.None;

    if (seg.payloadLen > 0 || (f & TH_FIN)) this.processData(seg, seg.seq, now);
    return Drop.None;
  }

  private challengeAck(now: number): void {
    if (now - this.chalStart >= 1_000_000) { this.chalStart = now; this.chalCount = 0; }
    if (this.chalCount >= this.opts.challengeAckLimit) return;
    this.chalCount++;
    this.stats.challengeAcks++;
    this.sendAck(now);
  }

  /** ACK field processing (RFC 9293 3.10.7.4 fifth step, RFC 5961 5.2). */
  private processAck(seg: TcpSegmentIn, now: number): Drop {
    const ack = seg.ack;
    if (seqGt(ack, this.sndMax)) {
      this.challengeAck(now);
      return Drop.TcpBadAck;
    }
    if (seqLt(ack, seqAdd(this.sndUna, -Math.max(this.maxSndWnd, 1) >>> 0)) && seqLt(ack, this.sndUna)) {
      this.challengeAck(now);
      return Drop.TcpBadAck;
    }
    const oldWnd = this.sndWnd;
    // Window update: "If SND.UNA =< SEG.ACK =< SND.NXT, the send window should be updated" (RFC 9293
    // 3.10.7.4), when the segment is newer than the last update (WL1/WL2). An old ACK (below
    // SND.UNA) carries a stale window: its data is still taken, its window is not.
    if (seqGeq(ack, this.sndUna) && (seqLt(this.sndWl1, seg.seq) || (this.sndWl1 === seg.seq && seqLeq(this.sndWl2, ack)))) {
      this.sndWnd = seg.window << this.sndWscale;
      if (this.sndWnd > this.maxSndWnd) this.maxSndWnd = this.sndWnd;
      this.sndWl1 = seg.seq;
      this.sndWl2 = ack;
    }
    let newlySacked = false;
    if (this.sackOk && seg.sackCount > 0) {
      const before = this.sackedAbove(this.sndUna);
      this.sbUpdate(seg);
      newlySacked = this.sackedAbove(this.sndUna) > before;
    }

    if (seqGt(ack, this.sndUna)) {
      this.onNewAck(seg, ack, now);
    } else if (ack === this.sndUna) {
      // Duplicate ACK (RFC 5681 section 2). With SACK, an ACK that SACKs new octets is one too,
      // even when it carries data or changes the window (RFC 6675 section 2): a Linux receiver's
      // window grows with nearly every ACK, so the RFC 5681 rule alone never saw three of them.
      if (this.sndMax !== this.sndUna && (newlySacked ||
        (seg.payloadLen === 0 && !(seg.flags & (TH_SYN | TH_FIN)) && this.sndWnd === oldWnd))) {
        this.stats.dupAcksIn++;
        this.dupAcks++;
        this.onDupAck(now);
      }
    }
    // The peer answers probes, or answers our retransmissions into its closed window (they act as
    // probes, as in Linux's tcp_retransmit_timer): keep the connection open. "As long as the
    // receiving TCP continues to send acknowledgments in response to the probe segments, the
    // sending TCP MUST allow the connection to stay open" (RFC 1122 4.2.2.17, RFC 9293 3.8.6.1).
    if (this.persist || this.sndWnd === 0) this.retries = 0;
    if (this.sndWnd > 0 && this.persist) {
      this.persist = false;
      this.tRtx = Infinity;
      this.backoff = 0;
    }
    if (this.sndWnd > 0 && this.rtoInZeroWnd) {
      // The window opens after our retransmission timeouts went into a closed window: the backoff
      // measured the closed window, not the path, and what we sent into it was dropped. As when a
      // persist period ends (and as Linux's loss recovery after such timeouts), resend the first
      // unacknowledged segment now and restart the timer without the backoff (RFC 6298 5.5 backs
      // off for lost segments, not for a receiver that was only full).
      this.rtoInZeroWnd = false;
      if (this.sndUna !== this.sndMax) {
        this.backoff = 0;
        this.retransmitAt(this.sndUna, now);
        this.tRtx = now + this.rto;
      }
    }
    return Drop.None;
  }

  private onNewAck(seg: TcpSegmentIn, ack: number, now: number): void {
    // Bytes newly acknowledged; the SYN's sequence number (the ACK completing a passive open) is
    // no data and grows no window (RFC 5681 3.1 counts "new data" acknowledged).
    const acked = ((ack - this.sndUna) >>> 0) - (this.sndUna === this.iss ? 1 : 0);
    // RTT (Karn / timestamps).
    if (this.handshakeSampled) {
      this.handshakeSampled = false;
    } else if (this.tsOk && seg.hasTs && seg.tsEcr !== 0) {
      // After a timeout, an echo older than the retransmission only says how long the ACKs were
      // lost (the peer echoes the last segment that advanced its RCV.NXT): no sample (Karn, RFC 6298
      // 5). Taking it would inflate the RTO, which then lengthens the next outage.
      if (this.rtoTsVal < 0 || !seqLt(seg.tsEcr, this.rtoTsVal)) this.rttSample(now, (this.tsNow(now) - seg.tsEcr) >>> 0, true);
    } else if (this.rttTime >= 0 && seqGt(ack, this.rttSeq)) {
      this.rttSample(now, now - this.rttTime, false);
      this.rttTime = -1;
    }
    const flightBefore = (this.sndMax - this.sndUna) >>> 0;
    this.sndUna = ack;
    this.softError = null; // new data acknowledged: whatever was unreachable is reachable again
    if (seqLt(this.sndNxt, ack)) this.sndNxt = ack;
    if (seqLt(this.highRxt, ack)) this.highRxt = ack;
    // Free acknowledged bytes from the send buffer.
    if (seqGt(ack, this.sbufStart)) {
      const start = seqMin(ack, this.sbufEnd);
      this.stats.bytesAcked += (start - this.sbufStart) >>> 0;
      this.sbufStart = start;
    }
    if (this.finQueued && !this.finAcked && ack === seqAdd(this.sbufEnd, 1)) this.finAcked = true;
    this.sbTrim();
    this.retries = 0;
    this.backoff = 0;
    this.rtoTsVal = -1;
    this.rtoInZeroWnd = false;
    this.ltBytes = 0;

    if (this.inRecovery) {
      if (seqGeq(ack, this.recoverSeq)) {
        this.inRecovery = false;
        this.dupAcks = 0;
        this.cc.onRecoveryEnd((this.sndMax - this.sndUna) >>> 0, this.sndMss);
      } else if (!this.sackOk) {
        // NewReno partial ACK (RFC 6582 3.2 step 4): retransmit the next hole, deflate.
        this.retransmitAt(this.sndUna, now);
        this.cc.cwnd = Math.max(this.cc.cwnd - acked + (acked >= this.sndMss ? this.sndMss : 0), this.sndMss);
        this.dupAcks = 0;
      }
    } else {
      this.dupAcks = 0;
      // Do not grow cwnd when the sender was application- or window-limited.
      if (acked > 0 && (flightBefore + this.sndMss >= this.cc.cwnd || this.cc.cwnd < this.cc.ssthresh)) {
        this.cc.onAck(acked, now, this.srtt, this.sndMss);
      }
      if (this.cc.cwnd > 0x3fffffff) this.cc.cwnd = 0x3fffffff;
    }
    // Restart or stop the retransmission timer (RFC 6298 5.2, 5.3).
    if (this.sndMax === this.sndUna) this.tRtx = Infinity;
    else this.tRtx = now + this.rto;
    this.persist = false;

    // State changes on the ACK of our FIN.
    if (this.finAcked) {
      switch (this.state) {
        case TcpState.FinWait1:
          this.state = TcpState.FinWait2;
          if (this.orphan) this.tLinger = now + this.opts.finWait2TimeoutUs;
          break;
        case TcpState.Closing:
          this.enterTimeWait(now);
          this.reportClosed(null);
          break;
        case TcpState.LastAck:
          this.toClosed(null);
          return;
        default:
          break;
      }
    }
    if (this.writeBlocked && this.writableBytes > 0) {
      this.writeBlocked = false;
      this.host.onWritable(this);
    }
  }

  /**
   * Early retransmit (RFC 5827): with fewer than four segments outstanding and no new segment
   * allowed out, three duplicate ACKs can never arrive; oseg - 1 of them are enough then.
   */
  private earlyRetransmitThresh(): number {
    const flight = (this.sndMax - this.sndUna) >>> 0;
    const oseg = Math.ceil(flight / this.sndMss);
    if (oseg < 2 || oseg >= 4) return Infinity;
    const canSendNew = seqLt(this.sndNxt, this.sbufEnd) && flight + this.sndMss <= Math.min(this.cc.cwnd, this.sndWnd);
    return canSendNew ? Infinity : oseg - 1;
  }

  private onDupAck(now: number): void {
    if (this.inRecovery) {
      if (!this.sackOk) this.cc.cwnd += this.sndMss; // NewReno inflation
      return;
    }
    const lost = this.sackOk && this.sbN > 0 && this.sackedAbove(this.sndUna) > (DUP_THRESH - 1) * this.sndMss;
    if (this.dupAcks < DUP_THRESH && !lost && this.dupAcks < this.earlyRetransmitThresh()) return;
    // Fast retransmit (RFC 5681 3.2 / RFC 6675 5).
    if (!this.sackOk && seqLt(this.sndUna, this.recoverSeq)) {
      return; // RFC 6582 4.1: no new recovery for losses of the previous window
    }
    // RFC 5681 3.2 (2): "When [RFC3042] is in use, additional data sent in limited transmit MUST
    // NOT be included in this calculation" (of ssthresh from FlightSize).
    const flight = Math.max(((this.sndMax - this.sndUna) >>> 0) - this.ltBytes, 0);
    this.ltBytes = 0;
    this.inRecovery = true;
    this.recoverSeq = this.sndMax;
    this.cc.onLoss(now, flight, this.sndMss);
    this.stats.fastRetransmits++;
    if (this.sackOk) {
      this.stats.sackRecoveries++;
      this.highRxt = this.sndUna;
      this.rttTime = -1;
      const len = this.holeLenAt(this.sndUna);
      this.retransmitAt(this.sndUna, now, len);
    } else {
      this.retransmitAt(this.sndUna, now);
      this.cc.cwnd = this.cc.ssthresh + DUP_THRESH * this.sndMss;
    }
    this.tRtx = now + this.rto;
  }

  /** In-order and out-of-order data, then FIN (RFC 9293 3.10.7.4 seventh and eighth steps). `seq` = sequence of the first payload byte. */
  private processData(seg: TcpSegmentIn, seq: number, now: number): void {
    const st = this.state;
    if (st !== TcpState.Established && st !== TcpState.FinWait1 && st !== TcpState.FinWait2 && st !== TcpState.SynReceived) {
      // Data or FIN after the peer's FIN: only a retransmitted FIN needs an ACK.
      if (st === TcpState.TimeWait) this.tLinger = now + this.opts.timeWaitUs;
      this.sendAck(now);
      return;
    }
    if (this.orphan && this.finQueued && seqGt(seqAdd(seq, seg.payloadLen), this.rcvNxt)) {
      // New data for a closed application: reset (RFC 1122 4.2.2.13, RFC 2525 2.17). Only bytes
      // beyond RCV.NXT count (as Linux's tcp_rcv_state_process): a retransmission of data already
      // received that brings only the peer's FIN is a normal close, not lost data.
      this.emit(now, this.acceptableSeq(), TH_RST | TH_ACK, null, 0, 0);
      this.closedReported = true;
      this.toClosed(null);
      return;
    }
    let off = seg.payloadOff;
    let len = seg.payloadLen;
    let s = seq;
    let fin = (seg.flags & TH_FIN) !== 0;
    // Trim what precedes RCV.NXT.
    if (seqLt(s, this.rcvNxt)) {
      const d = (this.rcvNxt - s) >>> 0;
      if (len > 0) this.noteDuplicate(s, seqAdd(s, Math.min(d, len)));
      if (d >= len) { len = 0; off += seg.payloadLen; }
      else { off += d; len -= d; }
      s = this.rcvNxt;
    }
    // Trim to the window right edge.
    const right = seqMax(this.rcvAdv, this.rcvNxt);
    const room = (right - s) >>> 0;
    let immediate = false;
    if (len > room) { len = room; fin = false; immediate = true; } // beyond the window: ACK at once
    if (fin) {
      this.finPending = true;
      this.finSeq = seqAdd(s, len);
    }
    if (len > 0) {
      this.stats.bytesIn += len;
      if (s === this.rcvNxt) {
        this.rcvNxt = seqAdd(this.rcvNxt, len);
        const hadOoo = this.oooN > 0;
        this.deliver(seg.buf, off, len, seg);
        if (hadOoo) { this.drainOoo(); immediate = true; }
      } else {
        this.stats.oooSegments++;
        this.noteOooDuplicate(s, seqAdd(s, len));
        this.oooInsert(seg.buf, off, s, len);
        immediate = true; // out of order: dup ACK with SACK at once (RFC 5681 4.2)
      }
    } else if (seg.payloadLen > 0) {
      immediate = true; // duplicate data: ACK at once
    }
    if (this.state === TcpState.Closed) return;
    if (this.finPending && this.rcvNxt === this.finSeq && !this.finRcvd) {
      this.finRcvd = true;
      this.finPending = false;
      this.rcvNxt = seqAdd(this.rcvNxt, 1);
      const passive = this.state === TcpState.Established || this.state === TcpState.SynReceived;
      if (passive && this.opts.delayedAck && !immediate && this.ackPending === 0) {
        // Passive close: the application usually answers the FIN with its own (or last data) at
        // once, and that segment carries the ACK; the delayed-ACK timer covers the other case.
        // With a segment already waiting for its ACK, this is the second one: ACK now (RFC 9293
        // 3.8.6.3).
        this.ackPending++;
        if (this.tDelack === Infinity) this.tDelack = now + this.opts.ackDelayUs;
      } else this.sendAck(now);
      switch (this.state) {
        case TcpState.SynReceived:
        case TcpState.Established:
          this.state = TcpState.CloseWait;
          this.tKeep = Infinity;
          break;
        case TcpState.FinWait1:
          this.state = TcpState.Closing; // our FIN not acknowledged yet (else we were in FIN_WAIT_2)
          break;
        case TcpState.FinWait2:
          this.enterTimeWait(now);
          break;
        default:
          break;
      }
      this.host.onRemoteClose(this);
      if (this.state === TcpState.TimeWait) this.reportClosed(null);
      return;
    }
    if (len === 0 && !immediate) return;
    this.ackPending++;
    if (immediate || !this.opts.delayedAck || this.ackPending >= 2) this.sendAck(now);
    else if (this.tDelack === Infinity) this.tDelack = now + this.opts.ackDelayUs;
  }

  /** In-order bytes for the application: the received segment's own payload (`seg`), or a copy (null). */
  private deliver(b: Uint8Array, off: number, len: number, seg: TcpSegmentIn | null): void {
    this.unread += len;
    this.stats.bytesReceived += len;
    this.host.onData(this, b, off, len, seg);
  }

  /** A duplicate of data already received: report it in the next ACK (D-SACK, RFC 2883). */
  private noteDuplicate(start: number, end: number): void {
    if (!this.sackOk) return;
    this.dsackStart = start;
    this.dsackEnd = end;
    this.dsackPending = true;
  }

  /** Out-of-order data that falls inside a range already held is a duplicate too (RFC 2883 4.1.2). */
  private noteOooDuplicate(start: number, end: number): void {
    for (let i = 0; i < this.oooN; i++) {
      if (seqGeq(start, this.oooStart[i]!) && seqLeq(end, this.oooEnd[i]!)) {
        this.noteDuplicate(start, end);
        return;
      }
    }
  }

  private oooInsert(b: Uint8Array, off: number, s: number, len: number): void {
    const e = seqAdd(s, len);
    // Copy into the ring (positions are sequence numbers modulo the ring size).
    const mask = this.rcvCap - 1;
    const pos = s & mask;
    const first = Math.min(len, this.rcvCap - pos);
    if (this.rbuf.length === 0) {
      // The stack bounds the memory of all reorder buffers: without one the segment is dropped
      // (not acknowledged, not SACKed) and the peer sends it again.
      if (this.host.reorderMemory && !this.host.reorderMemory(this, this.rcvCap)) {
        this.stats.oooDropped += len;
        return;
      }
      this.rbuf = takeRing(this.rcvCap);
    }
    this.rbuf.set(b.subarray(off, off + first), pos);
    if (first < len) this.rbuf.set(b.subarray(off + first, off + len), 0);
    // Merge into the sorted range list.
    const r = addRange(this.oooStart, this.oooEnd, this.oooN, s, e);
    if (r < 0) {
      this.stats.oooDropped += len;
      return;
    }
    this.oooN = r % RANGE_RADIX;
    this.oooLast = Math.floor(r / RANGE_RADIX);
    this.mib.ofoQueue++;
  }

  /** Delivers out-of-order ranges that became contiguous with RCV.NXT. */
  private drainOoo(): void {
    const mask = this.rcvCap - 1;
    let k = 0;
    while (k < this.oooN && seqLeq(this.oooStart[k]!, this.rcvNxt)) {
      const end = this.oooEnd[k]!;
      if (seqGt(end, this.rcvNxt)) {
        let len = (end - this.rcvNxt) >>> 0;
        let pos = this.rcvNxt & mask;
        this.rcvNxt = end;
        while (len > 0) {
          const c = Math.min(len, this.rcvCap - pos);
          this.deliver(this.rbuf, pos, c, null);
          len -= c;
          pos = 0;
        }
      }
      k++;
    }
    if (k > 0) {
      for (let i = k; i < this.oooN; i++) { this.oooStart[i - k] = this.oooStart[i]!; this.oooEnd[i - k] = this.oooEnd[i]!; }
      this.oooN -= k;
      this.oooLast = -1;
      if (this.oooN === 0) this.freeReorder(); // all delivered: the buffer goes back until needed again
    }
  }

  /** Gives the reorder buffer back (to the ring pool and the stack's reorder memory budget). */
  private freeReorder(): void {
    if (this.rbuf.length === 0) return;
    this.host.reorderMemory?.(this, -this.rbuf.length);
    this.rbuf = giveRing(this.rbuf);
  }

  // =================================================================== SACK scoreboard (sender)

  private sbUpdate(seg: TcpSegmentIn): void {
    for (let i = 0; i < seg.sackCount; i++) {
      let s = seg.sackStart[i]!;
      const e = seg.sackEnd[i]!;
      if (!seqLt(s, e)) continue;
      if (seqLt(s, this.sndUna)) s = this.sndUna; // D-SACK or stale part
      if (!seqLt(s, e) || seqGt(e, this.sndMax)) continue;
      this.sbInsert(s, e);
    }
  }

  private sbInsert(s: number, e: number): void {
    const r = addRange(this.sbStart, this.sbEnd, this.sbN, s, e);
    if (r >= 0) this.sbN = r % RANGE_RADIX; // scoreboard full: forget this block (only less precise)
  }

  private sbTrim(): void {
    let k = 0;
    while (k < this.sbN && seqLeq(this.sbEnd[k]!, this.sndUna)) k++;
    if (k > 0) {
      for (let i = k; i < this.sbN; i++) { this.sbStart[i - k] = this.sbStart[i]!; this.sbEnd[i - k] = this.sbEnd[i]!; }
      this.sbN -= k;
    }
    if (this.sbN > 0 && seqLt(this.sbStart[0]!, this.sndUna)) this.sbStart[0] = this.sndUna;
  }

  /** SACKed bytes above sequence `s`. */
  private sackedAbove(s: number): number {
    let n = 0;
    for (let i = this.sbN - 1; i >= 0; i--) {
      const e = this.sbEnd[i]!;
      if (seqLeq(e, s)) break;
      n += (e - seqMax(this.sbStart[i]!, s)) >>> 0;
    }
    return n;
  }

  /** Length of the un-SACKed run starting at `s` (up to SND.MAX). */
  private holeLenAt(s: number): number {
    for (let i = 0; i < this.sbN; i++) {
      if (seqGt(this.sbStart[i]!, s)) return (this.sbStart[i]! - s) >>> 0;
      if (seqGt(this.sbEnd[i]!, s)) return 0;
    }
    return (this.sndMax - s) >>> 0;
  }

  /** RFC 6675 pipe: bytes believed in the network. */
  private pipe(): number {
    let p = 0;
    let hs = this.sndUna;
    const dupBytes = (DUP_THRESH - 1) * this.sndMss;
    for (let i = 0; i <= this.sbN; i++) {
      const he = i < this.sbN ? this.sbStart[i]! : this.sndMax;
      if (seqLt(hs, he)) {
        const holeLen = (he - hs) >>> 0;
        const rx = seqGt(this.highRxt, hs) ? Math.min((seqMin(this.highRxt, he) - hs) >>> 0, holeLen) : 0;
        const lost = i < this.sbN && this.sackedAbove(he) > dupBytes;
        p += lost ? rx : holeLen + rx;
      }
      if (i < this.sbN) hs = this.sbEnd[i]!;
    }
    return p;
  }

  /** RFC 6675 NextSeg(): sequence and length of the next retransmission, or false. */
  private nextLostSeg(rule3: boolean): boolean {
    const dupBytes = (DUP_THRESH - 1) * this.sndMss;
    let hs = this.sndUna;
    for (let i = 0; i < this.sbN; i++) {
      const he = this.sbStart[i]!;
      let s = seqMax(hs, this.highRxt);
      if (seqLt(s, he) && (rule3 || this.sackedAbove(he) > dupBytes)) {
        this.nsSeq = s;
        this.nsLen = Math.min((he - s) >>> 0, this.sndMss);
        return true;
      }
      hs = this.sbEnd[i]!;
      s = 0;
    }
    return false;
  }
  private nsSeq = 0;
  private nsLen = 0;

  /**
   * RFC 6675 NextSeg (4): when rules (1)-(3) find nothing but unSACKed data is outstanding, once per
   * recovery (HighACK > RescueRxt), up to one SMSS ending at the highest unSACKed sequence number.
   * It repairs a lost tail that no later SACK will ever reveal, without waiting for the RTO.
   */
  private rescueSeg(): boolean {
    if (this.rescueRxt >= 0 && !seqGt(this.sndUna, this.rescueRxt)) return false;
    // The highest hole: above the last SACK block, else just below it.
    let hs: number;
    let he: number;
    if (this.sbN === 0 || seqLt(this.sbEnd[this.sbN - 1]!, this.sndMax)) {
      hs = this.sbN === 0 ? this.sndUna : this.sbEnd[this.sbN - 1]!;
      he = this.sndMax;
    } else {
      hs = this.sbN >= 2 ? this.sbEnd[this.sbN - 2]! : this.sndUna;
      he = this.sbStart[this.sbN - 1]!;
    }
    if (seqLt(hs, this.sndUna)) hs = this.sndUna;
    if (!seqLt(hs, he)) return false;
    const len = Math.min((he - hs) >>> 0, this.sndMss);
    this.nsSeq = seqAdd(hs, ((he - hs) >>> 0) - len);
    this.nsLen = len;
    return true;
  }

  // =================================================================== output

  private canSendData(): boolean {
    const st = this.state;
    return st === TcpState.Established || st === TcpState.CloseWait || st === TcpState.FinWait1 || st === TcpState.Closing || st === TcpState.LastAck;
  }

  /** Sends what the windows allow: new data, FIN, recovery retransmissions; pending ACKs ride along. */
  private output(now: number): void {
    if (!this.canSendData()) {
      if (this.ackPending > 0 && this.tDelack === Infinity) this.sendAck(now);
      return;
    }
    let sent = false;
    if (this.inRecovery && this.sackOk) {
      // RFC 6675 5 (C): send while cwnd - pipe >= 1 SMSS.
      let guard = 0;
      while (guard++ < 1000) {
        const pipe = this.pipe();
        if (this.cc.cwnd - pipe < this.sndMss) break;
        if (this.nextLostSeg(false)) {
          this.retransmitAt(this.nsSeq, now, this.nsLen);
          sent = true;
          continue;
        }
        if (this.sendNew(now, true)) { sent = true; continue; }
        if (this.nextLostSeg(true)) {
          this.retransmitAt(this.nsSeq, now, this.nsLen);
          sent = true;
          continue;
        }
        if (this.rescueSeg()) {
          // RFC 6675 NextSeg (4): one rescue retransmission per recovery, HighRxt unchanged.
          const h = this.highRxt;
          this.retransmitAt(this.nsSeq, now, this.nsLen);
          this.highRxt = h;
          this.rescueRxt = this.recoverSeq;
          this.stats.rescueRetransmits++;
          sent = true;
          continue;
        }
        break;
      }
    } else {
      let guard = 0;
      while (guard++ < 10000 && this.sendNew(now, false)) sent = true;
    }
    // Zero window with data waiting and nothing in flight: persist timer.
    if (this.sndWnd === 0 && this.sndMax === this.sndUna && this.hasUnsent() && this.tRtx === Infinity) {
      this.persist = true;
      this.tRtx = now + this.rtoBackedOff();
    }
    if (!sent && this.ackPending > 0 && this.tDelack === Infinity) this.sendAck(now);
  }

  private hasUnsent(): boolean {
    return seqLt(this.sndNxt, this.sbufEnd) || (this.finQueued && !seqGt(this.sndNxt, this.sbufEnd));
  }

  /** Sends one segment at SND.NXT if allowed; returns whether one was sent. */
  private sendNew(now: number, recovery: boolean): boolean {
    // Skip over SACKed ranges when resending after an RTO (SND.NXT < SND.MAX).
    if (seqLt(this.sndNxt, this.sndMax) && this.sbN > 0) {
      for (let i = 0; i < this.sbN; i++) {
        if (seqLeq(this.sbStart[i]!, this.sndNxt) && seqLt(this.sndNxt, this.sbEnd[i]!)) this.sndNxt = this.sbEnd[i]!;
      }
    }
    const nxt = this.sndNxt;
    const avail = seqLt(nxt, this.sbufEnd) ? (this.sbufEnd - nxt) >>> 0 : 0;
    const finNow = this.finQueued && avail === 0 && nxt === this.sbufEnd;
    if (avail === 0 && !finNow) return false;
    const flight = recovery ? 0 : (this.sndNxt - this.sndUna) >>> 0;
    // Limited Transmit (RFC 3042 2): on the first and second duplicate ACK a new segment may go
    // beyond cwnd, "the amount of outstanding data would remain less than or equal to the
    // congestion window plus 2 segments"; cwnd itself is unchanged. Only new data (below SND.MAX is
    // a go-back-N resend after a timeout), and only outside recovery.
    const lt = !recovery && !this.inRecovery && this.dupAcks > 0 && this.dupAcks < DUP_THRESH && !seqLt(this.sndNxt, this.sndMax)
      ? Math.min(this.dupAcks, 2) * this.sndMss : 0;
    const cwndRoom = recovery ? this.sndMss : this.cc.cwnd + lt - flight;
    const wndRight = seqAdd(this.sndUna, this.sndWnd);
    const wndRoom = seqGt(wndRight, nxt) ? (wndRight - nxt) >>> 0 : 0;
    if (finNow) {
      if (cwndRoom <= 0 && flight > 0) return false;
      this.emit(now, nxt, TH_FIN | TH_ACK, null, 0, 0);
      this.advanceSent(nxt, 1, now);
      return true;
    }
    const isRtx = seqLt(nxt, this.sndMax);
    const pos = nxt & this.sMask;
    // The segment we would like to send: one SMSS, the queued data, the ring's end.
    let want = Math.min(avail, this.dataMss());
    // Cut where a SACKed range resumes (retransmission after RTO).
    if (isRtx && this.sbN > 0) {
      const hole = this.holeLenAt(nxt);
      if (hole > 0) want = Math.min(want, hole);
    }
    if (want <= 0) return false;
    const unacked = this.sndMax !== this.sndUna;
    if (!recovery && cwndRoom < want && flight > 0) return false; // wait for room for a full segment
    let len = want;
    if (wndRoom < want) {
      if (wndRoom === 0) return false;
      // Sender SWS avoidance (RFC 9293 3.8.6.2.1): a small window-limited piece only when it is
      // at least half the largest window seen, or nothing is in flight.
      if (wndRoom < (this.maxSndWnd >>> 1) && unacked) return false;
      len = wndRoom;
    }
    // Nagle (RFC 9293 3.7.4): the last small piece waits while data is unacknowledged.
    if (len < this.dataMss() && len === avail && !this.opts.noDelay && unacked && !isRtx && !this.finQueued) return false;
    let flags = TH_ACK;
    const end = seqAdd(nxt, len);
    if (end === this.sbufEnd) flags |= TH_PSH;
    // Piggyback FIN on the last data segment when the window allows the FIN's sequence.
    if (this.finQueued && end === this.sbufEnd && seqLt(end, seqAdd(wndRight, 1))) {
      flags |= TH_FIN;
    }
    if (isRtx) this.countRetransmit(len);
    else if (lt > 0 && flight + len > this.cc.cwnd) {
      this.ltBytes += Math.min(len, flight + len - Math.max(this.cc.cwnd, flight));
      this.stats.limitedTransmits++;
    }
    this.emitData(now, nxt, flags, pos, len);
    this.advanceSent(nxt, len + (flags & TH_FIN ? 1 : 0), now);
    if (!isRtx) this.stats.bytesOut += len;
    return true;
  }

  private advanceSent(seq: number, n: number, now: number): void {
    const end = seqAdd(seq, n);
    if (seqGt(end, this.sndNxt)) this.sndNxt = end;
    if (seqGt(end, this.sndMax)) {
      if (this.rttTime < 0 && !this.tsOk && seqGeq(seq, this.sndMax)) { this.rttTime = now; this.rttSeq = seq; }
      this.sndMax = end;
    }
    if (this.tRtx === Infinity || this.persist) {
      this.persist = false;
      this.tRtx = now + this.rtoBackedOff();
    }
  }

  /** Retransmits from `seq` (at most `maxLen` bytes, one SMSS by default). */
  private retransmitAt(seq: number, now: number, maxLen = this.sndMss): void {
    if (seqGeq(seq, this.sndMax)) return;
    if (seq === this.iss) { this.countRetransmit(0); this.sendSyn(now, this.state === TcpState.SynReceived); return; }
    if (seq === this.rttSeq) this.rttTime = -1; // Karn
    const avail = seqLt(seq, this.sbufEnd) ? (this.sbufEnd - seq) >>> 0 : 0;
    if (avail === 0) {
      // Only the FIN is outstanding.
      this.countRetransmit(0);
      this.emit(now, seq, TH_FIN | TH_ACK, null, 0, 0);
      if (seqGt(seqAdd(seq, 1), this.highRxt)) this.highRxt = seqAdd(seq, 1);
      return;
    }
    const pos = seq & this.sMask;
    // Never beyond what was sent before (SND.MAX), never more than one SMSS.
    const sent = (seqMin(this.sndMax, this.sbufEnd) - seq) >>> 0;
    const len = Math.min(avail, sent, Math.max(1, Math.min(maxLen, this.dataMss())));
    if (len <= 0) return;
    let flags = TH_ACK;
    const end = seqAdd(seq, len);
    if (end === this.sbufEnd) {
      flags |= TH_PSH;
      if (this.finQueued && seqGt(this.sndMax, end)) flags |= TH_FIN;
    }
    this.countRetransmit(len);
    this.emitData(now, seq, flags, pos, len);
    const rxEnd = seqAdd(end, flags & TH_FIN ? 1 : 0);
    if (seqGt(rxEnd, this.highRxt)) this.highRxt = rxEnd;
  }

  /** One segment (with `len` payload bytes) sent again: the connection's and its group's counts. */
  private countRetransmit(len: number): void {
    this.stats.retransSegs++;
    this.stats.bytesRetrans += len;
    this.mib.retransSegs++;
  }

  private rtoBackedOff(): number {
    return Math.min(this.rto * Math.pow(2, this.backoff), this.opts.rtoMaxUs);
  }

  private onRto(now: number): void {
    const st = this.state;
    this.stats.rtoExpirations++;
    this.mib.timeouts++;
    if (st === TcpState.SynSent || st === TcpState.SynReceived) {
      if (this.retries >= (st === TcpState.SynReceived ? Math.min(this.opts.synRetries, this.synAckRetryLimit) : this.opts.synRetries)) {
        if (st === TcpState.SynReceived && this.passive) this.closedReported = true;
        this.toClosed(this.timedOut());
        return;
      }
      this.retries++;
      this.backoff++;
      this.rttTime = -1;
      this.countRetransmit(0);
      this.sendSyn(now, st === TcpState.SynReceived);
      this.tRtx = now + this.rtoBackedOff();
      return;
    }
    if (this.sndMax === this.sndUna) return;
    if (this.retries >= this.opts.maxRetransmits) {
      this.emit(now, this.acceptableSeq(), TH_RST | TH_ACK, null, 0, 0);
      this.toClosed(this.timedOut());
      return;
    }
    this.retries++;
    if (this.sndWnd === 0) this.rtoInZeroWnd = true;
    // RFC 5681 (4), RFC 6298 5.5-5.7: ssthresh from the flight at the first timeout of a segment;
    // "when a TCP sender detects segment loss using the retransmission timer and the given segment
    // has already been retransmitted by way of the retransmission timer at least once, the value of
    // ssthresh is held constant" (as Linux's tcp_enter_loss): cwnd only goes back to one segment.
    // Recomputing it from a one-segment window brought CUBIC's ssthresh (and W_max) down to 2 SMSS
    // after any outage longer than one RTO.
    const flight = (this.sndMax - this.sndUna) >>> 0;
    if (this.backoff === 0) this.cc.onRto(now, flight, this.sndMss);
    else this.cc.cwnd = this.sndMss;
    this.backoff++;
    this.inRecovery = false;
    this.recoverSeq = this.sndMax;
    this.dupAcks = 0;
    this.ltBytes = 0;
    this.rttTime = -1;
    this.highRxt = this.sndUna;
    this.sndNxt = this.sndUna;
    this.tRtx = now + this.rtoBackedOff();
    if (this.tsOk) this.rtoTsVal = this.tsNow(now);
    // Go back N, skipping SACKed data; the first segment goes out regardless of cwnd.
    this.retransmitAt(this.sndUna, now);
    this.sndNxt = seqMin(this.highRxt, this.sndMax);
    if (seqLt(this.sndNxt, this.sndUna)) this.sndNxt = this.sndUna;
  }

  private onPersist(now: number): void {
    if (this.sndWnd > 0 || !this.hasUnsent()) { this.persist = false; return; }
    if (this.retries >= this.opts.maxRetransmits) {
      this.emit(now, this.acceptableSeq(), TH_RST | TH_ACK, null, 0, 0);
      this.toClosed(this.timedOut());
      return;
    }
    this.retries++;
    this.stats.windowProbes++;
    this.emit(now, seqAdd(this.sndUna, -1 >>> 0), TH_ACK, null, 0, 0);
    this.backoff++;
    this.persist = true;
    this.tRtx = now + this.rtoBackedOff();
  }

  private onKeepalive(now: number): void {
    if (!this.opts.keepAlive || (this.state !== TcpState.Established && this.state !== TcpState.CloseWait)) return;
    if (this.sndMax !== this.sndUna) { this.tKeep = now + this.opts.keepIntvlUs; return; }
    if (this.keepProbes >= this.opts.keepCnt) {
      this.emit(now, this.acceptableSeq(), TH_RST | TH_ACK, null, 0, 0);
      this.toClosed(this.timedOut());
      return;
    }
    this.keepProbes++;
    this.stats.keepAliveProbes++;
    this.emit(now, seqAdd(this.sndUna, -1 >>> 0), TH_ACK, null, 0, 0);
    this.tKeep = now + this.opts.keepIntvlUs;
  }

  // =================================================================== RTT

  /** One RTT sample (RFC 6298 2.2, 2.3). `fromTs`: r is in timestamp ticks (ms). */
  private rttSample(now: number, r: number, fromTs: boolean): void {
    let us = fromTs ? r * 1000 : r;
    if (!(us >= 0) || us > 600_000_000) return;
    if (us === 0) us = fromTs ? 500 : 1;
    if (this.srtt === 0) {
      this.srtt = us;
      this.rttvar = us / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - us);
      this.srtt = 0.875 * this.srtt + 0.125 * us;
    }
    this.rto = Math.min(Math.max(this.srtt + Math.max(1000, 4 * this.rttvar), this.opts.rtoMinUs), this.opts.rtoMaxUs);
    void now;
  }

  private tsNow(now: number): number {
    return (Math.floor(now / 1000) + this.tsOffset) >>> 0;
  }

  // =================================================================== emission

  private advWindow(): number {
    let wnd = this.rcvCap - this.unread;
    if (wnd < 0) wnd = 0;
    // Receiver SWS avoidance (RFC 9293 3.8.6.2.2): do not open by less than min(MSS, buf/2).
    const cur = (this.rcvAdv - this.rcvNxt) | 0;
    if (wnd - Math.max(cur, 0) < Math.min(this.sndMss, this.rcvCap >>> 1) && wnd < this.rcvCap) wnd = Math.max(cur, 0);
    // Never shrink the window (right edge does not move left).
    if (cur > wnd) wnd = cur;
    const max = 65535 << this.rcvWscale;
    if (wnd > max) wnd = max;
    return wnd;
  }

  /**
   * Pure ACK. Its sequence is SND.MAX, not SND.NXT: after a timeout SND.NXT goes back to
   * SND.UNA, and an ACK carrying that old sequence would be unacceptable to the peer
   * (below its RCV.NXT), so the peer would drop its ACK information. Never beyond the right
   * edge of the peer's window (SND.UNA + SND.WND), as Linux's tcp_acceptable_seq: when the peer
   * shrank or closed its window with our data in flight (RFC 9293 3.8.6: the sender "MUST be
   * robust against window shrinking"), SND.MAX lies outside it, and a zero-length segment there
   * is not acceptable (RFC 9293 3.10.7.4: with RCV.WND = 0 only SEG.SEQ = RCV.NXT is), so every
   * ACK of the peer's data would be dropped while its window stays closed. A RST we send takes
   * the same sequence (Linux's tcp_send_active_reset): out of the window it would be ignored, and a
   * peer checking RFC 5961 3.2 resets only at RCV.NXT.
   */
  private sendAck(now: number): void {
    this.emit(now, this.acceptableSeq(), TH_ACK, null, 0, 0);
  }

  /** SND.MAX, clipped to the right edge of the peer's window (pure ACKs and our RSTs, as Linux). */
  private acceptableSeq(): number {
    if (this.state === TcpState.SynReceived) return this.sndMax;
    const edge = seqAdd(this.sndUna, this.sndWnd);
    return seqGt(this.sndMax, edge) ? edge : this.sndMax;
  }

  private sendSyn(now: number, synAck: boolean): void {
    const o = this.out;
    o.reset();
    o.seq = this.iss;
    o.flags = synAck ? TH_SYN | TH_ACK : TH_SYN;
    o.ack = synAck ? this.rcvNxt : 0;
    const adv = this.opts.advMss;
    o.mss = adv !== undefined && adv < this.opts.mss ? adv : this.opts.mss;
    if (synAck ? this.wsAgreed : this.opts.windowScale) o.wscale = this.rcvWscale;
    o.sackOk = synAck ? this.sackOk : this.opts.sack;
    const ts = synAck ? this.tsOk : this.opts.timestamps;
    if (ts) { o.hasTs = true; o.tsVal = this.tsNow(now); o.tsEcr = synAck ? this.tsRecent : 0; }
    o.window = Math.min(this.rcvCap - this.unread, 65535);
    this.rcvAdv = seqAdd(this.rcvNxt, o.window);
    if (synAck) this.lastAckSent = this.rcvNxt;
    if (this.rttTime < 0 && this.backoff === 0) { this.rttTime = now; this.rttSeq = this.iss; }
    this.stats.segsOut++;
    this.host.send(this, o, null, 0, 0);
  }

  private wsAgreed = false;

  /** Builds and sends one segment (ACK fields, window, timestamps, SACK blocks). */
  private emit(now: number, seq: number, flags: number, src: Uint8Array | null, off: number, len: number, bare = false): void {
    const o = this.out;
    o.reset();
    o.seq = seq;
    o.flags = flags;
    if (flags & TH_RST) this.mib.outRsts++;
    if (bare) {
      // RST for an unacceptable ACK: <SEQ=SEG.ACK><CTL=RST>, nothing else.
      this.stats.segsOut++;
      this.host.send(this, o, null, 0, 0);
      return;
    }
    if (flags & TH_ACK) {
      o.ack = this.rcvNxt;
      const ws = this.rcvWscale;
      let w = this.advWindow() >>> ws;
      // The advertised right edge never moves left (RFC 9293 3.8.6, RFC 7323 2.4): when scaling
      // down would cut into what is already advertised, round up to the next unit (as Linux).
      const cur = Math.max(0, (this.rcvAdv - this.rcvNxt) | 0);
      if (w << ws < cur) w = (cur + (1 << ws) - 1) >>> ws;
      o.window = w;
      this.rcvAdv = seqAdd(this.rcvNxt, w << ws);
      this.lastAckSent = this.rcvNxt;
      this.ackPending = 0;
      this.tDelack = Infinity;
    }
    if (this.tsOk && !(flags & TH_RST)) {
      o.hasTs = true;
      o.tsVal = this.tsNow(now);
      o.tsEcr = this.tsRecent;
    }
    if (this.sackOk && (this.oooN > 0 || this.dsackPending) && (flags & TH_ACK) && !(flags & TH_RST)) {
      let n = 0;
      const max = this.maxSackBlocks();
      if (this.dsackPending) {
        // D-SACK first (RFC 2883 4): the duplicate range, then the block that contains it, if any
        // (oooLast points at it: the duplicate merged into it).
        this.dsackPending = false;
        o.sackStart[0] = this.dsackStart;
        o.sackEnd[0] = this.dsackEnd;
        n = 1;
      }
      const first = this.oooLast >= 0 && this.oooLast < this.oooN ? this.oooLast : -1;
      if (first >= 0) { o.sackStart[n] = this.oooStart[first]!; o.sackEnd[n] = this.oooEnd[first]!; n++; }
      for (let i = 0; i < this.oooN && n < max; i++) {
        if (i === first) continue;
        o.sackStart[n] = this.oooStart[i]!;
        o.sackEnd[n] = this.oooEnd[i]!;
        n++;
      }
      o.sackCount = n;
    }
    this.stats.segsOut++;
    this.host.send(this, o, src, off, len);
  }

  // =================================================================== closing

  private enterTimeWait(now: number): void {
    this.state = TcpState.TimeWait;
    this.tRtx = Infinity;
    this.tKeep = Infinity;
    this.tDelack = Infinity;
    this.persist = false;
    this.tLinger = now + this.opts.timeWaitUs;
    this.freeRings(); // everything sent was acknowledged and everything received is in order
  }

  /** Returns the send ring and the reorder buffer for reuse (no data is left in them). */
  private freeRings(): void {
    this.sbuf = giveRing(this.sbuf);
    this.freeReorder();
    this.sbufStart = this.sbufEnd;
    this.sMask = 0;
  }

  private reportClosed(err: TcpError | null): void {
    if (this.closedReported) return;
    this.closedReported = true;
    this.host.onClosed(this, err);
  }

  private toClosed(err: TcpError | null): void {
    const st = this.state;
    // RFC 1213: tcpAttemptFails and tcpEstabResets count these direct transitions to CLOSED.
    if (st === TcpState.SynSent || st === TcpState.SynReceived) this.mib.attemptFails++;
    else if (st === TcpState.Established || st === TcpState.CloseWait) this.mib.estabResets++;
    this.state = TcpState.Closed;
    this.tRtx = this.tDelack = this.tKeep = this.tLinger = Infinity;
    this.arm();
    this.reportClosed(err);
    this.freeRings();
    if (!this.released) {
      this.released = true;
      this.host.onRelease(this);
    }
  }

  /** A method (not a field test) so control-flow narrowing does not assume the state is unchanged by callbacks. */
  isClosed(): boolean {
    return this.state === TcpState.Closed;
  }

  private arm(): void {
    let d = this.tRtx;
    if (this.tDelack < d) d = this.tDelack;
    if (this.tKeep < d) d = this.tKeep;
    if (this.tLinger < d) d = this.tLinger;
    if (d !== this.armed) {
      this.armed = d;
      this.host.setTimer(this, d);
    }
  }
}

/**
 * TCP core interface (sans-IO). The connection state machine in `./connection` never touches a
 * clock, socket, timer or native call: the host (the engine) feeds it parsed segments and the
 * current time in microseconds, and the connection calls back into the host to emit segments,
 * arm its single timer and report events to the socket layer.
 *
 * Sequence numbers are u32 numbers (0 .. 2^32-1); compare them with the helpers in `./seq`.
 * Times are microseconds (`now`), always passed in.
 */
import type { IpAddr } from '../ip/addr';

/** TCP header flag bits (low byte of the flags field; the 4 reserved bits are ignored). */
export const TH_FIN = 0x01;
export const TH_SYN = 0x02;
export const TH_RST = 0x04;
export const TH_PSH = 0x08;
export const TH_ACK = 0x10;
export const TH_URG = 0x20;
export const TH_ECE = 0x40;
export const TH_CWR = 0x80;

/** Maximum number of SACK blocks carried in or out of one segment. */
export const MAX_SACK_BLOCKS = 4;

/**
 * A parsed received segment, as produced by `TcpHeader.parse` (protocols/tcp.ts), which
 * implements this interface. Absent options: `mss = 0`, `wscale = -1`, `hasTs = false`,
 * `sackCount = 0`. The payload is a view `buf[payloadOff .. payloadOff + payloadLen)` over the
 * frame (zero copy); the connection copies what it keeps before returning from `input()`.
 */
export interface TcpSegmentIn {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  /** TH_* bits. */
  flags: number;
  /** Window field as received (not scaled). */
  window: number;
  urgent: number;
  /** MSS option value, 0 when absent. */
  mss: number;
  /** Window scale shift (0..14, larger values clamped to 14), -1 when absent. */
  wscale: number;
  sackOk: boolean;
  hasTs: boolean;
  tsVal: number;
  tsEcr: number;
  /** Number of valid SACK blocks in sackStart/sackEnd (at most MAX_SACK_BLOCKS). */
  sackCount: number;
  readonly sackStart: Uint32Array;
  readonly sackEnd: Uint32Array;
  buf: Uint8Array;
  payloadOff: number;
  payloadLen: number;
  /** The received frame holding the segment, when it is one (-1 or absent: not a frame). */
  frame?: number;
  /** Set by a host that kept that frame for a zero-copy reader: the frame's owner must not free it. */
  frameKept?: boolean;
}

/**
 * A segment to emit. One object per connection is reused for every segment: the host must
 * consume it inside `send()`. The host writes IP + TCP headers (see `tcpHeaderLen`/`writeTcp`
 * in protocols/tcp.ts, which encode exactly these options) and the payload, and computes the
 * checksum. Absent options: `mss = 0`, `wscale = -1`, `sackOk = false`, `hasTs = false`,
 * `sackCount = 0`.
 */
export class TcpSegmentOut {
  srcPort = 0;
  dstPort = 0;
  seq = 0;
  ack = 0;
  flags = 0;
  /** Window field value to put on the wire (already scaled down). */
  window = 0;
  mss = 0;
  wscale = -1;
  sackOk = false;
  hasTs = false;
  tsVal = 0;
  tsEcr = 0;
  sackCount = 0;
  readonly sackStart = new Uint32Array(MAX_SACK_BLOCKS);
  readonly sackEnd = new Uint32Array(MAX_SACK_BLOCKS);

  reset(): void {
    this.seq = 0; this.ack = 0; this.flags = 0; this.window = 0;
    this.mss = 0; this.wscale = -1; this.sackOk = false;
    this.hasTs = false; this.tsVal = 0; this.tsEcr = 0; this.sackCount = 0;
  }
}

/** Addresses and ports of a connection (both of one family; see protocols/ip/addr.ts). */
export interface TcpTuple {
  localAddr: IpAddr;
  localPort: number;
  remoteAddr: IpAddr;
  remotePort: number;
}

/** Connection states (RFC 9293 section 3.3.2). */
export const enum TcpState {
  Closed = 0,
  Listen,
  SynSent,
  SynReceived,
  Established,
  FinWait1,
  FinWait2,
  CloseWait,
  Closing,
  LastAck,
  TimeWait,
}

export const TCP_STATE_NAMES: readonly string[] = [
  'CLOSED', 'LISTEN', 'SYN_SENT', 'SYN_RECEIVED', 'ESTABLISHED', 'FIN_WAIT_1', 'FIN_WAIT_2',
  'CLOSE_WAIT', 'CLOSING', 'LAST_ACK', 'TIME_WAIT',
];

/** Error codes reported with `onClosed` (Node-style). */
export type TcpError = 'ECONNRESET' | 'ECONNREFUSED' | 'ETIMEDOUT' | 'ECONNABORTED' | 'EHOSTUNREACH' | 'ENETUNREACH';

export type CongestionControlName = 'newreno' | 'cubic';

export interface TcpOptions {
  /**
   * MSS we advertise. Default (through the stack): the path MTU to the peer less 40 (IPv4 and TCP
   * headers), as a kernel does; a value here only lowers it. Also caps our send MSS. A connection
   * made directly without one uses 1460.
   */
  mss: number;
  /**
   * MSS we advertise when lower than `mss`, which then caps only what we send: a VIP behind a load
   * balancer, whose peer's segments come inside its encapsulation while ours leave direct.
   */
  advMss?: number;
  /** Receive buffer in bytes (rounded up to a power of two, >= 4096). Default 256 KiB. */
  rcvBuf: number;
  /** Send buffer in bytes (rounded up to a power of two, >= 4096). Default 256 KiB. */
  sndBuf: number;
  /** Congestion control. Default 'cubic' (like Linux). */
  cc: CongestionControlName;
  /** Disable Nagle. Default false. */
  noDelay: boolean;
  /** Offer/accept window scaling, timestamps and SACK. Defaults true. */
  windowScale: boolean;
  timestamps: boolean;
  sack: boolean;
  /** Delayed ACK: ACK every second full segment or after `ackDelayUs`. Default true, 40 ms. */
  delayedAck: boolean;
  ackDelayUs: number;
  /** RTO bounds and initial value (µs). Defaults: min 200 ms (as Linux), max 120 s, initial 1 s (RFC 6298). */
  rtoMinUs: number;
  rtoMaxUs: number;
  rtoInitialUs: number;
  /** Retransmissions of a data segment before ETIMEDOUT (Linux tcp_retries2). Default 15. */
  maxRetransmits: number;
  /** SYN / SYN-ACK retransmissions before giving up (Linux tcp_syn_retries). Default 6. */
  synRetries: number;
  /** Keepalive: enabled, idle time, probe interval, probe count. Defaults false, 2 h, 75 s, 9. */
  keepAlive: boolean;
  keepIdleUs: number;
  keepIntvlUs: number;
  keepCnt: number;
  /** TIME_WAIT duration (2 MSL). Default 60 s (as Linux). */
  timeWaitUs: number;
  /** FIN_WAIT_2 timeout once the application called close(). Default 60 s. */
  finWait2TimeoutUs: number;
  /** Challenge ACKs (RFC 5961) per connection per second. Default 10. */
  challengeAckLimit: number;
  /** Out-of-order ranges kept (memory for them is bounded by rcvBuf). Default 16. */
  maxOooRanges: number;
  /** Initial congestion window in segments (RFC 6928). Default 10. */
  initialCwnd: number;
}

/**
 * What the connection needs from its environment. Implemented by the engine (demux, IP output,
 * timers) and forwarded to the socket layer for the events.
 */
export interface TcpHost {
  /**
   * Emits one segment. The TCP/IP headers come from `seg` (plus the connection's tuple); the
   * payload is `len` bytes of `src` from `off` (src is null when len is 0). Must be consumed
   * synchronously (`seg` is reused, `src` is the send buffer).
   */
  send(conn: TcpConnectionLike, seg: TcpSegmentOut, src: Uint8Array | null, off: number, len: number): void;
  /** Arms the connection's single timer at `deadline` (µs); Infinity cancels it. Call `onTimer(now)` then. */
  setTimer(conn: TcpConnectionLike, deadline: number): void;
  /** The three-way handshake completed (both for connect() and for passive opens). */
  onEstablished(conn: TcpConnectionLike): void;
  /**
   * In-order data for the application: `len` bytes of `b` from `off`, valid only during the
   * call (copy it). The bytes count against the receive window until `conn.consumed(n)`. `seg` is
   * the received segment when the bytes are its own payload (the host may then keep the frame the
   * segment came in: see `TcpSegmentIn.frame`), null for bytes from the reorder buffer.
   */
  onData(conn: TcpConnectionLike, b: Uint8Array, off: number, len: number, seg: TcpSegmentIn | null): void;
  /** Send buffer space became available after `write()` returned less than asked. */
  onWritable(conn: TcpConnectionLike): void;
  /** The peer sent FIN (all its data was delivered before). */
  onRemoteClose(conn: TcpConnectionLike): void;
  /**
   * The connection is finished for the application: `err` null for an orderly close (both FINs
   * exchanged, maybe still in TIME_WAIT), or an error code. Called once.
   */
  onClosed(conn: TcpConnectionLike, err: TcpError | null): void;
  /** The connection reached CLOSED (after TIME_WAIT, reset or abort): drop it from the demux. */
  onRelease(conn: TcpConnectionLike): void;
  /**
   * The counters this connection adds its events to (per virtual server in the engine), asked once
   * when the connection is made. Without it the connection counts into a shared scratch object.
   */
  counters?(conn: TcpConnectionLike): TcpCounters;
  /**
   * Optional memory budget for reorder buffers: asked before one is taken (`bytes` > 0; false
   * refuses it and the out-of-order segment is dropped), told when it is given back (`bytes` < 0).
   */
  reorderMemory?(conn: TcpConnectionLike, bytes: number): boolean;
}

/** Structural view of a connection used by the host interface (avoids an import cycle). */
export interface TcpConnectionLike {
  readonly tuple: TcpTuple;
  readonly state: TcpState;
  /** Free slot for the host / socket layer. */
  user: unknown;
}

/** Per-connection counters and congestion/RTT state snapshot (read the fields directly). */
export class TcpStats {
  segsIn = 0;
  segsOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** Segments retransmitted (all causes, SYN and SYN-ACK included, as Linux's total_retrans). */
  retransSegs = 0;
  /** Payload bytes retransmitted (RFC 4898 tcpEStatsPerfOctetsRetrans, Linux bytes_retrans). */
  bytesRetrans = 0;
  /** Payload bytes the peer acknowledged (RFC 4898 tcpEStatsAppHCThruOctetsAcked; SYN and FIN not counted). */
  bytesAcked = 0;
  /** Payload bytes received in order, handed to the application (RFC 4898 tcpEStatsAppHCThruOctetsReceived). */
  bytesReceived = 0;
  fastRetransmits = 0;
  rtoExpirations = 0;
  sackRecoveries = 0;
  /** RFC 6675 rescue retransmissions (a lost tail repaired without waiting for the RTO). */
  rescueRetransmits = 0;
  /** New segments sent beyond cwnd on the first two duplicate ACKs (RFC 3042 Limited Transmit). */
  limitedTransmits = 0;
  dupAcksIn = 0;
  challengeAcks = 0;
  pawsDrops = 0;
  outOfWindowDrops = 0;
  oooSegments = 0;
  /** Out-of-order bytes dropped because the OOO range table was full. */
  oooDropped = 0;
  windowProbes = 0;
  keepAliveProbes = 0;
}

/**
 * TCP event counters of a group of connections (a virtual server), kept as plain numbers and bumped
 * where each event happens. Names follow Linux's MIBs (`nstat`/`netstat -s`; RFC 1213/4022 for the
 * `Tcp` group) where one exists; each field says which.
 */
export class TcpCounters {
  /** Tcp ActiveOpens: connect() sent a SYN (RFC 1213 tcpActiveOpens: CLOSED -> SYN-SENT). */
  activeOpens = 0;
  /**
   * Tcp PassiveOpens: a SYN to a listener made a SYN-RECEIVED connection (RFC 1213 tcpPassiveOpens:
   * LISTEN -> SYN-RCVD), or a valid SYN cookie made an established one. Linux counts at the ACK.
   */
  passiveOpens = 0;
  /** Tcp AttemptFails: SYN-SENT or SYN-RECEIVED -> CLOSED (RFC 1213 tcpAttemptFails). */
  attemptFails = 0;
  /** Tcp EstabResets: ESTABLISHED or CLOSE-WAIT -> CLOSED (RFC 1213 tcpEstabResets: a reset, sent or received). */
  estabResets = 0;
  /** Tcp OutRsts: segments sent with RST (by connections and stateless answers). */
  outRsts = 0;
  /** No Linux MIB: acceptable RSTs received that ended a connection (RFC 5961 checks passed; TIME-WAIT ignores them). */
  inRsts = 0;
  /** Tcp RetransSegs: segments retransmitted (data, FIN, SYN, SYN-ACK). */
  retransSegs = 0;
  /** TcpExt TCPTimeouts: retransmission timer expirations (handshake ones included). */
  timeouts = 0;
  /** TcpExt SyncookiesSent: SYN-ACKs with a cookie, sent because a SYN queue was full. */
  syncookiesSent = 0;
  /** TcpExt SyncookiesRecv: ACKs to a listener carrying a valid cookie. */
  syncookiesRecv = 0;
  /** TcpExt SyncookiesFailed: ACKs to a listener that had sent cookies, whose cookie was not valid. */
  syncookiesFailed = 0;
  /** TcpExt TCPOFOQueue: out-of-order segments put in a reorder buffer. */
  ofoQueue = 0;

  /** Zeroes every counter (`xdpstack clear counters`). */
  reset(): void {
    this.activeOpens = this.passiveOpens = this.attemptFails = this.estabResets = this.outRsts = this.inRsts = 0;
    this.retransSegs = this.timeouts = this.syncookiesSent = this.syncookiesRecv = this.syncookiesFailed = this.ofoQueue = 0;
  }
}

/*
 * The connection API (protocols/tcp/connection.ts), for the integrator:
 *
 *   new TcpConnection(host, tuple, opts: Partial<TcpOptions>, secret: Uint8Array(16), user?)
 *   c.connect(now)                       active open: sends SYN (ISN from RFC 6528 with `secret`)
 *   TcpConnection.acceptSyn(host, tuple, opts, secret, syn, now, user?)
 *                                        passive open from a listener: sends SYN-ACK (SYN_RECEIVED);
 *                                        `user` is set before the SYN-ACK goes out
 *   TcpConnection.fromCookie(host, tuple, opts, ack, info, now, user?)
 *                                        passive open from a valid SYN-cookie ACK (ESTABLISHED,
 *                                        onEstablished called); then pass the same ACK to input()
 *   c.input(seg, now): Drop              every segment of the 4-tuple; the drop reason or None
 *   c.write(b, off, len, now?): number   bytes taken into the send buffer (fewer -> onWritable later);
 *                                        without `now` data is only queued until flush(now)/shutdown
 *   c.consumed(n, now)                   the application read n delivered bytes (opens the window)
 *   c.shutdown(now)                      FIN after the queued data (half-close)
 *   c.close(now)                         shutdown + orphan (FIN_WAIT_2 timeout; unread data -> RST)
 *   c.abort(now)                         RST, CLOSED at once (onRelease, no onClosed)
 *   c.onTimer(now)                       when the deadline given to host.setTimer passed
 *   c.setNoDelay(b), c.setKeepAlive(on, idleUs, now), c.setMss(mss) (path MTU)
 *   c.timeWaitAcceptsSyn(syn)            TIME_WAIT reuse check for a listener
 *   c.state, c.stats, c.srtt, c.rto, c.cwnd, c.ssthresh, c.sndWnd, c.rcvWnd, c.writableBytes, c.pendingBytes
 *
 * Helpers for the listener / demux: `rstFor(seg, out)` (./rst: RST reply to a segment without a
 * connection), `synAckFor(syn, out, tuple, mss, secret, now, opts)` and `check(ack, tuple,
 * secret, now)` (./syncookie), `isnFor` (./isn), `TcpHeader`/`writeTcp` (protocols/tcp.ts).
 */

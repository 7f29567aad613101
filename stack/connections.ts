/**
 * `xdpstack show connections` (like `ss -tuani`) and `socket.tcpInfo()`: one row per TCP connection,
 * TCP listener and UDP socket of a virtual server, and the TCP counters of `show counters`.
 *
 * States are named as Linux's `ss` prints them. From RFC 9293's names (section 3.3.2):
 *   LISTEN -> LISTEN, SYN-SENT -> SYN-SENT, SYN-RECEIVED -> SYN-RECV, ESTABLISHED -> ESTAB,
 *   FIN-WAIT-1 -> FIN-WAIT-1, FIN-WAIT-2 -> FIN-WAIT-2, CLOSE-WAIT -> CLOSE-WAIT, CLOSING -> CLOSING,
 *   LAST-ACK -> LAST-ACK, TIME-WAIT -> TIME-WAIT, CLOSED -> CLOSED.
 * A UDP socket is ESTAB when connected, else UNCONN (ss's name for its CLOSE state).
 *
 * The `--state` filter takes ss's names (`ss state FILTER`), several separated by commas:
 * established, syn-sent, syn-recv, fin-wait-1, fin-wait-2, time-wait, closed (also selects UNCONN
 * UDP sockets), close-wait, last-ack, listening, closing, and the groups all, connected (all but
 * listening and closed), synchronized (connected but syn-sent), bucket (syn-recv, time-wait) and
 * big (all but bucket).
 */
import { TcpState } from '../protocols/tcp/types';
import type { CongestionControlName, TcpCounters } from '../protocols/tcp/types';
import type { TcpConnection } from '../protocols/tcp/connection';
import { ANY6, IpAddr, isIp6, isLinkLocal6 } from '../protocols/ip/addr';
import { hostPort } from './show';
import { tcpState, TcpEntry, TcpListener } from './transport/tcp';
import { udpPorts } from './transport/udp';
import type { UdpSocket } from './api/dgram';
import type { VirtualServer } from './vs';

/** TCP states as `ss` names them, by TcpState. */
export const SS_STATE_NAMES = [
  'CLOSED', 'LISTEN', 'SYN-SENT', 'SYN-RECV', 'ESTAB', 'FIN-WAIT-1', 'FIN-WAIT-2', 'CLOSE-WAIT', 'CLOSING', 'LAST-ACK', 'TIME-WAIT',
] as const;
export type SsState = typeof SS_STATE_NAMES[number] | 'UNCONN';

/** `ss` state filter names and the states each selects. */
const SINGLE: Record<string, SsState[]> = {
  established: ['ESTAB'], 'syn-sent': ['SYN-SENT'], 'syn-recv': ['SYN-RECV'], 'fin-wait-1': ['FIN-WAIT-1'],
  'fin-wait-2': ['FIN-WAIT-2'], 'time-wait': ['TIME-WAIT'], closed: ['CLOSED', 'UNCONN'], 'close-wait': ['CLOSE-WAIT'],
  'last-ack': ['LAST-ACK'], listening: ['LISTEN'], listen: ['LISTEN'], closing: ['CLOSING'],
};
const ALL: SsState[] = [...SS_STATE_NAMES, 'UNCONN'];
const CONNECTED = ALL.filter((s) => s !== 'LISTEN' && s !== 'CLOSED' && s !== 'UNCONN');
const BUCKET: SsState[] = ['SYN-RECV', 'TIME-WAIT'];
const GROUPS: Record<string, SsState[]> = {
  all: ALL,
  connected: CONNECTED,
  synchronized: CONNECTED.filter((s) => s !== 'SYN-SENT'),
  bucket: BUCKET,
  big: ALL.filter((s) => !BUCKET.includes(s)),
};
/** The names `--state` accepts. */
export const STATE_FILTER_NAMES: readonly string[] = [...Object.keys(SINGLE).filter((n) => n !== 'listen'), ...Object.keys(GROUPS)];

/**
 * The states a `--state` value selects (names as ss's state filter, comma-separated, any case).
 * Throws an Error naming the valid ones for anything else.
 */
export function parseStateFilter(text: string): Set<SsState> {
  if (typeof text !== 'string' || text.trim() === '') {
    throw new Error(`'state' must name states (one or more of ${STATE_FILTER_NAMES.join(', ')}, separated by commas)`);
  }
  const out = new Set<SsState>();
  const parts = text.split(',').map((s) => s.trim().toLowerCase());
  for (const p of parts) {
    const states = SINGLE[p] ?? GROUPS[p];
    if (!states) {
      throw new Error(`unknown state '${p}' (one or more of ${STATE_FILTER_NAMES.join(', ')}, separated by commas)`);
    }
    for (const s of states) out.add(s);
  }
  return out;
}

/** What `show connections` keeps: states (null: all), a local or remote port (null: any). */
export interface ConnectionFilter {
  states?: ReadonlySet<SsState> | null;
  port?: number | null;
}

/** The figures of one TCP connection (`show connections` rows of `proto` 'tcp' with a peer, and `socket.tcpInfo()`). */
export interface TcpInfo {
  vs: string;
  proto: 'tcp';
  state: SsState;
  /** "address:port" ("[v6]:port"; a link-local peer's link as "[fe80::1%link]:port"). */
  local: string;
  remote: string;
  /** Bytes received in order and not read by the application yet (ss Recv-Q). */
  recvQ: number;
  /**
   * Bytes written and not acknowledged: sent and unacknowledged, and not sent yet (ss Send-Q). These
   * are the bytes in the connection's send buffer (TcpOptions.sndBuf); what a socket's write()
   * took beyond it waits in the socket (its writableLength), as a kernel's Send-Q leaves out what
   * the application has not handed over yet.
   */
  sendQ: number;
  /** Of sendQ, the bytes not sent yet (Linux tcpi_notsent_bytes). */
  notsent: number;
  /** Smoothed RTT and its variation (RFC 6298 SRTT, RTTVAR), ms; null before the first sample. */
  rttMs: number | null;
  rttvarMs: number | null;
  /** Retransmission timeout now in force (backoff included), ms; and the timeouts in a row it includes. */
  rtoMs: number;
  backoff: number;
  /** Payload bytes per segment we send (our send MSS less fixed options, as ss's mss). */
  mss: number;
  /** The MSS we advertised in our SYN, less the timestamp option when in use (as ss's advmss). */
  advmss: number;
  /** Congestion window in segments of `mss` (as ss prints it) and in bytes. */
  cwnd: number;
  cwndBytes: number;
  /** Slow start threshold in segments and bytes; null until a loss set one (ss prints none then). */
  ssthresh: number | null;
  ssthreshBytes: number | null;
  /** The peer's receive window (bytes, scaled) and the one we advertised last (as ss's snd_wnd and rcv_wnd). */
  sndWnd: number;
  rcvWnd: number;
  /** Segments retransmitted, all causes (ss retrans:…/TOTAL), and retransmission timeouts. */
  retrans: number;
  timeouts: number;
  /** Options in use: SACK (RFC 2018), timestamps (RFC 7323), window scale shifts each way (null: not in use). */
  sack: boolean;
  timestamps: boolean;
  /** Shift applied to the peer's windows (its wscale option) and to ours (as ss's wscale:snd,rcv). */
  sndWscale: number | null;
  rcvWscale: number | null;
  /** Payload bytes sent (retransmissions included, as Linux bytes_sent), retransmitted, acknowledged by the peer, received in order. */
  bytesSent: number;
  bytesRetrans: number;
  bytesAcked: number;
  bytesReceived: number;
  segsOut: number;
  segsIn: number;
  /** Congestion control algorithm. */
  cc: CongestionControlName;
}

/** A TCP listener: its queues against their limits (ss prints the accept queue as Recv-Q and its limit as Send-Q). */
export interface TcpListenRow {
  vs: string;
  proto: 'tcp';
  state: 'LISTEN';
  local: string;
  remote: null;
  /** Connections established and not accepted yet, and the backlog. */
  recvQ: number;
  sendQ: number;
  acceptQueue: number;
  acceptQueueMax: number;
  /** Half-open connections (SYN-RECEIVED) and the SYN queue's limit (beyond it: SYN cookies). */
  synQueue: number;
  synQueueMax: number;
  syncookiesSent: number;
  /** SYNs and cookie ACKs dropped because the accept queue was full. */
  acceptOverflows: number;
}

/** A bound UDP socket (ESTAB when connected, else UNCONN). */
export interface UdpRow {
  vs: string;
  proto: 'udp';
  state: 'ESTAB' | 'UNCONN';
  local: string;
  remote: string | null;
  /** Bytes of the datagrams received and not delivered to the application yet. */
  recvQ: number;
  sendQ: 0;
  /** Those datagrams. */
  recvDatagrams: number;
  /**
   * The receive buffer (bytes, as `ss -m` shows `rb`, Linux's doubled SO_RCVBUF) and what the queued
   * datagrams take of it (`r`: payload plus a per-datagram overhead); a datagram that does not fit is
   * dropped (udp-socket-queue-full).
   */
  recvBuffer: number;
  recvBufferUsed: number;
}

export type ConnectionRow = TcpInfo | TcpListenRow | UdpRow;

const ms = (us: number) => Math.round(us) / 1000;
const INFINITE_SSTHRESH = 0x7fffffff;

/** The address of a socket bound to `a`: 0.0.0.0 and [::] (IPv6 only) as ss prints them, '*' for a dual-stack ::. */
function boundText(a: IpAddr, port: number, v6Only: boolean): string {
  if (a === 0) return `0.0.0.0:${port}`;
  if (a === ANY6) return v6Only ? `[::]:${port}` : `*:${port}`;
  return hostPort(a, port);
}

/** The figures of a TCP connection: the one builder behind `show connections` and `socket.tcpInfo()`. */
export function tcpInfoOf(vs: string, e: TcpEntry): TcpInfo {
  const c: TcpConnection = e.conn;
  const t = c.tuple;
  const st = c.stats;
  const mss = c.sndMss;
  const ss = c.ssthresh >= INFINITE_SSTHRESH ? null : c.ssthresh;
  const zone = e.via && isIp6(t.remoteAddr) && isLinkLocal6(t.remoteAddr) ? e.via.name : undefined;
  const ws = c.windowScaling;
  return {
    vs, proto: 'tcp', state: SS_STATE_NAMES[c.state] ?? 'CLOSED',
    local: hostPort(t.localAddr, t.localPort, zone), remote: hostPort(t.remoteAddr, t.remotePort, zone),
    recvQ: e.sink?.tcpReadQueue ? e.sink.tcpReadQueue(c.unreadBytes) : c.unreadBytes,
    sendQ: c.pendingBytes,
    notsent: c.unsentBytes,
    rttMs: c.srtt > 0 ? ms(c.srtt) : null,
    rttvarMs: c.srtt > 0 ? ms(c.rttvar) : null,
    rtoMs: ms(c.rtoNow),
    backoff: c.backoffCount,
    mss,
    advmss: c.opts.mss - (c.timestamps ? 12 : 0),
    cwnd: Math.max(1, Math.floor(c.cwnd / mss)),
    cwndBytes: c.cwnd,
    ssthresh: ss === null ? null : Math.max(1, Math.floor(ss / mss)),
    ssthreshBytes: ss,
    sndWnd: c.sndWnd,
    rcvWnd: c.advertisedWindow,
    retrans: st.retransSegs,
    timeouts: st.rtoExpirations,
    sack: c.sack,
    timestamps: c.timestamps,
    sndWscale: ws ? c.sendWscale : null,
    rcvWscale: ws ? c.recvWscale : null,
    bytesSent: st.bytesOut + st.bytesRetrans,
    bytesRetrans: st.bytesRetrans,
    bytesAcked: st.bytesAcked,
    bytesReceived: st.bytesReceived,
    segsOut: st.segsOut,
    segsIn: st.segsIn,
    cc: c.cc.name,
  };
}

export function listenerRow(vs: VirtualServer, l: TcpListener): TcpListenRow {
  const accept = l.accept.length + l.pendingAccept.length;
  return {
    vs: vs.name, proto: 'tcp', state: 'LISTEN', local: boundText(l.addr, l.port, l.v6Only), remote: null,
    recvQ: accept, sendQ: l.opts.backlog,
    acceptQueue: accept, acceptQueueMax: l.opts.backlog,
    synQueue: l.synQueue, synQueueMax: Math.min(l.opts.synBacklog, vs.maxSynQueue),
    syncookiesSent: l.synCookiesSent, acceptOverflows: l.overflowDrops,
  };
}

export function udpRow(vs: string, s: UdpSocket): UdpRow {
  let bytes = 0;
  for (const m of s.queue) bytes += m.data.length;
  const peer = s.connected;
  return {
    vs, proto: 'udp', state: peer ? 'ESTAB' : 'UNCONN',
    local: boundText(s.localAddr, s.localPort, s.ipv6Only),
    remote: peer ? hostPort(peer.addr, peer.port, peer.zone || undefined) : null,
    recvQ: bytes, sendQ: 0, recvDatagrams: s.queue.length, recvBuffer: s.receiveBuffer, recvBufferUsed: s.queuedBytes,
  };
}

/** The port of an "address:port" text. */
function portOf(text: string | null): number {
  if (text === null) return -1;
  return Number(text.slice(text.lastIndexOf(':') + 1));
}

function keep(r: ConnectionRow, f: ConnectionFilter): boolean {
  if (f.states && !f.states.has(r.state)) return false;
  if (f.port !== undefined && f.port !== null && portOf(r.local) !== f.port && portOf(r.remote) !== f.port) return false;
  return true;
}

/** TCP connections of `vs` still in its demux (CLOSED ones leave it at once), ordered by local then remote. */
function entries(vs: VirtualServer): TcpEntry[] {
  const out: TcpEntry[] = [];
  for (const head of tcpState(vs).conns.values()) for (let e: TcpEntry | null = head; e; e = e.next) if (!e.released) out.push(e);
  const key = (e: TcpEntry) => e.conn.tuple;
  return out.sort((a, b) => key(a).localPort - key(b).localPort || key(a).remotePort - key(b).remotePort);
}

/**
 * Rows of `show connections` for `vss`, per VS: listeners (by port), connections (by local and
 * remote port), UDP sockets (by port); those `f` keeps.
 */
export function connectionRows(vss: readonly VirtualServer[], f: ConnectionFilter = {}): ConnectionRow[] {
  const rows: ConnectionRow[] = [];
  const add = (r: ConnectionRow) => { if (keep(r, f)) rows.push(r); };
  for (const v of vss) {
    const ts = tcpState(v);
    for (const port of [...ts.listeners.keys()].sort((a, b) => a - b)) for (const l of ts.listeners.get(port)!) add(listenerRow(v, l));
    for (const e of entries(v)) add(tcpInfoOf(v.name, e));
    const udp = udpPorts(v);
    for (const port of [...udp.keys()].sort((a, b) => a - b)) for (const s of udp.get(port)!) add(udpRow(v.name, s));
  }
  return rows;
}

/** `show counters`: a VS's TCP counters, with CurrEstab (Tcp MIB: connections now in ESTABLISHED or CLOSE-WAIT). */
export function tcpCounterRow(vs: VirtualServer): Omit<TcpCounters, 'reset'> & { currEstab: number } {
  let currEstab = 0;
  for (const head of tcpState(vs).conns.values()) {
    for (let e: TcpEntry | null = head; e; e = e.next) {
      const s = e.conn.state;
      if (!e.released && (s === TcpState.Established || s === TcpState.CloseWait)) currEstab++;
    }
  }
  return { ...tcpState(vs).counters, currEstab };
}

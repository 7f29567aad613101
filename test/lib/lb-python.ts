/**
 * The lab's L4 load balancer for direct server return (issue 13), and python3 helpers around it.
 *
 * This kernel has no ipip/sit/ip6tnl modules, so the load balancer is a python3 program (standard
 * library only) in a lab peer's namespace. An AF_PACKET socket on the peer's interface takes the
 * IPv4 and IPv6 packets sent to one of the configured VIPs (addresses the namespace does not own:
 * with forwarding off its kernel drops them itself after the socket saw them) and sends each one,
 * unchanged, inside an outer header toward a real server:
 *   IPv4 in IPv4 (protocol 4, RFC 2003), IPv6 in IPv6 (next header 41, RFC 2473),
 *   IPv6 in IPv4 (protocol 41, RFC 4213 3.5), IPv4 in IPv6 (next header 4, RFC 2473).
 * The outer family is the real server's, the inner the VIP's.
 *
 * Sending goes through raw IP sockets (AF_INET/AF_INET6, SOCK_RAW, protocol 4 or 41) bound to the
 * load balancer's own address: the kernel writes the outer header (source = that address, TTL /
 * hop limit = the namespace's default, as RFC 2003 3.1 and RFC 2473 6.3 want the encapsulator's
 * own), routes it, resolves the real server's MAC by ARP/NDP and lets the peer's tc VLAN program
 * tag it, where an AF_PACKET send would need all of that by hand. The outer TOS / traffic class
 * is the inner one (RFC 2003 3.1, RFC 2473 6.4; set on the socket when it changes), the IPv6 flow
 * label the kernel's own (RFC 2473 6.5). A packet that does not fit the link once encapsulated:
 *   IPv4 inside: DF set → not sent (tooBig) and an ICMP "fragmentation needed" (RFC 1191) goes
 *   back to the client; DF clear → the outer packet is fragmented here (RFC 2003 5.1, RFC 2473
 *   7.2). The outer DF of IPv4 in IPv4 is the inner one (RFC 2003 3.1).
 *   IPv6 in IPv6: over 1280 bytes → not sent, ICMPv6 Packet Too Big to the client; up to 1280 →
 *   fragmented here (RFC 2473 7.1).
 *   IPv6 in IPv4: DF clear and fragmented here (RFC 4213 3.2.1, static tunnel MTU), or with
 *   option df6in4 DF set, not sent, and Packet Too Big.
 * Each family and protocol has a socket in IP(V6)_PMTUDISC_DO mode and one in _DONT mode; the
 * IPV6_DONTFRAG option is not used: the kernel ignores it on raw sockets of protocol 4/41.
 *
 * Receiving: one AF_PACKET SOCK_DGRAM socket (link header already removed) with a classic BPF
 * filter that keeps only frames to this host (not its own output) on the peer's VLAN whose IP
 * version matches the ethertype and whose destination is a VIP; 8 MB of receive buffer; one
 * preallocated buffer and recv_into. An IPv4 header that does not verify is dropped (badChecksum)
 * unless forwardBadChecksum; the inner packet is cut to its IP length (Ethernet padding off).
 * Frames longer than the interface MTU (GRO/GSO superframes) are dropped (oversize): clients
 * must not send them (`clientOffloadsOff`), and the load balancer's interface has GRO off.
 */
import { spawn, ChildProcess } from 'node:child_process';
import { nsRun } from './rig';
import { EncapKind, fromHex, toHex } from './encap-frames';
import type { LabPeer } from '../../stack/lab/lab';

/** Shared python: a classic BPF assembler with labels and SO_ATTACH_FILTER. */
const PY_BPF = `
import socket, struct, ctypes
AD = 0xfffff000
LDW, LDB, ANDK, JEQ, RET = 0x20, 0x30, 0x54, 0x15, 0x06
def bpf_attach(sock, prog):
    labels = {}; code = []
    for ins in prog:
        if isinstance(ins, str): labels[ins] = len(code)
        else: code.append(ins)
    out = []
    for i, (c, jt, jf, k) in enumerate(code):
        jt = labels[jt] - i - 1 if isinstance(jt, str) else jt
        jf = labels[jf] - i - 1 if isinstance(jf, str) else jf
        if not (0 <= jt < 256 and 0 <= jf < 256): raise SystemExit('filter too long (too many addresses)')
        out.append(struct.pack('HBBI', c, jt, jf, k & 0xffffffff))
    raw = b''.join(out)
    buf = ctypes.create_string_buffer(raw, len(raw))
    sock.setsockopt(socket.SOL_SOCKET, 26, struct.pack('HL', len(out), ctypes.addressof(buf)))
def bpf_pkttype_vlan(pkttype, vlan):
    p = [(LDW, 0, 0, AD + 4), (JEQ, 0, 'drop', pkttype)]
    if vlan: p += [(LDW, 0, 0, AD + 48), (JEQ, 0, 'drop', 1), (LDW, 0, 0, AD + 44), (ANDK, 0, 0, 0xfff), (JEQ, 0, 'drop', vlan)]
    return p
`;

/**
 * The load balancer (python3, standard library). argv[1]: JSON of LbConfig. Prints one JSON line
 * {"ready": counters, "pid": n} once its sockets are up, {"counters": ...} for each line 'c' on
 * stdin, and {"final": counters, "reason": "stopped"|"time"} on SIGTERM, stdin closed, or after
 * maxSeconds.
 */
export const LB_FORWARDER = PY_BPF + `
import sys, json, signal, os, threading, time, zlib, errno
cfg = json.loads(sys.argv[1])
SOL_PACKET, PACKET_STATISTICS, ETH_P_ALL, SO_RCVBUFFORCE = 263, 6, 3, 33
IP_MTU_DISCOVER, IP_PMTUDISC_DONT, IP_PMTUDISC_DO = 10, 0, 2
IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DONT, IPV6_PMTUDISC_DO, IPV6_TCLASS = 23, 0, 2, 67
KINDS = ('4in4', '6in6', '6in4', '4in6')
DROPS = ('badHeader', 'badChecksum', 'notVip', 'oversize', 'tooBig', 'sendError')
ICMP_SENT = 1 + 4 + 6
ifname = cfg['ifname']
mtu = int(open('/sys/class/net/%s/mtu' % ifname).read())

v4vips = {}; v6vips = {}
for s in cfg['services']:
    if ':' in s['vip']: v6vips[socket.inet_pton(socket.AF_INET6, s['vip'])] = s['reals']
    else: v4vips[struct.unpack('!I', socket.inet_aton(s['vip']))[0]] = s['reals']
prog = bpf_pkttype_vlan(0, cfg.get('vlan') or 0)
prog += [(LDW, 0, 0, AD + 0), (JEQ, 'v4', 0, 0x0800), (JEQ, 'v6', 'drop', 0x86dd),
         'v4', (LDB, 0, 0, 0), (ANDK, 0, 0, 0xf0), (JEQ, 0, 'drop', 0x40), (LDW, 0, 0, 16)]
for i, a in enumerate(v4vips): prog.append((JEQ, 'take', 'drop' if i == len(v4vips) - 1 else 0, a))
if not v4vips: prog.append((RET, 0, 0, 0))
prog += ['v6', (LDB, 0, 0, 0), (ANDK, 0, 0, 0xf0), (JEQ, 0, 'drop', 0x60)]
for i, a in enumerate(v6vips):
    nxt = 'drop' if i == len(v6vips) - 1 else 'v6_%d' % (i + 1)
    w = struct.unpack('!4I', a)
    prog.append('v6_%d' % i)
    for k in range(4): prog += [(LDW, 0, 0, 24 + 4 * k), (JEQ, 'take' if k == 3 else 0, nxt, w[k])]
prog += ['drop', (RET, 0, 0, 0), 'take', (RET, 0, 0, 0x40000)]

src4, src6 = cfg.get('src4'), cfg.get('src6')
socks = {}
def sock_for(fam, proto, nofrag):
    # nofrag: a packet larger than the path MTU is refused (EMSGSIZE) instead of fragmented here.
    key = (fam, proto, nofrag)
    if key in socks: return socks[key]
    if fam == 4:
        if not src4: raise SystemExit('an IPv4 real server needs src4')
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
        s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO if nofrag else IP_PMTUDISC_DONT)
        s.bind((src4, 0))
        e = [s, socket.IPPROTO_IP, socket.IP_TOS, 0, 20]
    else:
        if not src6: raise SystemExit('an IPv6 real server needs src6')
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, proto)
        # IPV6_DONTFRAG is ignored on raw sockets of protocol 4/41; the PMTU discovery mode is not.
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DO if nofrag else IPV6_PMTUDISC_DONT)
        s.bind((src6, 0))
        e = [s, socket.IPPROTO_IPV6, IPV6_TCLASS, 0, 40]
    bpf_attach(s, [(RET, 0, 0, 0)])  # a sender only: nothing queues up on it
    socks[key] = e
    return e
df6in4 = bool(cfg.get('df6in4'))
def real(inner6, addr):
    # (kind, socket for a packet that must not be fragmented, for one that may be, destination):
    # 4in4 and 4in6 by the inner DF (RFC 2003 5.1, RFC 2473 7.2), 6in6 by the inner size (RFC 2473 7.1).
    if ':' in addr:
        return (1 if inner6 else 3, sock_for(6, 41 if inner6 else 4, True), sock_for(6, 41 if inner6 else 4, False), (addr, 0))
    if inner6:
        e = sock_for(4, 41, df6in4)
        return (2, e, e, (addr, 0))
    return (0, sock_for(4, 4, True), sock_for(4, 4, False), (addr, 0))
v4map = {k: tuple(real(False, a) for a in r) for k, r in v4vips.items()}
v6map = {k: tuple(real(True, a) for a in r) for k, r in v6vips.items()}

# ICMP toward the client when a packet does not fit the tunnel: fragmentation needed (RFC 792,
# RFC 1191) for IPv4, Packet Too Big (RFC 4443 3.2) for IPv6, from the load balancer's address.
icmp_on = cfg.get('icmpTooBig', True)
def icmp_sock(fam, proto, src):
    s = socket.socket(fam, socket.SOCK_RAW, proto)
    bpf_attach(s, [(RET, 0, 0, 0)])
    if src: s.bind((src, 0))
    return s
icmp4 = icmp_sock(socket.AF_INET, socket.IPPROTO_ICMP, src4) if icmp_on and v4vips else None
icmp6 = icmp_sock(socket.AF_INET6, socket.IPPROTO_ICMPV6, src6) if icmp_on and v6vips else None
def too_big(room):
    if buf[0] >> 4 == 4:
        ihl = (buf[0] & 15) << 2
        m = bytearray(struct.pack('!BBHHH', 3, 4, 0, 0, room) + bytes(mv[:ihl + 8]))
        c = sum(struct.unpack('!%dH' % (len(m) // 2), m[:len(m) & ~1])) + ((m[-1] << 8) if len(m) & 1 else 0)
        while c >> 16: c = (c & 0xffff) + (c >> 16)
        struct.pack_into('!H', m, 2, ~c & 0xffff)
        icmp4.sendto(m, (socket.inet_ntop(socket.AF_INET, bytes(mv[12:16])), 0))
    else:
        tl = 40 + ((buf[4] << 8) | buf[5])
        m = struct.pack('!BBHI', 2, 0, 0, room) + bytes(mv[:min(tl, 1280 - 48)])
        icmp6.sendto(m, (socket.inet_ntop(socket.AF_INET6, bytes(mv[8:24])), 0))  # the kernel sums ICMPv6

rx = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
rx.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, int(cfg.get('rcvbuf', 8 << 20)))
bpf_attach(rx, prog)
rx.bind((ifname, ETH_P_ALL))

RX, FWD, BADH, BADC, NOTVIP, OVER, BIG, SERR = 0, 1, 5, 6, 7, 8, 9, 10
cnt = [0] * (1 + len(KINDS) + len(DROPS) + 1)
errnos = {}
kstat = [0, 0]
times = [0.0, 0.0]
lock = threading.Lock()
def counters():
    p, d = struct.unpack('II', rx.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    kstat[0] += p; kstat[1] += d
    return {'rx': cnt[RX], 'forwarded': dict(zip(KINDS, cnt[FWD:FWD + 4])), 'dropped': dict(zip(DROPS, cnt[BADH:BADH + len(DROPS)])), 'icmpSent': cnt[ICMP_SENT],
            'sendErrors': dict(errnos), 'kernel': {'packets': kstat[0], 'drops': kstat[1]},
            'firstForwardAt': times[0], 'lastForwardAt': times[1]}
def emit(kind, extra=None):
    with lock:
        o = dict(extra or {}); o[kind] = counters()
        print(json.dumps(o), flush=True)

class Stop(Exception): pass
def on_signal(sig, frame): raise Stop(sig)
def control():
    for line in sys.stdin:
        if line.strip() == 'c': emit('counters')
    os.kill(os.getpid(), signal.SIGTERM)

HFMT = {n: '!%dH' % (n // 2) for n in range(20, 61, 4)}
check = not cfg.get('forwardBadChecksum')
buf = bytearray(65536 + 256)
mv = memoryview(buf)
unpack_from = struct.unpack_from
mono = time.monotonic
crc = zlib.crc32

def pick4(reals, ihl):
    # A flow to one real server; every fragment of a datagram too (ports only when not a fragment).
    key = bytes(mv[12:20]) + bytes(mv[9:10])
    if (buf[6] & 0x3f) == 0 and buf[7] == 0 and buf[9] in (6, 17): key += bytes(mv[ihl:ihl + 4])
    return reals[crc(key) % len(reals)]
def pick6(reals):
    key = bytes(mv[8:40]) + bytes(mv[6:7])
    if buf[6] in (6, 17): key += bytes(mv[40:44])
    return reals[crc(key) % len(reals)]

def forward():
    recv_into = rx.recv_into
    v4get, v6get = v4map.get, v6map.get
    while True:
        n = recv_into(buf)
        cnt[RX] += 1
        if n > mtu:
            cnt[OVER] += 1; continue
        if n >= 20 and buf[0] >> 4 == 4:
            ihl = (buf[0] & 15) << 2
            tl = (buf[2] << 8) | buf[3]
            if ihl < 20 or tl < ihl or tl > n:
                cnt[BADH] += 1; continue
            if check:
                s = sum(unpack_from(HFMT[ihl], buf, 0))
                s = (s & 0xffff) + (s >> 16); s = (s & 0xffff) + (s >> 16)
                if s != 0xffff:
                    cnt[BADC] += 1; continue
            reals = v4get(unpack_from('!I', buf, 16)[0])
            if reals is None:
                cnt[NOTVIP] += 1; continue
            kind, edf, enodf, dst = reals[0] if len(reals) == 1 else pick4(reals, ihl)
            e = edf if buf[6] & 0x40 else enodf
            tos = buf[1]
        elif n >= 40 and buf[0] >> 4 == 6:
            tl = 40 + ((buf[4] << 8) | buf[5])
            if tl > n:
                cnt[BADH] += 1; continue
            reals = v6get(bytes(mv[24:40]))
            if reals is None:
                cnt[NOTVIP] += 1; continue
            kind, enf, efr, dst = reals[0] if len(reals) == 1 else pick6(reals)
            e = enf if tl > 1280 else efr
            tos = ((buf[0] & 15) << 4) | (buf[1] >> 4)
        else:
            cnt[BADH] += 1; continue
        if e[3] != tos:
            e[0].setsockopt(e[1], e[2], tos); e[3] = tos
        try:
            e[0].sendto(mv[:tl], dst)
        except OSError as x:
            if x.errno == errno.EMSGSIZE:
                cnt[BIG] += 1
                if icmp_on:
                    try:
                        too_big(mtu - e[4]); cnt[ICMP_SENT] += 1
                    except OSError: pass
            else:
                cnt[SERR] += 1
                name = errno.errorcode.get(x.errno, str(x.errno)); errnos[name] = errnos.get(name, 0) + 1
            continue
        cnt[FWD + kind] += 1
        t = mono()
        if not times[0]: times[0] = t
        times[1] = t

signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGALRM, on_signal)
signal.setitimer(signal.ITIMER_REAL, float(cfg['maxSeconds']))
why = 'error'
try:
    emit('ready', {'pid': os.getpid()})
    threading.Thread(target=control, daemon=True).start()
    forward()
except Stop as s:
    why = 'time' if s.args[0] == signal.SIGALRM else 'stopped'
finally:
    signal.signal(signal.SIGTERM, signal.SIG_IGN); signal.signal(signal.SIGALRM, signal.SIG_IGN)
    emit('final', {'reason': why})
`;

/**
 * Capture of IP packets in a namespace (python3, standard library). argv[1]: JSON of
 * {ifname, vlan, out (own output instead of received), protos (IPv4 protocols / IPv6 next headers
 * kept, empty = all), srcs (outer sources kept, empty = all), keep (packets returned), maxSeconds}.
 * Prints {"ready": true} once bound, then at the end one line {"count", "kernel", "first", "last",
 * "packets": [hex...]} (the first `keep` packets, cut to their IP length).
 */
export const IP_CAPTURE = PY_BPF + `
import sys, json, signal, os, threading, time
cfg = json.loads(sys.argv[1])
prog = bpf_pkttype_vlan(4 if cfg.get('out') else 0, cfg.get('vlan') or 0)
prog += [(LDW, 0, 0, AD + 0), (JEQ, 'take', 0, 0x0800), (JEQ, 'take', 'drop', 0x86dd), 'drop', (RET, 0, 0, 0), 'take', (RET, 0, 0, 0x40000)]
rx = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
rx.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)
bpf_attach(rx, prog)
rx.bind((cfg['ifname'], 3))
protos = set(cfg.get('protos') or [])
srcs = set(socket.inet_pton(socket.AF_INET6 if ':' in a else socket.AF_INET, a) for a in cfg.get('srcs') or [])
keep = int(cfg.get('keep', 64))
kept = []; count = 0; first = last = 0.0
class Stop(Exception): pass
def on_signal(sig, frame): raise Stop()
def control():
    for line in sys.stdin:
        if line.strip() == 'c': print(json.dumps({'progress': count}), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
buf = bytearray(65536); mv = memoryview(buf); mono = time.monotonic
def take(n):
    global count, first, last
    if n >= 20 and buf[0] >> 4 == 4:
        proto, src, tl = buf[9], bytes(mv[12:16]), (buf[2] << 8) | buf[3]
    elif n >= 40 and buf[0] >> 4 == 6:
        proto, src, tl = buf[6], bytes(mv[8:24]), 40 + ((buf[4] << 8) | buf[5])
        if proto == 44 and n >= 48: proto = buf[40]
    else: return
    if (protos and proto not in protos) or (srcs and src not in srcs): return
    count += 1; last = mono()
    if count == 1: first = last
    if len(kept) < keep: kept.append(bytes(mv[:min(n, tl)]))
signal.signal(signal.SIGTERM, on_signal); signal.signal(signal.SIGALRM, on_signal)
signal.setitimer(signal.ITIMER_REAL, float(cfg['maxSeconds']))
try:
    print(json.dumps({'ready': True}), flush=True)
    threading.Thread(target=control, daemon=True).start()
    while True: take(rx.recv_into(buf))
except Stop: pass
finally:
    signal.signal(signal.SIGTERM, signal.SIG_IGN); signal.signal(signal.SIGALRM, signal.SIG_IGN)
    # What the socket still holds was received before the stop: count it too.
    rx.setblocking(False)
    try:
        while True: take(rx.recv_into(buf))
    except (BlockingIOError, InterruptedError): pass
    p, d = struct.unpack('II', rx.getsockopt(263, 6, 8))
    print(json.dumps({'count': count, 'kernel': {'packets': p, 'drops': d}, 'first': first, 'last': last, 'packets': [k.hex() for k in kept]}), flush=True)
`;

/**
 * Sends raw Ethernet frames (hex, one per line on stdin) from a namespace's interface with an
 * AF_PACKET socket, exactly as given (the peer's tc program still tags them for its VLAN).
 * argv[1]: interface. Prints the number of frames sent.
 */
export const FRAME_SENDER = `
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.bind((sys.argv[1], 0))
n = 0
for line in sys.stdin:
    line = line.strip()
    if line: s.send(bytes.fromhex(line)); n += 1
print(n, flush=True)
`;

/** A VIP and the real servers behind it (a flow hash picks one when there are several). */
export interface LbService { vip: string; reals: string[] }

export interface LbOptions {
  services: LbService[];
  /** The load balancer's own IPv4 address: the outer source toward IPv4 real servers. */
  src4?: string;
  /** The load balancer's own IPv6 address: the outer source toward IPv6 real servers. */
  src6?: string;
  /** Interface inside the namespace (default eth0). */
  ifname?: string;
  /** The peer's VLAN (frames of other VLANs are ignored); 0/absent: no check. */
  vlan?: number;
  /** The process ends by itself after this many seconds (default 60). */
  maxSeconds?: number;
  /** Forward IPv4 packets whose header checksum does not verify (default: counted drop). */
  forwardBadChecksum?: boolean;
  /** Set DF on IPv6-in-IPv4 packets (default clear, RFC 4213 3.2.1). */
  df6in4?: boolean;
  /** Answer a packet that does not fit once encapsulated with ICMP / ICMPv6 to its source (default true). */
  icmpTooBig?: boolean;
  /** Receive buffer of the AF_PACKET socket in bytes (default 8 MB). */
  rcvbuf?: number;
}

export interface LbCounters {
  /** Frames the filter let through and the program read. */
  rx: number;
  forwarded: Record<EncapKind, number>;
  dropped: { badHeader: number; badChecksum: number; notVip: number; oversize: number; tooBig: number; sendError: number };
  /** ICMP "fragmentation needed" / ICMPv6 Packet Too Big messages sent for tooBig drops. */
  icmpSent: number;
  /** sendError by errno name. */
  sendErrors: Record<string, number>;
  /** The AF_PACKET socket's own counters (PACKET_STATISTICS): frames it queued, frames it dropped (buffer full). */
  kernel: { packets: number; drops: number };
  /** Times of the first and last forwarded packet (seconds, the load balancer's monotonic clock; 0 = none yet). */
  firstForwardAt: number;
  lastForwardAt: number;
}

export interface LbFinal extends LbCounters { reason: 'stopped' | 'time' | 'error' }

export interface LoadBalancer {
  /** The python process id (inside the namespace's view it is the same pid). */
  pid: number;
  /** The counters now. */
  counters(ms?: number): Promise<LbCounters>;
  /** Stops it (stdin closed) and returns its final counters. */
  stop(ms?: number): Promise<LbFinal>;
  /** Its final counters once it ends by itself (maxSeconds), without stopping it. */
  finished(ms?: number): Promise<LbFinal>;
}

/** A python3 process in a namespace, its JSON stdout lines and stdin. Killed after `ms`. */
class NsPy {
  readonly lines: string[] = [];
  readonly done: Promise<number | null>;
  err = '';
  private readonly p: ChildProcess;
  private waiters: (() => void)[] = [];

  constructor(ns: string, script: string, args: string[], ms: number) {
    this.p = spawn('ip', ['netns', 'exec', ns, '/usr/bin/python3', '-c', script, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let buf = '';
    this.p.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let k = buf.indexOf('\n'); k >= 0; k = buf.indexOf('\n')) { this.lines.push(buf.slice(0, k)); buf = buf.slice(k + 1); }
      for (const w of this.waiters.splice(0)) w();
    });
    this.p.stderr!.on('data', (d: Buffer) => { this.err += d.toString(); });
    this.p.stdin!.on('error', () => { /* the process is gone: its end says why */ });
    const kill = setTimeout(() => this.p.kill('SIGKILL'), ms);
    this.done = new Promise((resolve) => this.p.on('close', (code) => {
      clearTimeout(kill);
      for (const w of this.waiters.splice(0)) w();
      resolve(code);
    }));
  }

  /** The first line from index `from` on that parses as JSON with key `key` (waits at most `ms`). */
  async json<T>(key: string, from: number, ms: number): Promise<{ value: T; line: Record<string, unknown>; index: number }> {
    const until = Date.now() + ms;
    for (;;) {
      for (let i = from; i < this.lines.length; i++) {
        try {
          const o = JSON.parse(this.lines[i]!) as Record<string, unknown>;
          if (key in o) return { value: o[key] as T, line: o, index: i };
        } catch { /* not a JSON line */ }
      }
      if (this.p.exitCode !== null || this.p.signalCode !== null || Date.now() >= until) {
        throw new Error(`python in namespace: no '${key}' line (exit ${this.p.exitCode ?? this.p.signalCode}): ${this.lines.join(' | ').slice(0, 500)} ${this.err.slice(0, 2000)}`);
      }
      await new Promise<void>((r) => { const t = setTimeout(r, Math.max(1, until - Date.now())); this.waiters.push(() => { clearTimeout(t); r(); }); });
    }
  }

  write(s: string): void { if (this.p.stdin!.writable) this.p.stdin!.write(s); }
  end(): void { this.p.stdin!.end(); }
  kill(): void { this.p.kill('SIGKILL'); }
}

/** Checks an interface offload in a namespace (`ethtool -k`): true when it is on. */
async function offload(ns: string, ifname: string, name: string): Promise<boolean> {
  const r = await nsRun(ns, 'ethtool', ['-k', ifname]);
  const m = new RegExp(`^${name}:\\s+(on|off)`, 'm').exec(r.stdout);
  if (!m) throw new Error(`ethtool -k ${ifname} in ${ns}: no ${name} (${r.stderr.trim()})`);
  return m[1] === 'on';
}

async function ethtoolOff(ns: string, ifname: string, features: string[], check: string[]): Promise<void> {
  const r = await nsRun(ns, 'ethtool', ['-K', ifname, ...features.flatMap((f) => [f, 'off'])]);
  if (r.code !== 0) throw new Error(`ethtool -K ${ifname} ${features.join(' ')} off in ${ns}: ${r.stderr.trim()}`);
  for (const c of check) if (await offload(ns, ifname, c)) throw new Error(`${ns}/${ifname}: ${c} still on`);
}

/**
 * A client of the load balancer must hand it one IP packet per frame: TSO and GSO off on its
 * interface (no superframes; the lab already turns tx checksum offload off on its peers, so
 * TCP/UDP checksums are complete when the frame leaves).
 */
export async function clientOffloadsOff(ns: string, ifname = 'eth0'): Promise<void> {
  await ethtoolOff(ns, ifname, ['tso', 'gso'], ['tcp-segmentation-offload', 'generic-segmentation-offload']);
}

/** The options a lab peer implies for a load balancer on it: interface, VLAN, own addresses. */
export function lbPeerOptions(peer: LabPeer): Pick<LbOptions, 'ifname' | 'vlan' | 'src4' | 'src6'> {
  const o: Pick<LbOptions, 'ifname' | 'vlan' | 'src4' | 'src6'> = { ifname: peer.ifname, vlan: peer.vlan };
  if (peer.ipv4) o.src4 = peer.ipv4.split('/')[0];
  if (peer.ipv6) o.src6 = peer.ipv6.split('/')[0];
  return o;
}

/**
 * The namespace's own kernel also gets the packets to the VIPs (the AF_PACKET socket only reads a
 * copy) and, with forwarding off, must drop them without a word. IPv4 does (ip_error stays silent
 * when the interface does not forward); IPv6 does not: a packet it has no route for is answered
 * with an ICMPv6 Destination Unreachable, no route (RFC 4443 3.1, Linux ip6_pkt_drop), which ends
 * a client's TCP connection attempt at once (ENETUNREACH in SYN-SENT). A blackhole route per VIP
 * (both families, alike) makes the kernel discard them silently; the routes stay with the namespace
 * (`replace`: a later load balancer in it takes them over).
 */
async function blackholeVips(ns: string, vips: string[]): Promise<void> {
  for (const v of vips) {
    const six = v.includes(':');
    const r = await nsRun(ns, 'ip', [six ? '-6' : '-4', 'route', 'replace', 'blackhole', `${v}/${six ? 128 : 32}`]);
    if (r.code !== 0) throw new Error(`load balancer: blackhole route for ${v} in ${ns}: ${r.stderr.trim()}`);
  }
}

/**
 * Starts the load balancer in namespace `ns` (GRO off on its interface first, so it never reads
 * merged frames; a blackhole route per VIP, so its kernel never answers them) and resolves once its sockets are up. A LabPeer for `ns` fills interface, VLAN
 * and own addresses (explicit options win).
 */
export async function startLoadBalancer(ns: string | LabPeer, opts: LbOptions): Promise<LoadBalancer> {
  const o: LbOptions = typeof ns === 'string' ? { ...opts } : { ...lbPeerOptions(ns), ...opts };
  const nsName = typeof ns === 'string' ? ns : ns.ns;
  const ifname = o.ifname ?? 'eth0';
  const maxSeconds = o.maxSeconds ?? 60;
  if (!Array.isArray(o.services) || o.services.length === 0) throw new Error('load balancer: no services');
  if (!(maxSeconds > 0)) throw new Error(`load balancer: bad maxSeconds ${maxSeconds}`);
  await ethtoolOff(nsName, ifname, ['gro'], ['generic-receive-offload']);
  await blackholeVips(nsName, o.services.map((s) => s.vip));
  const cfg = { ...o, ifname, maxSeconds };
  const py = new NsPy(nsName, LB_FORWARDER, [JSON.stringify(cfg)], (maxSeconds + 15) * 1000);
  let ready: { line: Record<string, unknown> };
  try {
    ready = await py.json<LbCounters>('ready', 0, 20_000);
  } catch (e) {
    py.kill();
    throw e;
  }
  let ending: Promise<LbFinal> | null = null;
  const final = (ms: number) => (ending ??= (async () => {
    try {
      const f = await py.json<LbCounters>('final', 0, ms);
      return { ...f.value, reason: f.line.reason as LbFinal['reason'] };
    } finally {
      py.kill();
      await py.done;
    }
  })());
  return {
    pid: ready.line.pid as number,
    async counters(ms = 10_000) {
      const from = py.lines.length;
      py.write('c\n');
      return (await py.json<LbCounters>('counters', from, ms)).value;
    },
    stop(ms = 10_000) {
      py.end();
      return final(ms);
    },
    finished(ms = (maxSeconds + 10) * 1000) {
      return final(ms);
    },
  };
}

export interface CaptureOptions {
  ifname?: string;
  vlan?: number;
  /** Capture the namespace's own output instead of what it receives. */
  out?: boolean;
  /** IPv4 protocols / IPv6 next headers kept (after a Fragment header); absent: all. */
  protos?: number[];
  /** Outer source addresses kept; absent: all. */
  srcs?: string[];
  /** How many packets to return (default 64); all are counted. */
  keep?: number;
  maxSeconds?: number;
}

export interface CaptureResult {
  count: number;
  kernel: { packets: number; drops: number };
  /** Times of the first and last packet counted (seconds, the capture's monotonic clock). */
  first: number;
  last: number;
  /** The first `keep` packets, from their IP header to their IP length. */
  packets: Uint8Array[];
}

export interface Capture {
  /** Packets counted so far. */
  count(ms?: number): Promise<number>;
  /** Stops it (what its socket still holds is counted) and returns the result. */
  stop(ms?: number): Promise<CaptureResult>;
}

/** Captures IP packets received (or sent, `out`) in a namespace; resolves once the socket is bound. */
export async function startCapture(ns: string, opts: CaptureOptions = {}): Promise<Capture> {
  const maxSeconds = opts.maxSeconds ?? 60;
  const cfg = { ifname: opts.ifname ?? 'eth0', vlan: opts.vlan ?? 0, out: !!opts.out, protos: opts.protos ?? [], srcs: opts.srcs ?? [], keep: opts.keep ?? 64, maxSeconds };
  const py = new NsPy(ns, IP_CAPTURE, [JSON.stringify(cfg)], (maxSeconds + 15) * 1000);
  try {
    await py.json('ready', 0, 20_000);
  } catch (e) {
    py.kill();
    throw e;
  }
  return {
    async count(ms = 10_000) {
      const from = py.lines.length;
      py.write('c\n');
      return (await py.json<number>('progress', from, ms)).value;
    },
    async stop(ms = 10_000) {
      py.end();
      try {
        const r = await py.json<number>('count', 0, ms);
        const o = r.line as unknown as Omit<CaptureResult, 'packets'> & { packets: string[] };
        return { ...o, packets: o.packets.map(fromHex) };
      } finally {
        py.kill();
        await py.done;
      }
    },
  };
}

/** Sends raw Ethernet frames from interface `ifname` of namespace `ns` (AF_PACKET); resolves to the number sent. */
export async function sendFrames(ns: string, frames: Uint8Array[], ifname = 'eth0'): Promise<number> {
  const r = await nsRun(ns, '/usr/bin/python3', ['-c', FRAME_SENDER, ifname], { input: frames.map(toHex).join('\n') + '\n', timeout: 30_000 });
  if (r.code !== 0) throw new Error(`sendFrames in ${ns}: exit ${r.code}: ${r.stderr.trim()}`);
  return Number(r.stdout.trim());
}

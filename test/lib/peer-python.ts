/**
 * Kernel peers driven by python3 in the lab's namespaces (never blocking the test's thread): TCP
 * and UDP echo clients that check every byte, a kernel TCP echo server, a connection attempt, and
 * the kernel's own TCP counters of a namespace.
 */
import { spawn, ChildProcess } from 'node:child_process';
import { sh } from './env';

/**
 * TCP echo client: `conns` connections to dst:port, each sending `size` random bytes while reading
 * the echo; with `pause` each stops after half, prints `half` once all halves came back and goes on
 * after a line on stdin; with `progress` > 0 prints `p N` each `progress` bytes received on the
 * first connection; with `rate` > 0 sends at most `rate` bytes per second. Prints one JSON line of
 * per-connection results.
 */
export const TCP_CLIENT = `
import socket, sys, json, threading, hashlib, os, time
dst, port, conns, size, pause, prog, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == '1', int(sys.argv[6]), int(sys.argv[7])
half = size // 2
def pace(t0, o):
    if rate:
        ahead = o / rate - (time.time() - t0)
        if ahead > 0: time.sleep(ahead)
gate = threading.Event()
halves = threading.Semaphore(0)
res = [None] * conns
def run(i):
    t0 = time.time()
    data = os.urandom(size)
    s = socket.create_connection((dst, port), timeout=30)
    lport = s.getsockname()[1]
    def send():
        mv = memoryview(data)
        end = half if pause else size
        for o in range(0, end, 65536): pace(t0, o); s.sendall(mv[o:min(o + 65536, end)])
        if pause:
            gate.wait(60)
            for o in range(half, size, 65536): s.sendall(mv[o:min(o + 65536, size)])
        s.shutdown(socket.SHUT_WR)
    th = threading.Thread(target=send); th.start()
    h = hashlib.sha256(); n = 0; same = True; mark = prog
    try:
        while True:
            d = s.recv(262144)
            if not d: break
            if data[n:n + len(d)] != d: same = False
            h.update(d); n += len(d)
            if pause and n >= half and n - len(d) < half: halves.release()
            if prog and i == 0 and n >= mark:
                print('p %d' % n, flush=True); mark += prog
    except Exception as e:
        res[i] = {'port': lport, 'error': str(e), 'recv': n}; s.close(); return
    th.join(); s.close()
    res[i] = {'port': lport, 'sent': size, 'recv': n, 'same': same and n == size and h.hexdigest() == hashlib.sha256(data).hexdigest(), 'ms': int((time.time() - t0) * 1000)}
ths = [threading.Thread(target=run, args=(i,)) for i in range(conns)]
for t in ths: t.start()
if pause:
    for _ in range(conns): halves.acquire(timeout=30)
    print('half', flush=True)
    sys.stdin.readline()
    gate.set()
for t in ths: t.join(90)
print(json.dumps(res), flush=True)
`;

/** UDP echo client: `flows` sockets, `n` datagrams each, one at a time; checks each echo and that no extra one comes. */
export const UDP_CLIENT = `
import socket, sys, json, os
dst, port, flows, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(flows)]
r = {'ok': 0, 'bad': 0, 'lost': 0, 'extra': 0}
for s in socks: s.settimeout(1.0)
for i in range(n):
    for k, s in enumerate(socks):
        msg = ('%d-%d-' % (k, i)).encode() + os.urandom(16 + (i * 37 + k * 11) % 1200)
        s.sendto(msg, (dst, port))
        try:
            d, a = s.recvfrom(4096)
            r['ok' if d == msg and a == (dst, port) else 'bad'] += 1
        except socket.timeout:
            r['lost'] += 1
for s in socks:
    s.settimeout(0.2)
    try:
        while True: s.recvfrom(4096); r['extra'] += 1
    except socket.timeout: pass
print(json.dumps(r), flush=True)
`;

/**
 * Kernel TCP echo server: echoes each connection until its end, then ends its own side; after
 * `maxc` connections (or `tmo` seconds without one) prints what each connection brought (remote
 * port, bytes, sha256).
 */
export const ECHO_SERVER = `
import socket, sys, json, threading, hashlib
addr, port, maxc, tmo = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l.bind((addr, port)); l.listen(16); l.settimeout(tmo)
print('listening', flush=True)
out = []; ths = []
def serve(c, a):
    h = hashlib.sha256(); n = 0; c.settimeout(tmo)
    try:
        while True:
            d = c.recv(65536)
            if not d: break
            h.update(d); n += len(d); c.sendall(d)
        c.shutdown(socket.SHUT_WR)
        out.append({'port': a[1], 'n': n, 'sha': h.hexdigest()})
    except Exception as e:
        out.append({'port': a[1], 'error': str(e)})
    c.close()
try:
    for _ in range(maxc):
        c, a = l.accept(); t = threading.Thread(target=serve, args=(c, a)); t.start(); ths.append(t)
except socket.timeout: pass
for t in ths: t.join(tmo)
print(json.dumps(out), flush=True)
`;

/** TCP connection attempt answered by a reset (RFC 9293 3.10.7.1: a closed port answers a SYN with RST): prints the outcome. */
export const TCP_REFUSED = `
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2); print('connected')
except ConnectionRefusedError: print('refused')
except socket.timeout: print('timeout')
except OSError as e: print('error', e)
`;

/** A python3 process in network namespace `ns`: its stdout lines, stdin, and its end (killed after `ms`). */
export class Py {
  readonly lines: string[] = [];
  readonly done: Promise<{ code: number | null; out: string; err: string }>;
  private readonly p: ChildProcess;
  private waiters: (() => void)[] = [];
  private err = '';

  constructor(ns: string, script: string, args: (string | number)[], ms: number) {
    this.p = spawn('ip', ['netns', 'exec', ns, '/usr/bin/python3', '-c', script, ...args.map(String)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let buf = '';
    this.p.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let k = buf.indexOf('\n'); k >= 0; k = buf.indexOf('\n')) {
        this.lines.push(buf.slice(0, k));
        buf = buf.slice(k + 1);
      }
      for (const w of this.waiters.splice(0)) w();
    });
    this.p.stderr!.on('data', (d: Buffer) => { this.err += d.toString(); });
    const kill = setTimeout(() => this.p.kill('SIGKILL'), ms);
    this.done = new Promise((resolve) => this.p.on('close', (code) => {
      clearTimeout(kill);
      for (const w of this.waiters.splice(0)) w();
      resolve({ code, out: this.lines.join('\n'), err: this.err });
    }));
  }

  /** The first line matching `re` (waits at most `ms`). */
  async line(re: RegExp, ms: number): Promise<string> {
    const until = Date.now() + ms;
    for (;;) {
      const l = this.lines.find((x) => re.test(x));
      if (l !== undefined) return l;
      if (this.p.exitCode !== null || Date.now() >= until) throw new Error(`python: no line matching ${re} (exit ${this.p.exitCode}): ${this.lines.join(' | ')} ${this.err}`);
      await new Promise<void>((r) => { const t = setTimeout(r, Math.max(1, until - Date.now())); this.waiters.push(() => { clearTimeout(t); r(); }); });
    }
  }

  write(s: string): void { this.p.stdin!.write(s); }
  kill(): void { this.p.kill('SIGKILL'); }

  /** The last stdout line as JSON, once the process ended with status 0. */
  async json<T>(): Promise<T> {
    const r = await this.done;
    if (r.code !== 0) throw new Error(`python exited ${r.code}: ${r.out} ${r.err}`);
    return JSON.parse(this.lines[this.lines.length - 1]!) as T;
  }
}

export interface ConnResult { port: number; sent?: number; recv: number; same?: boolean; ms?: number; error?: string }
export interface UdpResult { ok: number; bad: number; lost: number; extra: number }

/** The kernel's TCP counters in namespace `ns` (its /proc/net/snmp and /proc/net/netstat), as 'Tcp.ActiveOpens', 'TcpExt.TCPDSACKOldSent'... */
export function nsTcpCounters(ns: string): Record<string, number> {
  const out: Record<string, number> = {};
  const text = sh('cat', ['/proc/net/snmp', '/proc/net/netstat'], { ns });
  const lines = text.split('\n');
  for (let i = 0; i + 1 < lines.length; i++) {
    const [h, v] = [lines[i]!.split(/\s+/), lines[i + 1]!.split(/\s+/)];
    if (h[0] !== v[0] || !/^(Tcp|TcpExt):$/.test(h[0]!) || !/^-?\d+$/.test(v[1] ?? '')) continue;
    for (let k = 1; k < h.length; k++) out[`${h[0]!.slice(0, -1)}.${h[k]}`] = Number(v[k]);
  }
  return out;
}

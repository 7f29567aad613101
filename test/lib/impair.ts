/**
 * TCP transfers between an xdpstack (AF_XDP on a lab device) and Linux peers through the lab's
 * impairment (random loss/corruption in tc BPF on the peers' switch ports). Shared by
 * test/impair-lab.test.ts (short) and the soak script (long).
 *
 * The stack side runs net-shaped servers in one VS per peer: a sink (5001: hashes what it gets,
 * answers "<bytes> <sha256>\n" after the peer's FIN), a source (5002: reads "<bytes>\n", sends that
 * many bytes of a fixed random buffer, then FIN) and an echo server (7). The peer side is a
 * python3 client inside the peer's namespace; every transfer has a deadline and, when it misses
 * it, fails with the state of the stack's connections.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { createStack, Stack } from '../../stack/stack';
import { labImpair, labImpairment, Lab, PeerImpairment } from '../../stack/lab/lab';
import type { Socket } from '../../stack/api/net';
import { TCP_STATE_NAMES } from '../../protocols/tcp/types';
import { DROP_NAMES } from '../../protocols/drop';
import * as assert from 'uvu/assert';
import { nsRun } from './rig';

export const SINK_PORT = 5001;
export const SOURCE_PORT = 5002;
export const ECHO_PORT = 7;
/** The source server's data: the first N bytes of this buffer. */
export const SOURCE_MAX = 16 << 20;

const PEER_PY = String.raw`
import socket, sys, time, hashlib, threading
mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
arg = sys.argv[4]
def conn():
    for i in range(100):
        s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
        try:
            s.connect((host, port)); return s
        except (ConnectionRefusedError, OSError) as e:
            s.close(); time.sleep(0.1)
    raise SystemExit('connect failed')
def drain(s):
    h = hashlib.sha256(); n = 0
    while True:
        d = s.recv(262144)
        if not d: break
        h.update(d); n += len(d)
    return n, h.hexdigest()
s = conn()
if mode == 'send':
    with open(arg, 'rb') as f: data = f.read()
    s.sendall(data); s.shutdown(socket.SHUT_WR)
    r = b''
    while True:
        d = s.recv(200)
        if not d: break
        r += d
    print(r.decode().strip(), end='')
elif mode == 'recv':
    s.sendall(('%s\n' % arg).encode()); s.shutdown(socket.SHUT_WR)
    n, h = drain(s); print('%d %s' % (n, h), end='')
elif mode == 'echo':
    with open(arg, 'rb') as f: data = f.read()
    def w():
        s.sendall(data); s.shutdown(socket.SHUT_WR)
    t = threading.Thread(target=w); t.start()
    n, h = drain(s); t.join(); print('%d %s' % (n, h), end='')
`;

export interface PeerVs { peer: number; vs: string; host: string }

export interface TransferResult {
  kind: 'to-stack' | 'from-stack' | 'echo';
  peer: number;
  bytes: number;
  ms: number;
  /** Data segments the stack retransmitted on this transfer's connection. */
  retransSegs: number;
  rtoExpirations: number;
}

export class TransferError extends Error {}

interface Live { sock: Socket; role: string; opened: number }

/** A stack on the lab's device with one VS per peer (the peer's address with .1) and the three servers. */
export class ImpairRig {
  readonly stack: Stack;
  readonly vss: PeerVs[];
  readonly source = randomBytes(SOURCE_MAX);
  readonly tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xl-impair-'));
  private readonly live = new Set<Live>();
  /** Retransmission figures of connections closed since a transfer took its own (bounded). */
  private finished: { role: string; remote: string; retransSegs: number; rtoExpirations: number }[] = [];
  private readonly script = path.join(this.tmp, 'peer.py');
  private seq = 0;
  private readonly ipv6: boolean;

  /** `ipv6`: the transfers go over IPv6 (the lab's peers need IPv6 addresses). */
  constructor(readonly lab: Lab, opts: { frameCount?: number; ipv6?: boolean } = {}) {
    fs.writeFileSync(this.script, PEER_PY);
    this.ipv6 = !!opts.ipv6;
    this.vss = lab.peers.map((p, i) => {
      const host = opts.ipv6 ? p.stackIpv6!.split('/')[0]! : p.ipv4!.split('/')[0]!.replace(/\.\d+$/, '.1');
      return { peer: i, vs: `p${i}`, host };
    });
    this.stack = createStack({
      name: 'impair',
      control: false,
      ...(opts.ipv6 ? { engine: { dadTransmits: 0 } } : {}),
      devices: [{ name: lab.stackDevice, driver: 'afxdp', frameCount: opts.frameCount ?? 4096 }],
      virtualServers: lab.peers.map((p, i) => {
        const [addr, len] = p.ipv4!.split('/');
        const addresses = [`${addr!.replace(/\.\d+$/, '.1')}/${len}`, ...(opts.ipv6 ? [p.stackIpv6!] : [])];
        return { name: `p${i}`, links: [{ device: lab.stackDevice, ...(p.vlan ? { vlan: p.vlan } : {}), addresses }] };
      }),
    }, { log: () => {} });
    this.stack.start();
    for (const v of this.vss) {
      const h = this.stack.vs(v.vs);
      // Half-open allowed: the peer's FIN ends only its direction (the source keeps sending).
      h.createServer({ allowHalfOpen: true }, (s) => this.sink(s)).listen(SINK_PORT);
      h.createServer({ allowHalfOpen: true }, (s) => this.sourceServer(s)).listen(SOURCE_PORT);
      h.createServer({ allowHalfOpen: true }, (s) => this.echoServer(s)).listen(ECHO_PORT);
    }
  }

  private track(sock: Socket, role: string): void {
    const l: Live = { sock, role, opened: Date.now() };
    this.live.add(l);
    const stats = sock.connection?.conn.stats;
    const remote = sock.remoteAddress;
    sock.on('error', () => {});
    sock.on('close', () => {
      this.live.delete(l);
      if (stats) this.finished.push({ role, remote: remote ?? '', retransSegs: stats.retransSegs, rtoExpirations: stats.rtoExpirations });
      if (this.finished.length > 64) this.finished.splice(0, this.finished.length - 64);
    });
  }

  private sink(s: Socket): void {
    this.track(s, 'sink');
    const h = createHash('sha256');
    let n = 0;
    s.on('data', (d: Buffer) => { h.update(d); n += d.length; });
    s.on('end', () => s.end(`${n} ${h.digest('hex')}\n`));
  }

  private echoServer(s: Socket): void {
    this.track(s, 'echo');
    s.on('data', (d: Buffer) => {
      if (!s.write(d)) { s.pause(); s.once('drain', () => s.resume()); }
    });
    s.on('end', () => s.end());
  }

  private sourceServer(s: Socket): void {
    this.track(s, 'source');
    let line = '';
    let started = false;
    s.on('data', (d: Buffer) => {
      if (started) return;
      line += d.toString('latin1');
      const nl = line.indexOf('\n');
      if (nl < 0) { if (line.length > 32) s.destroy(); return; }
      started = true;
      const n = Number(line.slice(0, nl));
      if (!Number.isInteger(n) || n < 0 || n > SOURCE_MAX) { s.destroy(); return; }
      let off = 0;
      const pump = (): void => {
        while (off < n) {
          const end = Math.min(n, off + 65536);
          const ok = s.write(this.source.subarray(off, end));
          off = end;
          if (!ok) { s.once('drain', pump); return; }
        }
        s.end();
      };
      pump();
    });
    s.on('end', () => { if (!started) s.end(); });
  }

  /** Stack-side view of the open connections (for a stall report). */
  describe(): string {
    const out: string[] = [];
    for (const l of this.live) {
      const e = l.sock.connection;
      if (!e) { out.push(`${l.role}: no connection`); continue; }
      const c = e.conn as unknown as Record<string, unknown> & { state: number; stats: Record<string, number> };
      const pick = (k: string) => (typeof c[k] === 'number' ? `${k}=${c[k]}` : '');
      out.push(`${l.role} ${l.sock.remoteAddress}:${l.sock.remotePort} ${TCP_STATE_NAMES[c.state]} age ${Date.now() - l.opened} ms ` +
        `read ${l.sock.bytesRead} written ${l.sock.bytesWritten} ` +
        ['sndUna', 'sndNxt', 'sndMax', 'sndWnd', 'rcvNxt', 'rcvAdv', 'rcvWnd'].map(pick).filter(Boolean).join(' ') +
        ` stats ${JSON.stringify(c.stats)}`);
    }
    return out.join('\n    ') || '(no open connection)';
  }

  /** Drops by reason, summed over the device and every VS. */
  drops(): Record<string, number> {
    const out: Record<string, number> = {};
    const add = (d: Float64Array) => { for (let i = 1; i < d.length; i++) if (d[i]) out[DROP_NAMES[i]!] = (out[DROP_NAMES[i]!] ?? 0) + d[i]!; };
    for (const dev of this.stack.engine.devices) add(dev.counters.drops);
    for (const v of this.vss) add(this.stack.vs(v.vs).raw.counters.drops);
    return out;
  }

  private async runPeer(kind: TransferResult['kind'], peer: number, bytes: number, deadlineMs: number): Promise<TransferResult> {
    const v = this.vss[peer]!;
    const ns = this.lab.peers[peer]!.ns;
    const t0 = Date.now();
    let args: string[];
    let want: string;
    let file: string | null = null;
    if (kind === 'from-stack') {
      args = ['recv', v.host, String(SOURCE_PORT), String(bytes)];
      want = `${bytes} ${createHash('sha256').update(this.source.subarray(0, bytes)).digest('hex')}`;
    } else {
      const data = randomBytes(bytes);
      file = path.join(this.tmp, `data-${this.seq++}`);
      fs.writeFileSync(file, data);
      args = [kind === 'echo' ? 'echo' : 'send', v.host, String(kind === 'echo' ? ECHO_PORT : SINK_PORT), file];
      want = `${bytes} ${createHash('sha256').update(data).digest('hex')}`;
    }
    const r = await nsRun(ns, '/usr/bin/python3', [this.script, ...args], { timeout: deadlineMs });
    const ms = Date.now() - t0;
    if (file) fs.rmSync(file, { force: true });
    const what = `${kind} ${bytes} B with peer ${peer}`;
    if (r.code !== 0 || ms >= deadlineMs) {
      const stalled = ms >= deadlineMs - 50;
      throw new TransferError(`${what}: ${stalled ? `STALLED (not done after ${deadlineMs} ms)` : `peer failed (exit ${r.code}): ${r.stderr.trim().slice(-400)}`}\n` +
        `    stack connections: ${this.describe()}\n    impairment: ${JSON.stringify(this.impairment(peer))}`);
    }
    if (r.stdout.trim() !== want) {
      throw new TransferError(`${what}: NOT byte-exact: got '${r.stdout.trim()}', want '${want}'\n    impairment: ${JSON.stringify(this.impairment(peer))}`);
    }
    // The connection's retransmission figures (the stack side closes just after the peer).
    // Each peer runs one transfer at a time, so (server role, peer address) names the connection.
    const role = kind === 'to-stack' ? 'sink' : kind === 'from-stack' ? 'source' : 'echo';
    // The servers listen on :: (no host), so an IPv4 peer is seen IPv4-mapped.
    const p = this.lab.peers[peer]!;
    const addr = this.ipv6 ? p.ipv6!.split('/')[0]! : `::ffff:${p.ipv4!.split('/')[0]!}`;
    let st = { retransSegs: 0, rtoExpirations: 0 };
    for (let i = 0; i < 100; i++) {
      const k = this.finished.findIndex((f) => f.role === role && f.remote === addr);
      if (k >= 0) { st = this.finished[k]!; this.finished.splice(k, 1); break; }
      await new Promise((res) => setTimeout(res, 20));
    }
    return { kind, peer, bytes, ms, retransSegs: st.retransSegs, rtoExpirations: st.rtoExpirations };
  }

  /** The peer sends `bytes` to the stack's sink; the stack's hash must match. */
  toStack(peer: number, bytes: number, deadlineMs: number): Promise<TransferResult> { return this.runPeer('to-stack', peer, bytes, deadlineMs); }
  /** The stack's source sends `bytes` to the peer; the peer's hash must match. */
  fromStack(peer: number, bytes: number, deadlineMs: number): Promise<TransferResult> { return this.runPeer('from-stack', peer, bytes, deadlineMs); }
  /** The peer sends `bytes` to the echo service while reading them back (both directions at once). */
  echo(peer: number, bytes: number, deadlineMs: number): Promise<TransferResult> { return this.runPeer('echo', peer, bytes, deadlineMs); }

  impairment(peer?: number): PeerImpairment[] {
    const all = labImpairment(this.lab.prefix);
    return peer === undefined ? all : all.filter((p) => p.peer === peer);
  }

  setImpair(loss: number, corrupt: number, peer?: number): void {
    labImpair(this.lab.prefix, { loss, corrupt, peer, resetCounters: true });
  }

  /** Waits until no frame is held and returns the pool's totals. */
  async poolSettled(): Promise<ReturnType<Stack['engine']['devices'][0]['pool']['check']>> {
    const pool = this.stack.engine.devices[0]!.pool;
    for (let i = 0; i < 200 && pool.check().held !== 0; i++) await new Promise((r) => setTimeout(r, 10));
    return pool.check();
  }

  close(): void {
    try { this.stack.close(); } finally { fs.rmSync(this.tmp, { recursive: true, force: true }); }
  }
}

/** A Linux peer's TCP counters (the Tcp: lines of /proc/net/snmp in its namespace). */
export async function peerTcpCounters(ns: string): Promise<Record<string, number>> {
  const r = await nsRun(ns, 'cat', ['/proc/net/snmp']);
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('Tcp:'));
  if (lines.length < 2) throw new Error(`no Tcp lines in /proc/net/snmp of ${ns}`);
  const names = lines[0]!.split(/\s+/);
  const vals = lines[1]!.split(/\s+/);
  const out: Record<string, number> = {};
  names.forEach((n, i) => { if (i > 0) out[n] = Number(vals[i]); });
  return out;
}

/** A Linux peer's TCP checksum-error counter (TcpInCsumErrors). */
export async function peerCsumErrors(ns: string): Promise<number> {
  const c = await peerTcpCounters(ns);
  if (c.InCsumErrors === undefined) throw new Error('no InCsumErrors in /proc/net/snmp');
  return c.InCsumErrors;
}

/**
 * 1 % corruption + 1 % loss both ways on every peer: 2 MB to and from the stack per peer,
 * byte-exact, and every corrupted frame caught by a checksum (a flipped bit in a TCP segment always
 * fails it, RFC 9293 3.1): by the stack (tcp-bad-checksum) for frames from the peers, by the peers'
 * kernels (TcpInCsumErrors) for frames toward them. The transfers' figures go into `results`.
 */
export async function corruptionCaught(rig: ImpairRig, results: TransferResult[]): Promise<void> {
  const lab = rig.lab;
  rig.setImpair(0.01, 0.01);
  const drops0 = rig.drops()['tcp-bad-checksum'] ?? 0;
  const peerErr0 = await Promise.all(lab.peers.map((p) => peerCsumErrors(p.ns)));
  for (let peer = 0; peer < lab.peers.length; peer++) {
    results.push(await rig.toStack(peer, 2 << 20, 60_000));
    results.push(await rig.fromStack(peer, 2 << 20, 60_000));
  }
  const imp = rig.impairment();
  const badAtStack = (rig.drops()['tcp-bad-checksum'] ?? 0) - drops0;
  const corruptedOut = imp.reduce((n, p) => n + p.out.corrupted, 0);
  for (const p of imp) assert.ok(p.in.corrupted > 0 && p.out.corrupted > 0, `peer ${p.peer} corrupted both ways: ${JSON.stringify(p)}`);
  assert.ok(badAtStack >= 1 && badAtStack <= corruptedOut, `stack tcp-bad-checksum ${badAtStack}, corrupted toward the stack ${corruptedOut}`);
  const peerErr = await Promise.all(lab.peers.map((p) => peerCsumErrors(p.ns)));
  lab.peers.forEach((_, i) => {
    const got = peerErr[i]! - peerErr0[i]!;
    assert.ok(got >= 1 && got <= imp[i]!.in.corrupted, `peer ${i} TcpInCsumErrors +${got}, corrupted toward it ${imp[i]!.in.corrupted}`);
  });
}

/**
 * TCP conformance against a Linux peer over AF_XDP (lab), with segments crafted by scapy in the
 * peer's namespace:
 * - RFC 9293 3.10.7.2: a listening port drops a bare FIN, data without ACK and a segment with no
 *   flags (no answer at all), drops SYN+FIN (no SYN-ACK), answers an ACK with <SEQ=SEG.ACK><RST>;
 *   a closed port answers the bare FIN with <SEQ=0><ACK=SEG.SEQ+1><RST,ACK> (3.10.7.1).
 * - RFC 9293 3.7.1 (MUST-15): an IPv6 SYN without an MSS option gets segments of at most 1220
 *   bytes (the IPv6 default), while a kernel client over the same path, which offers 1440, is
 *   sent 1428-byte segments (1440 less the timestamp option).
 * - RFC 5961 3.2 / 4.2 on a Linux client's live connection: a RST in the window but not at RCV.NXT
 *   and a SYN get a challenge ACK (<SEQ=SND.NXT><ACK=RCV.NXT>) and the connection goes on; a RST at
 *   RCV.NXT resets it, and the client's next segment is answered with a RST (ECONNRESET there).
 * The crafted IPv6 connection comes from an on-link address the peer kernel does not own: our
 * segments reach the peer's MAC (a passive open answers the way the SYN came), scapy sees them on
 * the wire and the kernel drops them instead of resetting a connection it knows nothing of.
 * Privileged: runs as root (always in CI).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { canRunPrivileged, labPrefix } from './lib/env';
import { labDown, labUp, Lab } from '../stack/lab/lab';
import { nsRun } from './lib/rig';
import { addressesPreferred, framesAccounted as accounted, privilegedTest } from './lib/lab-stack';
import { createStack, Stack } from '../stack/stack';
import type { Socket } from '../stack/api/net';

const PREFIX = labPrefix('k1');
const privileged = canRunPrivileged();
const ptest = privilegedTest(privileged);
const V4 = '10.1.1.1';
const PEER4 = '10.1.1.2';
const V6 = 'fd00:91::1';
const PEER6 = 'fd00:91::2';
/** On the peer's link, owned by no one: scapy's source for the crafted IPv6 connection. */
const SPOOF6 = 'fd00:91::77';
const PORT = 7100;
const CLOSED = 7101;
const ECHO = 7102;
let lab: Lab;
let stack: Stack;
/** Our send MSS of each accepted connection when its "go" came, by the peer's port. */
const mssAt = new Map<number, number | undefined>();

if (privileged) {
  test.before(async () => {
    lab = labUp({ prefix: PREFIX, peers: [{ vlan: 91, ipv4: `${PEER4}/24`, ipv6: `${PEER6}/64` }] });
    stack = createStack({
      name: 'tcp-rfc-lab', control: false,
      devices: [{ name: lab.stackDevice, driver: 'afxdp', frameCount: 4096 }],
      virtualServers: [{ name: 'v', links: [{ name: 'l91', device: lab.stackDevice, vlan: 91, addresses: [`${V4}/24`, `${V6}/64`] }] }],
    }, { log: () => {} });
    stack.start();
    await addressesPreferred(stack);
    // The server: answers "go" with 6000 bytes and keeps the connection open.
    stack.vs('v').createServer((s: Socket) => {
      s.on('data', (d: Buffer) => {
        if (!d.toString().includes('go')) return;
        mssAt.set(s.remotePort!, s.tcpInfo()?.mss);
        s.write(Buffer.alloc(6000, 0x61));
      });
      s.on('error', () => {});
    }).listen(PORT);
    stack.vs('v').createServer((s: Socket) => { s.on('error', () => {}); s.pipe(s); }).listen(ECHO);
  });
  test.after(() => {
    try { stack?.close(); } finally { labDown(PREFIX); }
  });
}

const drops = (name: string): number => stack.engine.vs('v').counters.toJSON().drops.reasons[name] ?? 0;

/** Runs a scapy script in the peer's namespace; it prints one JSON line. */
async function scapy(lines: string[], timeout = 30000): Promise<Record<string, unknown>> {
  const r = await nsRun(lab.peers[0]!.ns, '/usr/bin/python3', ['-c', lines.join('\n')], { timeout });
  assert.is(r.code, 0, r.stdout + r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

ptest('LISTEN (RFC 9293 3.10.7.2): FIN, data without ACK, no flags and SYN+FIN get nothing; an ACK gets RST; a closed port RSTs the FIN', async () => {
  const noAck = drops('tcp-no-ack');
  const badFlags = drops('tcp-bad-flags');
  const out = await scapy([
    'import json',
    'from scapy.all import IP, TCP, Raw, sr1, conf',
    'conf.verb = 0',
    `d, p, c = "${V4}", ${PORT}, ${CLOSED}`,
    'def ask(pkt):',
    '    r = sr1(pkt, timeout=1.5)',
    '    return None if r is None or TCP not in r else {"flags": int(r[TCP].flags), "seq": int(r[TCP].seq), "ack": int(r[TCP].ack)}',
    'o = {}',
    'o["fin"] = ask(IP(dst=d)/TCP(sport=43001, dport=p, flags="F", seq=100))',
    'o["data"] = ask(IP(dst=d)/TCP(sport=43002, dport=p, flags="P", seq=100)/Raw(b"x"*20))',
    'o["none"] = ask(IP(dst=d)/TCP(sport=43003, dport=p, flags=0, seq=100))',
    'o["synfin"] = ask(IP(dst=d)/TCP(sport=43004, dport=p, flags="SF", seq=100, options=[("MSS", 1460)]))',
    'o["ack"] = ask(IP(dst=d)/TCP(sport=43005, dport=p, flags="A", seq=100, ack=4242))',
    'o["closed"] = ask(IP(dst=d)/TCP(sport=43006, dport=c, flags="F", seq=100))',
    'print(json.dumps(o))',
  ]);
  assert.is(out.fin, null, 'bare FIN: no answer');
  assert.is(out.data, null, 'data without ACK: no answer');
  assert.is(out.none, null, 'no flags: no answer');
  assert.is(out.synfin, null, 'SYN+FIN: no SYN-ACK');
  assert.equal(out.ack, { flags: 0x04, seq: 4242, ack: 0 }, 'ACK to a listener: <SEQ=SEG.ACK><CTL=RST>');
  assert.equal(out.closed, { flags: 0x14, seq: 0, ack: 101 }, 'FIN to a closed port: <SEQ=0><ACK=SEG.SEQ+1><CTL=RST,ACK>');
  assert.is(drops('tcp-no-ack') - noAck, 3);
  assert.is(drops('tcp-bad-flags') - badFlags, 1);
  await accounted(stack);
});

ptest('MSS (RFC 9293 3.7.1): an IPv6 SYN without MSS gets at most 1220-byte segments; a Linux client that sends 1440 gets 1440 less its timestamps', async () => {
  const ns = lab.peers[0]!.ns;
  const out = await scapy([
    'import json, time',
    'from scapy.all import Ether, IPv6, TCP, Raw, AsyncSniffer, sendp, conf',
    'conf.verb = 0',
    `d, src, p, sp, mac = "${V6}", "${SPOOF6}", ${PORT}, 43100, "${lab.stackMac}"`,
    // Straight to the stack's MAC: no neighbor discovery for an address no one owns.
    'def send(pkt): sendp(Ether(dst=mac)/pkt, iface="eth0")',
    'got = []',
    'sn = AsyncSniffer(iface="eth0", store=False, prn=got.append, lfilter=lambda x: IPv6 in x and TCP in x and x[TCP].sport == p and x[TCP].dport == sp)',
    'sn.start(); time.sleep(0.5)',
    'send(IPv6(src=src, dst=d)/TCP(sport=sp, dport=p, flags="S", seq=1000, window=65535))',
    'for _ in range(30):',
    '    if any(int(x[TCP].flags) & 0x12 == 0x12 for x in got): break',
    '    time.sleep(0.1)',
    'sa = [x for x in got if int(x[TCP].flags) & 0x12 == 0x12]',
    'o = {"synack": len(sa)}',
    'if sa:',
    '    s = sa[0][TCP]',
    '    o["mssOffered"] = dict((k, v) for k, v in s.options if k == "MSS").get("MSS")',
    '    send(IPv6(src=src, dst=d)/TCP(sport=sp, dport=p, flags="PA", seq=1001, ack=s.seq + 1, window=65535)/Raw(b"go"))',
    '    time.sleep(1.5)',
    '    o["lens"] = [len(bytes(x[TCP].payload)) for x in got if len(bytes(x[TCP].payload)) > 0]',
    '    o["rst"] = sum(1 for x in got if int(x[TCP].flags) & 0x04)',
    '    send(IPv6(src=src, dst=d)/TCP(sport=sp, dport=p, flags="R", seq=1003))',
    'sn.stop()',
    'print(json.dumps(o))',
  ]);
  assert.is(out.synack, 1, `SYN-ACK received (drops: ${JSON.stringify(stack.engine.vs('v').counters.toJSON().drops.reasons)}, ${JSON.stringify(stack.engine.devices[0]!.counters.toJSON().drops.reasons)})`);
  assert.is(out.mssOffered, 1440, 'our MSS: link MTU 1500 less 60');
  const lens = out.lens as number[];
  assert.ok(lens.length >= 5, `data segments: ${lens.join(',')}`);
  assert.ok(lens.every((n) => n <= 1220), `every segment within the IPv6 default MSS: ${lens.join(',')}`);
  assert.is(Math.max(...lens), 1220, `full segments of 1220: ${lens.join(',')}`);
  assert.is(out.rst, 0, 'no reset on the way');

  // A Linux client (MSS 1440 offered) over the same path: our send MSS is its 1440 less the
  // timestamp option, read while the connection is open.
  const k = await nsRun(ns, '/usr/bin/python3', ['-c', [
    'import socket',
    `s = socket.create_connection(("${V6}", ${PORT}), timeout=5)`,
    's.sendall(b"go"); n = 0',
    'while n < 6000: n += len(s.recv(65536))',
    'print(s.getsockname()[1], n); s.close()',
  ].join('\n')], { timeout: 20000 });
  assert.is(k.code, 0, k.stdout + k.stderr);
  const [kport, kn] = k.stdout.trim().split(' ').map(Number);
  assert.is(kn, 6000);
  assert.is(mssAt.get(kport!), 1440 - 12, 'Linux client: its MSS less the timestamp option');
  assert.is(mssAt.get(43100), 1220, 'crafted client without MSS: the IPv6 default');
  await accounted(stack);
});

ptest('RFC 5961 against a Linux client: in-window RST and SYN get a challenge ACK and the connection lives; an exact RST resets it', async () => {
  const out = await scapy([
    'import json, socket, time',
    'from scapy.all import IP, TCP, AsyncSniffer, send, conf',
    'conf.verb = 0',
    `d, p = "${V4}", ${ECHO}`,
    'pk = []',
    'sn = AsyncSniffer(iface="eth0", store=False, prn=pk.append, lfilter=lambda x: IP in x and TCP in x and p in (x[TCP].sport, x[TCP].dport))',
    'sn.start(); time.sleep(0.5)',
    's = socket.create_connection((d, p), timeout=3)',
    'lp = s.getsockname()[1]',
    'def echo(b):',
    '    s.sendall(b); r = b""',
    '    while len(r) < len(b): r += s.recv(100)',
    '    return r == b',
    'def ours(): return [x for x in list(pk) if x[IP].src == d and x[TCP].sport == p and x[TCP].dport == lp]',
    'def since(n): return [{"flags": int(x[TCP].flags), "seq": int(x[TCP].seq), "ack": int(x[TCP].ack), "len": len(bytes(x[TCP].payload))} for x in ours()[n:]]',
    'o = {"echo0": echo(b"hello")}',
    'time.sleep(0.3)',
    'last = ours()[-1][TCP]; nxt = int(last.ack); o["nxt"] = nxt; o["sndnxt"] = int(last.seq) + len(bytes(last.payload))',
    'n = len(ours())',
    'send(IP(dst=d)/TCP(sport=lp, dport=p, flags="R", seq=nxt + 100))',
    'time.sleep(0.4); o["rst"] = since(n)',
    'o["echo1"] = echo(b"again")',
    'time.sleep(0.3); n = len(ours())',
    'send(IP(dst=d)/TCP(sport=lp, dport=p, flags="S", seq=(nxt + 5000) % (1 << 32)))',
    'time.sleep(0.4); o["syn"] = since(n)',
    'o["echo2"] = echo(b"third")',
    'time.sleep(0.3); nxt = int(ours()[-1][TCP].ack); o["nxt2"] = nxt',
    'send(IP(dst=d)/TCP(sport=lp, dport=p, flags="R", seq=nxt))',
    'time.sleep(0.4); n = len(ours())',
    'try:',
    '    s.sendall(b"late"); time.sleep(0.5); r = s.recv(100); o["after"] = "data" if r else "eof"',
    'except ConnectionResetError:',
    '    o["after"] = "reset"',
    'o["answer"] = since(n)',
    'sn.stop()',
    'print(json.dumps(o))',
  ]);
  assert.is(out.echo0, true, 'echo before');
  const nxt = out.nxt as number;
  const rst = out.rst as { flags: number; seq: number; ack: number; len: number }[];
  assert.equal(rst, [{ flags: 0x10, seq: out.sndnxt as number, ack: nxt, len: 0 }], 'in-window RST: one challenge ACK <SEQ=SND.NXT><ACK=RCV.NXT>');
  assert.is(out.echo1, true, 'the connection goes on after the in-window RST');
  const syn = out.syn as { flags: number; ack: number }[];
  assert.is(syn.length, 1, `SYN: one answer ${JSON.stringify(syn)}`);
  assert.equal([syn[0]!.flags, syn[0]!.ack], [0x10, nxt + 5], 'SYN in ESTABLISHED: challenge ACK');
  assert.is(out.echo2, true, 'the connection goes on after the SYN');
  assert.is(out.after, 'reset', 'after the exact RST the client\'s next segment is refused');
  const answer = out.answer as { flags: number }[];
  assert.ok(answer.length >= 1 && answer.every((x) => x.flags & 0x04), `RST for the late segment: ${JSON.stringify(answer)}`);
  await accounted(stack);
});

test.run();

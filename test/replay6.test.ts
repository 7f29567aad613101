/**
 * IPv6 through replay, checked by an independent implementation on both sides: scapy builds the
 * input frames (NS, echo, UDP, TCP SYN, and frames the stack must refuse), the engine answers, and
 * tshark decodes the answers with checksum validation on (RFC 4861 NA, RFC 4443 echo reply and
 * Parameter Problem, UDP echo, SYN-ACK with MSS = MTU − 60).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { replayCapture } from '../stack/replay';
import type { StackConfig } from '../stack/control/config';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-replay6-'));

const CONFIG: StackConfig = {
  name: 'r6',
  engine: { dadTransmits: 0 },
  devices: [{ name: 'p0', driver: 'pcap', mac: '02:00:00:00:00:01' }],
  virtualServers: [{ name: 'a', links: [{ device: 'p0', vlan: 10, addresses: ['fd00:10::1/64'] }] }],
  services: [{ type: 'udp-echo', vs: 'a', port: 7 }, { type: 'tcp-echo', vs: 'a', port: 7 }],
};

const SCAPY = `
import sys
from scapy.all import Ether, Dot1Q, IPv6, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, ICMPv6EchoRequest, UDP, TCP, wrpcap, Raw
mac_s = '02:00:00:00:00:01'; mac_p = '02:00:00:00:00:99'
s6 = 'fd00:10::1'; p6 = 'fd00:10::2'
def e(dst=mac_s): return Ether(src=mac_p, dst=dst)/Dot1Q(vlan=10)
pk = [
  e('33:33:ff:00:00:01')/IPv6(src=p6, dst='ff02::1:ff00:1', hlim=255)/ICMPv6ND_NS(tgt=s6)/ICMPv6NDOptSrcLLAddr(lladdr=mac_p),
  e()/IPv6(src=p6, dst=s6)/ICMPv6EchoRequest(id=7, seq=1, data=b'ping6'),
  e()/IPv6(src=p6, dst=s6)/UDP(sport=5000, dport=7)/Raw(b'udp6'),
  e()/IPv6(src=p6, dst=s6)/TCP(sport=6000, dport=7, flags='S', seq=1000, options=[('MSS', 1440)]),
  e()/IPv6(src=p6, dst=s6)/UDP(sport=5001, dport=7, chksum=0)/Raw(b'zero'),
  e()/IPv6(src=p6, dst='fd00:10::9')/ICMPv6EchoRequest(id=8, seq=1),
  e()/IPv6(src=p6, dst=s6, hlim=64)/ICMPv6ND_NS(tgt=s6)/ICMPv6NDOptSrcLLAddr(lladdr=mac_p),
  e()/IPv6(src=p6, dst=s6, nh=253)/Raw(b'x' * 8),
]
for i, p in enumerate(pk): p.time = 1000 + i * 0.001
wrpcap(sys.argv[1], pk)
`;

function tshark(file: string, fields: string[]): string[][] {
  const args = ['-r', file, '-o', 'udp.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE', '-T', 'fields'];
  for (const f of fields) args.push('-e', f);
  const out = execFileSync('tshark', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return out.split('\n').filter((l) => l.trim()).map((l) => l.split('\t'));
}

test('IPv6 replies to scapy-built frames decode in tshark with good checksums; refused frames are counted', () => {
  const input = path.join(tmp, 'in6.pcap');
  execFileSync('/usr/bin/python3', ['-c', SCAPY, input], { stdio: ['ignore', 'ignore', 'pipe'] });
  const out = path.join(tmp, 'out6.pcap');
  const r = replayCapture(CONFIG, input, out);
  assert.is(r.input, 8);
  assert.is(r.frames.held, 0, 'every frame returned to the pool');
  const rows = tshark(out, ['vlan.id', 'ipv6.src', 'ipv6.dst', 'ipv6.hlim', 'icmpv6.type', 'icmpv6.nd.na.flag.s', 'udp.srcport', 'tcp.flags',
    'tcp.options.mss_val', 'udp.payload', '_ws.expert.severity', 'icmpv6.checksum.status', 'udp.checksum.status', 'tcp.checksum.status']);
  const text = rows.map((x) => x.join(' ')).join('\n');
  // A solicited NA from our address with hop limit 255 (RFC 4861 7.2.4), on VLAN 10.
  assert.ok(rows.some((x) => x[0] === '10' && x[1] === 'fd00:10::1' && x[2] === 'fd00:10::2' && x[3] === '255' && x[4] === '136' && x[5] === '1'), text);
  // Echo reply from our address.
  assert.ok(rows.some((x) => x[4] === '129' && x[1] === 'fd00:10::1' && x[2] === 'fd00:10::2'), text);
  // The UDP echo, and the SYN-ACK offering MSS 1440 (MTU 1500 − 60).
  assert.ok(rows.some((x) => x[6] === '7' && x[9]!.replace(/:/g, '') === Buffer.from('udp6').toString('hex')), text);
  assert.ok(rows.some((x) => x[7] === '0x0012' && x[8] === '1440'), text);
  // Parameter Problem (type 4) for the unknown next header 253.
  assert.ok(rows.some((x) => x[4] === '4'), text);
  // No reply to the zero-checksum datagram, the echo to another address, or the NS with hop limit 64.
  assert.is(rows.filter((x) => x[6] === '7').length, 1, text);
  assert.is(rows.filter((x) => x[4] === '129').length, 1, text);
  assert.is(rows.filter((x) => x[4] === '136' && x[2] === 'fd00:10::2').length, 1, text);
  // The addresses were announced (unsolicited NA to all nodes, RFC 4861 7.2.6) and the groups joined (MLDv2).
  assert.ok(rows.some((x) => x[4] === '136' && x[1] === 'fd00:10::1' && x[2] === 'ff02::1' && x[5] === '0'), text);
  assert.ok(rows.some((x) => x[4] === '143' && x[2] === 'ff02::16' && x[3] === '1'), text);
  // Every checksum tshark checked is good; no malformed frame.
  for (const x of rows) {
    for (const st of x.slice(11)) if (st) assert.is(st, '1', `checksum status ${st} in: ${x.join(' ')}`); // 1 = good
    const worst = Math.max(0, ...(x[10] ? x[10].split(',').map(Number) : [])); // severities: chat, note, warn < error
    assert.ok(worst < 0x00800000, `expert error: ${x.join(' ')}`);
  }
  const drops = (r.counters as { vs: { vs: string; drops: { reasons: Record<string, number> } }[] }).vs.find((v) => v.vs === 'a')!.drops.reasons;
  for (const reason of ['udp6-zero-checksum', 'ipv6-not-our-address', 'ndp-bad-hop-limit', 'ipv6-unknown-next-header']) {
    assert.ok((drops as Record<string, number>)[reason]! >= 1, `${reason} counted: ${JSON.stringify(drops)}`);
  }
});

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { labUp, labDown, labStatus, LabConfigError, Lab, stackMacFor, peerMacFor } from '../stack/lab/lab';
import { main, CliContext, parseOptions, UsageError, hostInNet } from '../stack/cli/cli';
import { canRunPrivileged, sh, labPrefix } from './lib/env';

const P = labPrefix('xt');
const ROOT = path.resolve(__dirname, '..', '..');

function capture(): { ctx: CliContext; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { ctx: { out: (l) => out.push(l), err: (l) => err.push(l) }, out, err };
}

// ---------------------------------------------------------------------------------------------
// Unprivileged: option checking and the CLI's argument handling

test('bad lab options give clear errors', () => {
  const bad = (o: unknown, re: RegExp) =>
    assert.throws(() => labUp(o as never), (e: unknown) => e instanceof LabConfigError && re.test((e as Error).message));
  bad({ prefix: 'toolong', peers: [{}] }, /bad lab prefix "toolong"/);
  bad({ prefix: 'X-1', peers: [{}] }, /bad lab prefix/);
  bad({ prefix: P, peers: [] }, /at least one peer/);
  bad({ prefix: P, peers: [{ vlan: 4095 }] }, /peer 0: bad VLAN id 4095/);
  bad({ prefix: P, peers: [{}, { vlan: 1.5 }] }, /peer 1: bad VLAN id 1.5/);
  bad({ prefix: P, peers: [{ ipv4: '10.1.1.300/24' }] }, /peer 0: bad IPv4 CIDR "10.1.1.300\/24"/);
  bad({ prefix: P, peers: [{ ipv4: '10.1.1.2' }] }, /bad IPv4 CIDR .*address\/prefix-length/);
  bad({ prefix: P, peers: [{ ipv4: '10.1.1.2/33' }] }, /prefix length out of range/);
  bad({ prefix: P, peers: [{ ipv6: '10.1.1.2/24' }] }, /bad IPv6 CIDR/);
  bad({ prefix: P, peers: [{ mtu: 20 }] }, /peer 0: bad MTU 20/);
  bad({ prefix: P, peers: [{}], mtu: 100000 }, /lab: bad MTU/);
  assert.throws(() => labDown('a b'), /bad lab prefix/);
  assert.throws(() => labStatus('12'), /bad lab prefix/);
});

test('deterministic MACs differ per prefix and peer', () => {
  assert.is(stackMacFor(P), stackMacFor(P));
  assert.is.not(stackMacFor(P), stackMacFor('xs'));
  assert.is.not(peerMacFor(P, 0), peerMacFor(P, 1));
  assert.match(peerMacFor(P, 300), /^02:[0-9a-f]{2}:[0-9a-f]{2}:01:01:2c$/);
});

test('option parser and address numbering', () => {
  const { opts } = parseOptions(['--peers', '3', '--vlans=10,20', '--json'], { peers: 'int', vlans: 'list', json: 'bool' });
  assert.equal(opts, { peers: 3, vlans: ['10', '20'], json: true });
  assert.throws(() => parseOptions(['--peers', 'x'], { peers: 'int' }), (e: unknown) => e instanceof UsageError && /non-negative integer/.test((e as Error).message));
  assert.throws(() => parseOptions(['stray'], {}), /unexpected argument 'stray'/);
  assert.is(hostInNet('10.1.1.0/24', 2, 4, 'net'), '10.1.1.2/24');
  assert.is(hostInNet('192.168.7.9/29', 3, 4, 'net'), '192.168.7.11/29');
  assert.is(hostInNet('fd00:1::/64', 2, 6, 'net6'), 'fd00:1::2/64');
  assert.throws(() => hostInNet('10.1.1.0/30', 3, 4, 'net'), /no room/);
});

test('CLI: bad arguments exit 2 with a clear message, help exits 0', async () => {
  const cases: [string[], RegExp][] = [
    [[], /Usage: xdpstack <command>/],
    [['frob'], /unknown command 'frob'/],
    [['lab'], /Usage: xdpstack lab/],
    [['lab', 'up', '--bogus'], /unknown option '--bogus'/],
    [['lab', 'up', '--vlans', '10,5000'], /bad VLAN id '5000'/],
    [['lab', 'up', '--peers'], /'--peers' needs a value/],
    [['lab', 'up', '--net', 'nonsense'], /'--net' expects an IPv4 network/],
    [['lab', 'up', '--prefix', 'WAYTOOLONG'], /bad lab prefix/],
    [['lab', 'down', '--json'], /unknown option '--json'/],
  ];
  for (const [args, re] of cases) {
    const c = capture();
    const code = await main(args, c.ctx);
    assert.is(code, 2, `exit code for ${args.join(' ')}`);
    assert.match(c.err.join('\n'), re);
    assert.not.match(c.err.join('\n'), /\n\s+at /, 'no stack trace');
  }
  const h = capture();
  assert.is(await main(['--help'], h.ctx), 0);
  assert.match(h.out.join('\n'), /lab\s+build, remove or show/);
  const lh = capture();
  assert.is(await main(['lab', 'up', '--help'], lh.ctx), 0);
  assert.match(lh.out.join('\n'), /--vlans/);
});

test('bin/xdpstack.js: bad arguments give exit code 2 and no stack trace', () => {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'xdpstack.js'), 'lab', 'up', '--vlans', 'ten'], { encoding: 'utf8' });
  assert.is(r.status, 2);
  assert.match(r.stderr, /xdpstack: option '--vlans': bad VLAN id 'ten'/);
  assert.not.match(r.stderr, /\n\s+at /);
});

// ---------------------------------------------------------------------------------------------
// Privileged: the real lab

const privileged = canRunPrivileged();

function nsList(): string[] {
  return sh('ip', ['netns', 'list']).split('\n').map((l) => l.split(' ')[0]).filter((n) => n.startsWith(`${P}-`));
}
function rootLinks(): string[] {
  return sh('ip', ['-o', 'link', 'show']).split('\n').map((l) => l.split(': ')[1]?.split('@')[0]).filter((n): n is string => !!n);
}

const VLANS = [10, 20, 30];
function up3(): Lab {
  return labUp({ prefix: P, peers: VLANS.map((vlan) => ({ vlan, ipv4: '10.1.1.2/24' })) });
}

/** Runs `cmd` while tcpdump captures on `dev` (root ns); resolves to tcpdump's lines. */
async function tcpdumpDuring(dev: string, action: () => Promise<void>): Promise<string[]> {
  const td = spawn('tcpdump', ['-i', dev, '-e', '-nn', '-l', '-p', 'arp or vlan'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  td.stdout.on('data', (d) => { out += d; });
  td.stderr.on('data', (d) => { err += d; });
  const deadline = Date.now() + 5000;
  while (!/listening on/.test(err) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.match(err, /listening on/, 'tcpdump started');
  try {
    await action();
    await new Promise((r) => setTimeout(r, 300));
  } finally {
    td.kill('SIGINT');
    await new Promise((r) => td.on('close', r));
  }
  return out.split('\n').filter((l) => l);
}

function run(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: 'ignore' });
    c.on('close', (code) => resolve(code ?? -1));
  });
}

const SCAPY = String.raw`
import sys, json, time
from scapy.all import Ether, Dot1Q, ARP, IP, ICMP, sendp, AsyncSniffer
dev, smac, vid, pdst, pmac = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
def tag(p):
    return (Ether(src=smac, dst=p[0]) / Dot1Q(vlan=vid) / p[1]) if vid else (Ether(src=smac, dst=p[0]) / p[1])
sn = AsyncSniffer(iface=dev, store=True, lfilter=lambda p: p.haslayer(Ether) and p[Ether].src != smac)
sn.start(); time.sleep(0.5)
sendp(tag(('ff:ff:ff:ff:ff:ff', ARP(op=1, hwsrc=smac, psrc='10.1.1.1', pdst=pdst))), iface=dev, verbose=False)
time.sleep(0.3)
sendp(tag((pmac, IP(src='10.1.1.1', dst=pdst) / ICMP(type=8, id=0x4242, seq=1))), iface=dev, verbose=False)
time.sleep(0.7)
out = []
for p in sn.stop():
    r = {'src': p[Ether].src, 'vlan': p[Dot1Q].vlan if p.haslayer(Dot1Q) else 0}
    if p.haslayer(ARP): r['arp'] = p[ARP].op
    if p.haslayer(ICMP): r['icmp'] = p[ICMP].type
    out.append(r)
print(json.dumps(out))
`;

function inject(lab: Lab, vid: number, target: { mac: string; ipv4: string }): Array<{ src: string; vlan: number; arp?: number; icmp?: number }> {
  const out = sh('/usr/bin/python3', ['-c', SCAPY, lab.stackDevice, lab.stackMac, String(vid), target.ipv4, target.mac], { timeout: 30000 });
  return JSON.parse(out.trim().split('\n').pop() as string);
}

if (privileged) {
  test.before(() => { labDown(P); });
  test.after(() => { labDown(P); });

  test('up: 3 peers on VLANs 10/20/30 sharing 10.1.1.2/24; namespaces, links, addresses, offloads', () => {
    const lab = up3();
    assert.is(lab.prefix, P);
    assert.is(lab.stackDevice, `${P}0`);
    assert.is(lab.switchNs, `${P}-sw`);
    assert.equal(lab.peers.map((p) => [p.index, p.ns, p.ifname, p.vlan, p.ipv4]),
      VLANS.map((v, i) => [i, `${P}-p${i}`, 'eth0', v, '10.1.1.2/24']));
    assert.equal(nsList().sort(), [`${P}-p0`, `${P}-p1`, `${P}-p2`, `${P}-sw`]);

    // Stack device: up, deterministic MAC, no IPv4, IPv6 disabled.
    const dev = sh('ip', ['-o', 'link', 'show', 'dev', lab.stackDevice]);
    assert.match(dev, /state UP|,UP[,>]/);
    assert.match(dev, new RegExp(`link/ether ${lab.stackMac}`));
    assert.is(sh('ip', ['-o', '-4', 'addr', 'show', 'dev', lab.stackDevice]).trim(), '');
    assert.is(fs.readFileSync(`/proc/sys/net/ipv6/conf/${lab.stackDevice}/disable_ipv6`, 'utf8').trim(), '1');

    // Switch: bridge without STP, forward delay 0; stack port with tags in-band.
    const br = sh('ip', ['-n', lab.switchNs, '-d', 'link', 'show', 'dev', 'br0']);
    assert.match(br, /stp_state 0/);
    assert.match(br, /forward_delay 0 /);
    assert.match(sh('ethtool', ['-k', 'stk'], { ns: lab.switchNs }), /tx-vlan-offload: off/);
    const ports = sh('ip', ['-n', lab.switchNs, '-o', 'link', 'show', 'master', 'br0']);
    for (const name of ['stk', 'p0', 'p1', 'p2']) assert.match(ports, new RegExp(` ${name}@`));

    // Peers: MAC, address, checksum offload off, tc programs on both directions.
    for (const p of lab.peers) {
      assert.match(sh('ip', ['-n', p.ns, '-o', 'link', 'show', 'dev', 'eth0']), new RegExp(`link/ether ${p.mac}`));
      assert.match(sh('ip', ['-n', p.ns, '-o', '-4', 'addr', 'show', 'dev', 'eth0']), /inet 10\.1\.1\.2\/24/);
      assert.match(sh('ethtool', ['-k', 'eth0'], { ns: p.ns }), /tx-checksumming: off/);
      assert.match(sh('tc', ['-n', p.ns, 'filter', 'show', 'dev', 'eth0', 'egress']), /classifier\/egress.*direct-action/);
      assert.match(sh('tc', ['-n', p.ns, 'filter', 'show', 'dev', 'eth0', 'ingress']), /classifier\/ingress.*direct-action/);
    }
    assert.equal(labStatus(P), lab);
  });

  test('up twice is idempotent', () => {
    const a = up3();
    const b = up3();
    assert.equal(a, b);
    assert.equal(nsList().sort(), [`${P}-p0`, `${P}-p1`, `${P}-p2`, `${P}-sw`]);
    assert.is(rootLinks().filter((l) => l === `${P}0`).length, 1);
    assert.equal(labStatus(P), b);
  });

  test('tags in-band on the stack device: each peer\'s ARP request carries its VLAN id', async () => {
    const lab = up3();
    const lines = await tcpdumpDuring(lab.stackDevice, async () => {
      await Promise.all(lab.peers.map((p) => run('ip', ['netns', 'exec', p.ns, 'ping', '-c', '1', '-W', '1', '10.1.1.1'])));
    });
    for (const p of lab.peers) {
      const hit = lines.find((l) => l.startsWith(`${p.mac} > ff:ff:ff:ff:ff:ff`) || l.includes(` ${p.mac} > ff:ff:ff:ff:ff:ff`));
      assert.ok(hit, `ARP request of peer ${p.index} seen:\n${lines.join('\n')}`);
      assert.match(hit as string, new RegExp(`ethertype 802\\.1Q \\(0x8100\\).*vlan ${p.vlan}, .*Request who-has 10\\.1\\.1\\.1 tell 10\\.1\\.1\\.2`));
    }
    assert.not.ok(lines.some((l) => /ethertype ARP \(0x0806\), length \d+: Request/.test(l) && !/vlan/.test(l)), 'no untagged ARP');
  });

  test('frames tagged 20 on the stack device reach only the VLAN-20 peer, untagged', () => {
    const lab = up3();
    const p1 = lab.peers[1];
    const got = inject(lab, 20, { mac: p1.mac, ipv4: '10.1.1.2' });
    // One ARP reply and one echo reply, both from the VLAN-20 peer and tagged 20: the peer's
    // kernel (no 8021q) could only answer because the tag was removed before it.
    const arp = got.filter((r) => r.arp === 2);
    const icmp = got.filter((r) => r.icmp === 0);
    assert.equal(arp, [{ src: p1.mac, vlan: 20, arp: 2 }], JSON.stringify(got));
    assert.equal(icmp, [{ src: p1.mac, vlan: 20, icmp: 0 }], JSON.stringify(got));
    assert.match(sh('ip', ['-n', p1.ns, 'neigh', 'show', '10.1.1.1']), new RegExp(`lladdr ${lab.stackMac}`));
    for (const p of [lab.peers[0], lab.peers[2]]) {
      assert.is(sh('ip', ['-n', p.ns, 'neigh', 'show', '10.1.1.1']).trim(), '', `peer ${p.index} saw nothing`);
    }
    // An unknown VLAN reaches nobody.
    const none = inject(lab, 40, { mac: p1.mac, ipv4: '10.1.1.2' });
    assert.equal(none, []);
  });

  test('mixed lab: an untagged peer ignores tagged frames, a tagged peer ignores untagged ones', () => {
    const lab = labUp({ prefix: P, peers: [{ ipv4: '10.1.1.2/24' }, { vlan: 7, ipv4: '10.1.1.2/24', ipv6: 'fd00:7::2/64' }] });
    const [u, t] = lab.peers;
    assert.is(u.vlan, 0);
    assert.is(t.ipv6, 'fd00:7::2/64');
    assert.match(sh('ip', ['-n', t.ns, '-o', '-6', 'addr', 'show', 'dev', 'eth0']), /fd00:7::2\/64/);
    const untagged = inject(lab, 0, { mac: u.mac, ipv4: '10.1.1.2' });
    assert.equal(untagged.filter((r) => r.arp === 2 || r.icmp === 0),
      [{ src: u.mac, vlan: 0, arp: 2 }, { src: u.mac, vlan: 0, icmp: 0 }], JSON.stringify(untagged));
    const tagged = inject(lab, 7, { mac: t.mac, ipv4: '10.1.1.2' });
    assert.equal(tagged.filter((r) => r.arp === 2 || r.icmp === 0),
      [{ src: t.mac, vlan: 7, arp: 2 }, { src: t.mac, vlan: 7, icmp: 0 }], JSON.stringify(tagged));
  });

  test('16 VLAN peers come up quickly', () => {
    const t0 = Date.now();
    const lab = labUp({ prefix: P, peers: Array.from({ length: 16 }, (_, i) => ({ vlan: 100 + i, ipv4: '10.1.1.2/24' })) });
    const ms = Date.now() - t0;
    assert.is(lab.peers.length, 16);
    assert.is(nsList().length, 17);
    assert.ok(ms < 10000, `took ${ms} ms`);
  });

  test('CLI lab up/status/down', async () => {
    const c = capture();
    assert.is(await main(['lab', 'up', '--prefix', P, '--vlans', '10,20', '--peers', '3', '--json'], c.ctx), 0, c.err.join('\n'));
    const lab = JSON.parse(c.out.join('\n')) as Lab;
    assert.equal(lab.peers.map((p) => [p.vlan, p.ipv4]), [[10, '10.1.1.2/24'], [20, '10.1.1.2/24'], [10, '10.1.1.3/24']]);
    const s = capture();
    assert.is(await main(['lab', 'status', '--prefix', P], s.ctx), 0);
    assert.match(s.out.join('\n'), new RegExp(`${P}-p2\\s+\\S+\\s+10\\s+10\\.1\\.1\\.3/24`));
    assert.is(await main(['lab', 'down', '--prefix', P], capture().ctx), 0);
    const n = capture();
    assert.is(await main(['lab', 'status', '--prefix', P], n.ctx), 1);
    assert.match(n.out.join('\n'), new RegExp(`no lab with prefix ${P}`));
  });

  test('down leaves nothing behind', () => {
    up3();
    labDown(P);
    assert.equal(nsList(), []);
    assert.not.ok(rootLinks().some((l) => l.startsWith(`${P}0`)));
    assert.not.ok(fs.existsSync(`/run/xdpstack/lab/${P}`));
    assert.is(labStatus(P), null);
    labDown(P); // quiet when there is nothing
  });
}

test.run();

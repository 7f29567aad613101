import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SAMPLE_PCAPS } from './lib/env';
import { execFileSync } from 'node:child_process';
import { main } from '../stack/cli/cli';
import { replayCapture } from '../stack/replay';
import { readCapture } from '../driver/pcap';
import { buildInput, CONFIG, EXPECTED, GOLDEN_DIR, INPUT } from './golden/gen-replay';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-replay-'));
const SHARED = SAMPLE_PCAPS;

function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  return main(args, { out: (l) => out.push(l), err: (l) => err.push(l) }).then((code) => ({ code, out: out.join('\n'), err: err.join('\n') }));
}

function tshark(file: string): string[] {
  const out = execFileSync('tshark', ['-r', file, '-T', 'fields', '-e', 'vlan.id', '-e', '_ws.col.Protocol', '-e', '_ws.col.Info', '-e', '_ws.expert.severity'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return out.split('\n').filter((l) => l.trim());
}

test('the committed golden input is what the generator builds', () => {
  assert.ok(Buffer.from(buildInput()).equals(fs.readFileSync(INPUT)), 'replay-in.pcap is stale: run node dist/test/golden/gen-replay.js');
});

test('replay of the golden capture matches the expected output byte for byte', () => {
  const out = path.join(tmp, 'out.pcap');
  const r = replayCapture(CONFIG, INPUT, out);
  assert.is(r.input, 17);
  assert.is(r.frames.held, 0, 'every frame returned to the pool');
  const got = fs.readFileSync(out);
  const want = fs.readFileSync(EXPECTED);
  assert.ok(got.equals(want), `output differs from ${EXPECTED} (${got.length} vs ${want.length} bytes)`);
  // The drops are counted with their reasons.
  const c = r.counters as { devices: { drops: { reasons: Record<string, number> } }[]; vs: { vs: string; drops: { reasons: Record<string, number> } }[] };
  const dev = c.devices[0]!.drops.reasons;
  assert.is(dev['vlan-no-link'], 2, 'VLAN 30 and the untagged frame');
  assert.is(dev['not-for-us'], 1);
  assert.ok(dev['eth-truncated'] === 1, JSON.stringify(dev));
  const a = c.vs.find((v) => v.vs === 'tenant-a')!.drops.reasons;
  const b = c.vs.find((v) => v.vs === 'tenant-b')!.drops.reasons;
  assert.is(a['ipv4-bad-checksum'], 1);
  assert.is(a['udp-bad-checksum'], 1);
  assert.is(a['arp-truncated'], 1);
  assert.is(a['udp-no-socket'], 1);
  assert.is(b['ipv4-bad-version'], 1);
  assert.is(b['udp-no-socket'], 1);
});

test('tshark reads the output: replies on the right VLANs, no malformed frames', () => {
  const lines = tshark(EXPECTED);
  assert.is(lines.length, readCapture(EXPECTED).length);
  for (const l of lines) assert.not.match(l, /Malformed/);
  const on = (vlan: number, re: RegExp) => lines.filter((l) => l.startsWith(`${vlan}\t`) && re.test(l)).length;
  for (const vlan of [10, 20]) {
    assert.is(on(vlan, /is at 02:00:00:00:00:01/), 1, `ARP reply on VLAN ${vlan}`);
    assert.ok(on(vlan, /Echo \(ping\) reply/) >= 1, `ping reply on VLAN ${vlan}`);
    assert.is(on(vlan, /Port unreachable/), 1, `port unreachable on VLAN ${vlan}`);
  }
  const udp = readCapture(EXPECTED).filter((r) => Buffer.from(r.data).includes(Buffer.from('echo me on VLAN')));
  assert.is(udp.length, 4, 'two UDP echoes + two quotes in port unreachable');
  const echo10 = udp.find((r) => r.data.length === 64 && Buffer.from(r.data).includes(Buffer.from('VLAN 10')));
  assert.ok(echo10);
  assert.is(((echo10!.data[14]! & 0xf) << 8) | echo10!.data[15]!, 10);
});

test('same input, same output: two CLI replays are identical', async () => {
  const o1 = path.join(tmp, 'a.pcap');
  const o2 = path.join(tmp, 'b.pcap');
  const r1 = await run(['replay', CONFIG, INPUT, '--out', o1]);
  assert.is(r1.code, 0, r1.err);
  assert.match(r1.out, /replayed 17 frame\(s\), sent 13 frame\(s\)/);
  const r2 = await run(['replay', CONFIG, INPUT, '--out', o2, '--json']);
  assert.is(r2.code, 0, r2.err);
  assert.is(JSON.parse(r2.out).output, 13);
  assert.ok(fs.readFileSync(o1).equals(fs.readFileSync(o2)));
});

test('replay errors: usage → 2, bad files → 1 with a clear message', async () => {
  let r = await run(['replay', CONFIG]);
  assert.is(r.code, 2);
  assert.match(r.err, /expected CONFIG and IN\.pcap/);
  r = await run(['replay', CONFIG, INPUT]);
  assert.is(r.code, 2);
  assert.match(r.err, /--out OUT\.pcap is required/);
  r = await run(['replay', path.join(tmp, 'nope.json'), INPUT, '--out', path.join(tmp, 'x.pcap')]);
  assert.is(r.code, 1);
  assert.match(r.err, /nope\.json: \(file\): cannot read: ENOENT/);
  const notPcap = path.join(tmp, 'junk.pcap');
  fs.writeFileSync(notPcap, 'hello world, not a capture');
  r = await run(['replay', CONFIG, notPcap, '--out', path.join(tmp, 'x.pcap')]);
  assert.is(r.code, 1);
  assert.match(r.err, /not a pcap or pcapng file/);
});

test('the sample captures replay without crashing, with drops counted', () => {
  const files = fs.readdirSync(SHARED).filter((f) => f.endsWith('.pcap'));
  assert.ok(files.length >= 5, `captures in ${SHARED}`);
  for (const f of files) {
    const out = path.join(tmp, `shared-${f}`);
    const r = replayCapture(CONFIG, path.join(SHARED, f), out);
    const c = r.counters as { devices: { rxPackets: number; drops: { total: number; reasons: Record<string, number> } }[]; vs: { drops: { total: number; reasons: Record<string, number> }; rxPackets: number }[] };
    // The total is the sum of the reasons.
    for (const x of [c.devices[0]!, ...c.vs]) assert.is(x.drops.total, Object.values(x.drops.reasons).reduce((a, b) => a + b, 0));
    const dropped = c.devices[0]!.drops.total + c.vs.reduce((n, v) => n + v.drops.total, 0);
    assert.is(c.devices[0]!.rxPackets, r.input, f);
    assert.ok(r.input + r.skippedNonEthernet > 0, `${f} has records`);
    // None of these captures is addressed to the golden stack: everything it received is dropped.
    assert.ok(dropped >= r.input, `${f}: ${r.input} frames in, ${dropped} drops ${JSON.stringify(c)}`);
    assert.is(r.frames.held, 0, f);
    assert.ok(readCapture(out).length >= 2, `${f}: the output has at least the announcements`);
  }
});

test.run();

/**
 * Regression: `replay` gave an AF_XDP device (whose MAC the config does not say) the MAC
 * 02:00:00:00:00:01, so every frame of a real capture was dropped as `not-for-us`. The device now
 * takes the MAC the capture's traffic to the config's addresses was sent to.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SAMPLE_PCAPS } from './lib/env';
import { main } from '../stack/cli/cli';
import { replayCapture } from '../stack/replay';
import { readCapture } from '../driver/pcap';
import type { StackConfig } from '../stack/control/config';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-replaymac-'));
// accecn_handshake.pcap: 31.133.146.248 (00:0c:29:f7:80:12) opens TCP to 66.228.43.12:80 (18:fd:74:07:45:cd).
const CAPTURE = path.join(SAMPLE_PCAPS, 'accecn_handshake.pcap');
const SERVER_MAC = '18:fd:74:07:45:cd';
const config: StackConfig = {
  name: 'replaymac',
  devices: [{ name: 'eth0', driver: 'afxdp' }],
  virtualServers: [{ name: 'srv', links: [{ device: 'eth0', addresses: ['66.228.43.12/24'] }] }],
};
const cfgFile = path.join(tmp, 'replaymac.json');
fs.writeFileSync(cfgFile, JSON.stringify(config));

function drops(r: { counters: unknown }): Record<string, number> {
  return (r.counters as { devices: { drops: { reasons: Record<string, number> } }[] }).devices[0]!.drops.reasons;
}

test('an AF_XDP config replays a real capture with the MAC its frames were sent to', () => {
  const recs = readCapture(CAPTURE);
  const toServer = recs.filter((r) => Array.from(r.data.subarray(0, 6), (x) => x.toString(16).padStart(2, '0')).join(':') === SERVER_MAC).length;
  assert.ok(toServer > 0 && toServer < recs.length, 'the capture holds both directions');
  const r = replayCapture(config, CAPTURE, path.join(tmp, 'out.pcap'), { lingerUs: 0 });
  assert.is(r.mac, SERVER_MAC);
  // Only the server's own frames (to the client's MAC) are not for us.
  assert.is(drops(r)['not-for-us'] ?? 0, recs.length - toServer, JSON.stringify(drops(r)));
  // The client's SYN reached TCP: no listener on port 80, so it is answered (RFC 9293 3.10.7.1: RST).
  assert.ok(r.output >= 1, `sent ${r.output}`);
  const out = readCapture(path.join(tmp, 'out.pcap'));
  assert.is(Array.from(out[0]!.data.subarray(6, 12), (x) => x.toString(16).padStart(2, '0')).join(':'), SERVER_MAC, 'replies come from that MAC');
});

test('--mac still wins, and the CLI says which MAC it used', async () => {
  const r = replayCapture(config, CAPTURE, path.join(tmp, 'out2.pcap'), { mac: '02:00:00:00:00:09', lingerUs: 0 });
  assert.is(r.mac, '02:00:00:00:00:09');
  assert.is(drops(r)['not-for-us'], readCapture(CAPTURE).length);
  const lines: string[] = [];
  const code = await main(['replay', cfgFile, CAPTURE, '--out', path.join(tmp, 'out3.pcap')], { out: (l) => lines.push(l), err: (l) => lines.push(l) });
  assert.is(code, 0, lines.join('\n'));
  assert.match(lines.join('\n'), new RegExp(`device MAC ${SERVER_MAC}`));
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
test.run();

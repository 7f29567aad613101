/**
 * Lab measurement: a kernel peer holds 10,000 TCP connections to `xdpstack run` (TCP echo) and
 * drops them all at once (its process exits: a FIN each, or with `rst` a RST each) while the same
 * peer pings the stack every 10 ms. Prints ping loss and RTTs, how long a control-socket request
 * made during the teardown took, and the AF_XDP drop counters.
 *
 *   node dist/bench/teardown-stall.js [BIN] [fin|rst] [N]
 *
 * BIN is the `xdpstack` entry to run (default this checkout's bin/xdpstack.js): give another
 * checkout's to compare two versions side by side. Root only; builds and removes its own lab.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { labDown, labUp } from '../stack/lab/lab';
import { controlRequest } from '../stack/control/control';

const BIN = process.argv[2] ?? path.resolve(__dirname, '..', '..', 'bin', 'xdpstack.js');
const MODE = process.argv[3] === 'rst' ? 'rst' : 'fin';
const N = Number(process.argv[4] ?? 10000);
const PREFIX = `xz${(process.pid % 1296).toString(36).padStart(2, '0')}`;

const CLIENT = `
import socket, sys, os, resource, time, struct
resource.setrlimit(resource.RLIMIT_NOFILE, (${N + 1000}, ${N + 1000}))
socks = []
for i in range(${N}):
    s = socket.socket(); s.setblocking(False)
    try: s.connect(('10.1.1.1', 7))
    except BlockingIOError: pass
    socks.append(s)
    if i % 200 == 199: time.sleep(0.05)
time.sleep(2)
ok = 0
for s in socks:
    try:
        s.setblocking(True); s.settimeout(5); s.send(b'x')
        if s.recv(1) == b'x': ok += 1
    except Exception: pass
print('established', ok, flush=True)
sys.stdin.readline()
if '${MODE}' == 'rst':
    for s in socks: s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
os._exit(0)
`;

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
function output(c: ChildProcess): () => string {
  let s = '';
  c.stdout?.on('data', (d) => { s += d; });
  c.stderr?.on('data', (d) => { s += d; });
  return () => s;
}

async function main(): Promise<void> {
  const lab = labUp({ prefix: PREFIX, peers: [{ vlan: 10, ipv4: '10.1.1.2/24' }] });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-stall-'));
  const sock = path.join(tmp, 's.sock');
  const cfg = path.join(tmp, 'stall.json');
  fs.writeFileSync(cfg, JSON.stringify({
    name: `stall-${PREFIX}`, control: { socket: sock },
    devices: [{ name: lab.stackDevice, driver: 'afxdp', frameCount: 4096 }],
    virtualServers: [{ name: 'a', links: [{ device: lab.stackDevice, vlan: 10, addresses: ['10.1.1.1/24'] }] }],
    services: [{ type: 'tcp-echo', vs: 'a', port: 7 }],
  }));
  const ns = lab.peers[0]!.ns;
  const st = spawn(process.execPath, [BIN, 'run', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  const sout = output(st);
  let cl: ChildProcess | null = null;
  try {
    for (let i = 0; i < 400 && !/running/.test(sout()); i++) await wait(50);
    if (!/running/.test(sout())) throw new Error(`stack did not start: ${sout()}`);
    cl = spawn('ip', ['netns', 'exec', ns, '/usr/bin/python3', '-c', CLIENT], { stdio: ['pipe', 'pipe', 'pipe'] });
    const cout = output(cl);
    for (let i = 0; i < 1200 && !/established/.test(cout()) && cl.exitCode === null; i++) await wait(100);
    const est = Number(/established (\d+)/.exec(cout())?.[1] ?? 0);
    const ping = spawn('ip', ['netns', 'exec', ns, 'ping', '-i', '0.01', '-c', '600', '-W', '2', '10.1.1.1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const pout = output(ping);
    await wait(500);
    cl.stdin!.write('go\n');
    await wait(50);
    const t0 = Date.now();
    let control = 'no answer';
    try {
      const r = await controlRequest(sock, { cmd: 'show', kind: 'counters' }, { timeoutMs: 5000 });
      control = r.ok ? `${Date.now() - t0} ms` : `error ${r.error}`;
    } catch (e) { control = (e as Error).message; }
    await new Promise((r) => ping.once('exit', r));
    const loss = /(\d+(?:\.\d+)?)% packet loss/.exec(pout())?.[1];
    const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)/.exec(pout());
    const r = await controlRequest(sock, { cmd: 'show', kind: 'counters' }, { timeoutMs: 5000 });
    const dev = (r.data as { devices: { xdp?: Record<string, number> }[] }).devices[0]!;
    console.log(JSON.stringify({
      bin: BIN, mode: MODE, connections: est, pingLossPct: Number(loss), rttAvgMs: Number(rtt?.[2]), rttMaxMs: Number(rtt?.[3]),
      controlRequest: control, fillRingEmpty: dev.xdp?.rxFillRingEmptyDescs ?? null,
    }));
  } finally {
    cl?.kill('SIGKILL');
    st.kill('SIGTERM');
    await new Promise((r) => (st.exitCode !== null || st.signalCode !== null ? r(null) : st.once('exit', r)));
    labDown(PREFIX);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); process.exit(1); });

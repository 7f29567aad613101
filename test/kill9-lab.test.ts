/**
 * `kill -9` during a transfer, then start again at once: the stack comes up without manual steps.
 *
 * An `xdpstack run CONFIG` child process serves TCP echo to a Linux peer in the lab; a transfer is
 * running when the child is killed with SIGKILL (no cleanup at all: the XDP program stays attached,
 * the pid file, the control socket file and the AF_XDP socket are left behind). The same command is
 * started again at once: it must come up by itself (stale program replaced, control socket file
 * replaced, the queue bound again) and a new transfer from the peer must be echoed byte for byte.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ChildProcess, spawn } from 'node:child_process';
import { canRunPrivileged, labPrefix, sh } from './lib/env';
import { labDown, labUp, Lab } from '../stack/lab/lab';
import { controlRequest } from '../stack/control/control';

const PREFIX = labPrefix('xm');
const privileged = canRunPrivileged();
const BIN = path.resolve(__dirname, '..', '..', 'bin', 'xdpstack.js');

/** A Linux TCP client in the peer: sends N bytes while reading the echo; prints progress and a verdict. */
const CLIENT = `
import socket, sys, hashlib, threading
n = int(sys.argv[1])
s = socket.create_connection(('10.1.1.1', 7), timeout=10)
blk = bytes(range(256)) * 256
hs = hashlib.sha256()
def send():
    sent = 0
    try:
        while sent < n:
            k = min(len(blk), n - sent)
            s.sendall(blk[:k]); hs.update(blk[:k]); sent += k
        s.shutdown(socket.SHUT_WR)
    except Exception as e:
        print('send-error', type(e).__name__, flush=True)
t = threading.Thread(target=send, daemon=True); t.start()
hr = hashlib.sha256(); got = 0; mark = 1 << 20
try:
    while True:
        d = s.recv(65536)
        if not d: break
        hr.update(d); got += len(d)
        if got >= mark:
            print('progress', got, flush=True); mark += 1 << 20
except Exception as e:
    print('recv-error', type(e).__name__, flush=True); sys.exit(2)
t.join(5)
print('done', got, 'ok' if got == n and hr.digest() == hs.digest() else 'MISMATCH', flush=True)
`;

interface Proc { child: ChildProcess; out: string[]; exited: Promise<void> }

function start(cmd: string, args: string[]): Proc {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: string[] = [];
  // Whole lines only: a chunk may end in the middle of one.
  const reader = () => {
    let part = '';
    return (b: Buffer) => {
      const lines = (part + b.toString()).split('\n');
      part = lines.pop()!;
      for (const l of lines) if (l) out.push(l);
    };
  };
  child.stdout!.on('data', reader());
  child.stderr!.on('data', reader());
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return { child, out, exited };
}

/** Resolves when a line matching `re` was printed (true), or after `ms` / at exit (false). */
function waitLine(p: Proc, re: RegExp, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const tick = () => {
      if (p.out.some((l) => re.test(l))) return resolve(true);
      if (Date.now() - t0 > ms || p.child.exitCode !== null || p.child.signalCode !== null) return resolve(p.out.some((l) => re.test(l)));
      setTimeout(tick, 50);
    };
    tick();
  });
}

function attachedPrograms(dev: string): string[] {
  const j = JSON.parse(sh('ip', ['-j', 'link', 'show', 'dev', dev])) as { xdp?: { prog?: { name: string }; attached?: { prog?: { name: string } }[] } }[];
  const x = j[0]?.xdp;
  if (!x) return [];
  if (x.prog) return [x.prog.name];
  return (x.attached ?? []).map((a) => a.prog?.name ?? '?');
}

if (privileged) {
  let lab: Lab;
  let tmp: string;
  let cfgPath: string;
  let sock: string;
  const procs: Proc[] = [];

  test.before(() => {
    lab = labUp({ prefix: PREFIX, peers: [{ vlan: 10, ipv4: '10.1.1.2/24' }] });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-kill9-'));
    sock = path.join(tmp, 'ctl.sock');
    cfgPath = path.join(tmp, 'kill9.json');
    fs.writeFileSync(cfgPath, JSON.stringify({
      name: `kill9-${PREFIX}`,
      control: { socket: sock },
      devices: [{ name: lab.stackDevice, driver: 'afxdp', frameCount: 4096 }],
      virtualServers: [{ name: 'a', links: [{ device: lab.stackDevice, vlan: 10, addresses: ['10.1.1.1/24'] }] }],
      services: [{ type: 'tcp-echo', vs: 'a', port: 7 }],
    }));
  });

  test.after(async () => {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) { p.child.kill('SIGKILL'); await p.exited; }
    try { sh('ip', ['link', 'set', 'dev', lab.stackDevice, 'xdp', 'off']); } catch { /* gone */ }
    labDown(PREFIX);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('kill -9 during a transfer, started again at once: it comes up by itself and a new transfer is echoed exactly', async () => {
    const peer = lab.peers[0]!;
    const s1 = start(process.execPath, [BIN, 'run', cfgPath]);
    procs.push(s1);
    assert.ok(await waitLine(s1, /running/, 20_000), `first start: ${s1.out.join(' | ')}`);
    // A long transfer (200 MB) is under way when the stack is killed.
    const c1 = start('ip', ['netns', 'exec', peer.ns, '/usr/bin/python3', '-c', CLIENT, String(200 << 20)]);
    procs.push(c1);
    assert.ok(await waitLine(c1, /^progress (\d+)/, 20_000), `transfer started: ${c1.out.join(' | ')} / ${s1.out.join(' | ')}`);
    assert.ok(await waitLine(c1, /^progress ([2-9]\d{6}|\d{8,})/, 20_000), `2 MB echoed before the kill: ${c1.out.join(' | ')}`);
    s1.child.kill('SIGKILL');
    await s1.exited;
    assert.is(s1.child.signalCode, 'SIGKILL');
    // What the dead process left behind.
    assert.equal(attachedPrograms(lab.stackDevice), ['xdpstack_xdp'], 'the XDP program is still attached');
    assert.ok(fs.existsSync(sock), 'the control socket file is still there');

    // Again, at once, with the same command.
    const t0 = Date.now();
    const s2 = start(process.execPath, [BIN, 'run', cfgPath]);
    procs.push(s2);
    const up = await waitLine(s2, /running/, 20_000);
    assert.ok(up, `second start came up: ${s2.out.join(' | ')}`);
    console.log(`# restarted in ${Date.now() - t0} ms: ${s2.out.join(' | ')}`);
    assert.ok(s2.out.some((l) => /removed 1 stale xdpstack XDP program/.test(l)), 'the stale program was replaced');
    const ping = await controlRequest(sock, { cmd: 'ping' }, { timeoutMs: 5000 });
    assert.ok(ping.ok, 'the control socket answers');
    assert.is((ping.data as { pid: number }).pid, s2.child.pid);

    // The interrupted client ends (reset by the new stack, or its timeout); a new transfer works.
    await Promise.race([c1.exited, new Promise((r) => setTimeout(r, 15_000))]);
    if (c1.child.exitCode === null) c1.child.kill('SIGKILL');
    assert.not.ok(c1.out.some((l) => /^done .* ok$/.test(l)), 'the interrupted transfer did not complete');
    const c2 = start('ip', ['netns', 'exec', peer.ns, '/usr/bin/python3', '-c', CLIENT, String(8 << 20)]);
    procs.push(c2);
    assert.ok(await waitLine(c2, /^done /, 60_000), `second transfer finished: ${c2.out.join(' | ')}`);
    assert.ok(c2.out.includes(`done ${8 << 20} ok`), `second transfer echoed exactly: ${c2.out.join(' | ')}`);

    // A clean stop still detaches and removes the files.
    s2.child.kill('SIGTERM');
    await s2.exited;
    assert.equal(attachedPrograms(lab.stackDevice), []);
    assert.not.ok(fs.existsSync(sock), 'control socket removed on a clean stop');
  });
}

test.run();

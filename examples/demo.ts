/**
 * `npm run demo`: three tenants with the same address plan (10.1.1.0/24) on three VLANs, served by
 * one xdpstack process with three virtual servers. Each kernel peer (a network namespace) pings its
 * VS and exchanges UDP and TCP echo with it; then the `show` tables of the running stack are printed, and
 * everything is cleaned up.
 */
import { execFile, spawn, ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { labDown, labUp } from '../stack/lab';

const root = path.join(__dirname, '..', '..');
const cli = path.join(root, 'bin', 'xdpstack.js');
const config = path.join(root, 'examples', 'demo.json');
const VLANS = [10, 20, 30];

function run(cmd: string, args: string[], timeoutMs = 15000): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, out: stdout + stderr });
    });
  });
}

const ns = (peer: string, cmd: string, args: string[]) => run('ip', ['netns', 'exec', peer, cmd, ...args]);

async function waitForControl(): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await run(process.execPath, [cli, 'show', 'vs', '--name', 'demo']);
    if (r.code === 0) return;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error('the stack did not come up (no control socket)');
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error('demo: needs root (network namespaces, AF_XDP). Run: sudo npm run demo');
    return 1;
  }
  console.log('== lab: 3 kernel peers on VLANs 10, 20, 30, all 10.1.1.2/24 ==');
  const lab = labUp({ peers: VLANS.map((vlan) => ({ vlan, ipv4: '10.1.1.2/24' })) });
  let stack: ChildProcess | null = null;
  let failures = 0;
  try {
    console.log(`== one xdpstack process on ${lab.stackDevice}: 3 virtual servers, 10.1.1.1 in each ==`);
    stack = spawn(process.execPath, [cli, 'run', config], { stdio: ['ignore', 'inherit', 'inherit'] });
    await waitForControl();
    for (const p of lab.peers) {
      const ping = await ns(p.ns, 'ping', ['-c', '3', '-i', '0.2', '-w', '5', '10.1.1.1']);
      const stats = /(\d+) packets transmitted, (\d+) received/.exec(ping.out);
      const msg = `tenant VLAN ${p.vlan}: hello ${p.vlan}`;
      const echo = await ns(p.ns, 'sh', ['-c', `printf '%s' '${msg}' | nc -u -w 1 10.1.1.1 7`]);
      const tcp = await ns(p.ns, 'sh', ['-c', `printf '%s' '${msg} over TCP' | nc -N -w 2 10.1.1.1 7`]);
      const tcpOk = tcp.out.trim() === `${msg} over TCP`;
      const ok = ping.code === 0 && echo.out.trim() === msg && tcpOk;
      if (!ok) failures++;
      console.log(`peer ${p.ns} (VLAN ${p.vlan}): ping ${stats ? `${stats[2]}/${stats[1]} replies` : 'failed'}; ` +
        `UDP echo ${echo.out.trim() === msg ? 'ok' : `FAILED (${JSON.stringify(echo.out.trim())})`}; ` +
        `TCP echo ${tcpOk ? 'ok' : `FAILED (${JSON.stringify(tcp.out.trim())})`}`);
    }
    for (const kind of ['vs', 'addresses', 'neighbors', 'counters']) {
      console.log(`\n$ xdpstack show ${kind}`);
      const r = await run(process.execPath, [cli, 'show', kind, '--name', 'demo']);
      process.stdout.write(r.out);
      if (r.code !== 0) failures++;
    }
  } finally {
    if (stack && stack.exitCode === null) {
      stack.kill('SIGTERM');
      await new Promise((res) => stack!.once('exit', res));
    }
    labDown();
  }
  console.log(failures ? `\ndemo: ${failures} check(s) failed` : '\ndemo: every tenant was answered by its own virtual server');
  return failures ? 1 : 0;
}

main().then((code) => process.exit(code), (e) => {
  console.error(`demo: ${(e as Error).message}`);
  try { labDown(); } catch { /* best effort */ }
  process.exit(1);
});

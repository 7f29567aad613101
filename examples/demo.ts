/**
 * `npm run demo`: three tenants with the same dual-stack address plan (10.1.1.0/24 and fd00:1::/64)
 * on three VLANs, served by one xdpstack process with three virtual servers. Each kernel peer (a
 * network namespace) pings its VS and exchanges UDP and TCP echo with it, over IPv4 and over IPv6;
 * each peer also discovers its tenant's iSCSI portal (libiscsi's iscsi-ls) over both families and
 * reads its disk's capacity: the same IQN on the same address is a different disk in each tenant.
 * Then the `show` tables of the running stack are printed, and everything is cleaned up.
 * The same lab from the CLI: `xdpstack lab up --vlans 10,20,30 --net6 fd00:1::/64`.
 */
import { execFile, spawn, ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { labDown, labUp } from '../stack/lab/lab';

const root = path.join(__dirname, '..', '..');
const cli = path.join(root, 'bin', 'xdpstack.js');
const config = path.join(root, 'examples', 'demo.json');
const VLANS = [10, 20, 30];
const V4 = '10.1.1.1';
const V6 = 'fd00:1::1';

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

/** Waits until no IPv6 address of the stack is tentative (DAD, RFC 4862: about a second). */
async function waitForDad(): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const r = await run(process.execPath, [cli, 'show', 'addresses', '--name', 'demo', '--json']);
    try {
      const rows = JSON.parse(r.out) as Array<{ state: string }>;
      if (r.code === 0 && !rows.some((a) => a.state === 'tentative')) return;
    } catch { /* not up yet */ }
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error('the stack\'s IPv6 addresses stayed tentative (DAD did not finish)');
}

/** Ping, UDP echo and TCP echo of one peer to `dst`; one line of results, and whether all passed. */
async function reach(peer: string, dst: string, msg: string): Promise<{ ok: boolean; text: string }> {
  const fam = dst.includes(':') ? '-6' : '-4';
  const ping = await ns(peer, 'ping', [fam, '-c', '3', '-i', '0.2', '-w', '5', dst]);
  const stats = /(\d+) packets transmitted, (\d+) received/.exec(ping.out);
  const echo = await ns(peer, 'sh', ['-c', `printf '%s' '${msg}' | nc ${fam} -u -w 1 ${dst} 7`]);
  const tcp = await ns(peer, 'sh', ['-c', `printf '%s' '${msg} over TCP' | nc ${fam} -N -w 2 ${dst} 7`]);
  const udpOk = echo.out.trim() === msg;
  const tcpOk = tcp.out.trim() === `${msg} over TCP`;
  return {
    ok: ping.code === 0 && udpOk && tcpOk,
    text: `ping ${stats ? `${stats[2]}/${stats[1]} replies` : 'failed'}; ` +
      `UDP echo ${udpOk ? 'ok' : `FAILED (${JSON.stringify(echo.out.trim())})`}; ` +
      `TCP echo ${tcpOk ? 'ok' : `FAILED (${JSON.stringify(tcp.out.trim())})`}`,
  };
}

const IQN = 'iqn.2026-12.org.xdpstack:disk';

/**
 * iSCSI from one peer: SendTargets discovery over IPv4 and IPv6, then READ CAPACITY(16) of LUN 0.
 * Tenant i's disk is 16·(i+1) MiB (examples/demo.json), so each answer shows whose disk it is.
 */
async function iscsi(peer: string, i: number): Promise<{ ok: boolean; text: string }> {
  const found: string[] = [];
  for (const dst of [V4, `[${V6}]`]) {
    const r = await ns(peer, 'iscsi-ls', [`iscsi://${dst}`]);
    if (r.code === 0 && r.out.includes(`Target:${IQN}`)) found.push(dst.includes(':') ? 'IPv6' : 'IPv4');
  }
  const cap = await ns(peer, 'iscsi-readcapacity16', [`iscsi://${V4}/${IQN}/0`]);
  const m = /Total size:(\d+)/.exec(cap.out);
  const mib = m ? Number(m[1]) / 2 ** 20 : 0;
  const ok = found.length === 2 && mib === 16 * (i + 1);
  return {
    ok,
    text: `discovery ${found.length === 2 ? 'ok over IPv4 and IPv6' : `FAILED (${found.join(', ') || 'none'})`}; ` +
      `${IQN} LUN 0 ${m ? `is ${mib} MiB` : `FAILED (${JSON.stringify(cap.out.trim().slice(0, 200))})`}`,
  };
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error('demo: needs root (network namespaces, AF_XDP). Run: sudo npm run demo');
    return 1;
  }
  console.log('== lab: 3 kernel peers on VLANs 10, 20, 30, all 10.1.1.2/24 and fd00:1::2/64 ==');
  const lab = labUp({ peers: VLANS.map((vlan) => ({ vlan, ipv4: '10.1.1.2/24', ipv6: 'fd00:1::2/64' })) });
  let stack: ChildProcess | null = null;
  let failures = 0;
  try {
    console.log(`== one xdpstack process on ${lab.stackDevice}: 3 virtual servers, ${V4} and ${V6} in each ==`);
    stack = spawn(process.execPath, [cli, 'run', config], { stdio: ['ignore', 'inherit', 'inherit'] });
    await waitForControl();
    await waitForDad();
    for (const p of lab.peers) {
      for (const [family, dst] of [['IPv4', V4], ['IPv6', V6]] as const) {
        const r = await reach(p.ns, dst, `tenant VLAN ${p.vlan}: hello ${p.vlan} over ${family}`);
        if (!r.ok) failures++;
        console.log(`peer ${p.ns} (VLAN ${p.vlan}) ${family.padEnd(4)} ${dst.padEnd(10)}: ${r.text}`);
      }
    }
    for (const [i, p] of lab.peers.entries()) {
      const r = await iscsi(p.ns, i);
      if (!r.ok) failures++;
      console.log(`peer ${p.ns} (VLAN ${p.vlan}) iSCSI: ${r.text}`);
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

/** A stack over AF_XDP on a lab device, and async helpers to drive kernel peers without blocking it. */
import { execFile } from 'node:child_process';
import { openAfxdp, AfxdpDriver } from '../../driver/afxdp';
import { Engine } from '../../stack/engine';
import type { EngineOptions } from '../../stack/engine/engine';
import { Runtime } from '../../stack/runtime';
import { ownership } from '../../stack/stack';

export interface Rig {
  engine: Engine;
  runtime: Runtime;
  driver: AfxdpDriver;
  close(): void;
}

/** Opens AF_XDP on `ifname`, builds an engine (with `opts`) with that device and starts the real-time loop. */
export function startRig(ifname: string, frameCount = 4096, opts: Omit<EngineOptions, 'onOutput'> = {}): Rig {
  const driver = openAfxdp({ ifname, frameCount, log: () => {} });
  let runtime: Runtime | null = null;
  const engine = new Engine({ ...opts, onOutput: () => runtime?.engineKick() });
  engine.addDevice({ name: ifname, pool: driver.pool, mac: driver.mac, mtu: driver.mtu, ...ownership(driver) });
  runtime = new Runtime(engine, [driver]);
  runtime.start();
  return {
    engine, runtime, driver,
    close() { runtime!.stop(); driver.close(); },
  };
}

export interface RunResult { code: number; stdout: string; stderr: string }

/** Runs a command inside a network namespace without blocking the event loop. Never throws. */
export function nsRun(ns: string, cmd: string, args: string[], opts: { timeout?: number; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile('ip', ['netns', 'exec', ns, cmd, ...args], { timeout: opts.timeout ?? 20000, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Sends one UDP datagram from a peer with python3 and returns the reply payload (or null on timeout). */
export async function udpEcho(ns: string, dst: string, port: number, payload: string, timeoutS = 2): Promise<string | null> {
  const py = [
    'import socket,sys',
    's=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)',
    `s.settimeout(${timeoutS})`,
    `s.sendto(sys.argv[1].encode(),(${JSON.stringify(dst)},${port}))`,
    'try:\n  print(s.recvfrom(65535)[0].decode(),end="")\nexcept socket.timeout:\n  sys.exit(3)',
  ].join('\n');
  // The process limit leaves room for python3's start-up when many start at once on a busy machine.
  const r = await nsRun(ns, '/usr/bin/python3', ['-c', py, payload], { timeout: (timeoutS + 15) * 1000 });
  return r.code === 0 ? r.stdout : null;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits (real time, at most `ms`) until `pred` holds, checking every 50 ms; returns whether it did. */
export async function waitFor(pred: () => boolean | Promise<boolean>, ms = 10_000): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await pred()) return true;
    if (Date.now() >= end) return false;
    await sleep(50);
  }
}

/** Runs `script` with `sh -e` in namespace `ns`; throws with its stderr when it fails. */
export async function nsSh(ns: string, script: string, timeoutMs?: number): Promise<void> {
  const r = await nsRun(ns, 'sh', ['-ec', script], timeoutMs === undefined ? {} : { timeout: timeoutMs });
  if (r.code !== 0) throw new Error(`${ns}: ${script}: ${r.stderr}`);
}

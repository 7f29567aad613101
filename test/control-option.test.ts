/**
 * The library's `control` option: a program that starts a stack with `createStack(config,
 * { control: true })` (or a path, or with shards) opens the same control socket `xdpstack run`
 * would, so the `xdpstack` CLI (`--name NAME`) sees it; a second stack of that name is refused with
 * a clear error; close() removes the socket file; a socket left by a killed program is replaced.
 * Programs run as child processes (the CLI's default directory comes from XDPSTACK_RUN_DIR, read
 * when the module loads), the CLI through bin/xdpstack.js as a user runs it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createStack, Stack } from '../stack/index';
import { controlRequest } from '../stack/control/control';
import type { StackConfig } from '../stack/control/config';

const ROOT = path.resolve(__dirname, '..', '..');
const INDEX = path.join(ROOT, 'dist', 'stack', 'index.js');
const BIN = path.join(ROOT, 'bin', 'xdpstack.js');
const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-ctlopt-'));
const env = { ...process.env, XDPSTACK_RUN_DIR: runDir };
const children = new Set<ChildProcess>();

function config(name: string): StackConfig {
  return {
    name,
    engine: { dadTransmits: 0 },
    devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01' }],
    virtualServers: [
      { name: 'alpha', links: [{ device: 'm0', vlan: 10, addresses: ['10.1.1.1/24'] }] },
      { name: 'beta', links: [{ device: 'm0', vlan: 20, addresses: ['10.2.2.1/24'] }] },
    ],
    services: [{ type: 'udp-echo', vs: 'alpha', port: 7 }],
  };
}

/** A program embedding the stack: starts it with `opts`, says "ready PATH" (or "error MSG"), closes on a line on stdin. */
const PROGRAM = `
const fs = require('node:fs');
const { createStack } = require(${JSON.stringify(INDEX)});
const [cfg, opts] = JSON.parse(process.argv[1]);
(async () => {
  let st;
  try { st = await createStack(cfg, { ...opts, log: () => {} }); } catch (e) { process.stdout.write('error ' + e.message + '\\n'); process.exit(3); }
  if (!opts.shards) st.start();
  const sock = st.controlSocket;
  process.stdout.write('ready ' + sock + '\\n');
  process.stdin.once('data', async () => {
    await st.close();
    process.stdout.write('closed ' + (fs.existsSync(sock) ? 'file-left' : 'file-gone') + '\\n');
    process.exit(0);
  });
})();
`;

interface Program { child: ChildProcess; first: string; lines: string[] }

/** Starts the program; resolves with its first line (bounded: 30 s). */
async function startProgram(cfg: StackConfig, opts: Record<string, unknown>): Promise<Program> {
  const child = spawn(process.execPath, ['-e', PROGRAM, JSON.stringify([cfg, opts])], { env, stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  const lines: string[] = [];
  let buf = '';
  let wake: (() => void) | null = null;
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) { lines.push(buf.slice(0, nl)); buf = buf.slice(nl + 1); }
    wake?.();
  });
  const first = await nextLine({ child, first: '', lines }, 30_000);
  return { child, first, lines };
  function nextLine(p: Program, ms: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`program said nothing in ${ms} ms`)), ms);
      const check = () => { if (p.lines.length) { clearTimeout(t); wake = null; resolve(p.lines.shift()!); } };
      wake = check;
      child.once('exit', (code) => { if (!p.lines.length) { clearTimeout(t); reject(new Error(`program exited (${code}) before answering`)); } });
      check();
    });
  }
}

/** Asks the program to close; resolves with its last line (bounded: 15 s). */
async function closeProgram(p: Program): Promise<string> {
  p.child.stdin!.write('close\n');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 15_000);
  const [code] = await once(p.child, 'exit');
  clearTimeout(timer);
  assert.is(code, 0, 'program exited cleanly');
  return p.lines.join('\n');
}

function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env, timeout: 20_000, encoding: 'utf8' }, (e, out, err) => {
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, out, err });
    });
  });
}

test.after(() => {
  for (const c of children) c.kill('SIGKILL');
  fs.rmSync(runDir, { recursive: true, force: true });
});

test('control: true — the CLI sees a library stack by name; a second one is refused; close() removes the socket', async () => {
  const sock = path.join(runDir, 'lib1.sock');
  const p = await startProgram(config('lib1'), { control: true });
  try {
    assert.is(p.first, `ready ${sock}`, 'the default path for the name, in XDPSTACK_RUN_DIR');
    assert.ok(fs.statSync(sock).isSocket());
    assert.is(fs.statSync(sock).mode & 0o777, 0o600, 'owner-only, as xdpstack run makes it');
    const r = await cli(['show', 'vs', '--name', 'lib1']);
    assert.is(r.code, 0, r.err);
    assert.match(r.out, /^NAME\s+ID\s+LINKS/m);
    assert.match(r.out, /^alpha\s+1\s+1\s+1\s/m);
    assert.match(r.out, /^beta\s+2\s+1\s+1\s/m);
    // A runtime change through the CLI reaches the library's stack.
    const add = await cli(['address', 'add', '10.3.0.1/16', '--vs', 'beta', '--name', 'lib1']);
    assert.is(add.code, 0, add.err);
    const addrs = JSON.parse((await cli(['show', 'addresses', '--vs', 'beta', '--json', '--name', 'lib1'])).out) as { address?: string; cidr?: string }[];
    assert.ok(JSON.stringify(addrs).includes('10.3.0.1/16'), JSON.stringify(addrs));

    // Another program with the same name: a clear error, and the first keeps its socket.
    const q = await startProgram(config('lib1'), { control: true });
    assert.is(q.first, `error control socket ${sock} is in use: another stack named 'lib1' is running`);
    await once(q.child, 'exit');
    assert.is((await cli(['show', 'vs', '--name', 'lib1'])).code, 0, 'the first stack still answers');
  } finally {
    const last = await closeProgram(p);
    assert.is(last, 'closed file-gone', 'close() removed the socket file');
  }
  assert.not.ok(fs.existsSync(sock));
  const r = await cli(['show', 'vs', '--name', 'lib1']);
  assert.is.not(r.code, 0);
  assert.match(r.err, /no stack is listening on .*lib1\.sock/);
});

test('control with shards: the CLI sees the merged group; a socket left by a killed program is replaced', async () => {
  const sock = path.join(runDir, 'lib2.sock');
  const p = await startProgram(config('lib2'), { shards: 2, control: true });
  assert.is(p.first, `ready ${sock}`);
  const r = await cli(['show', 'vs', '--json', '--name', 'lib2']);
  assert.is(r.code, 0, r.err);
  const rows = JSON.parse(r.out) as { name: string; udpSockets: number }[];
  assert.equal(rows.map((x) => x.name), ['alpha', 'beta']);
  assert.is(rows[0]!.udpSockets, 2, 'the udp-echo service of each of the 2 shards');
  // The program dies without closing: its socket file stays, with no one listening.
  p.child.kill('SIGKILL');
  await once(p.child, 'exit');
  assert.ok(fs.existsSync(sock), 'a killed program leaves its socket file');
  const q = await startProgram(config('lib2'), { control: true });
  assert.is(q.first, `ready ${sock}`, 'the stale socket was replaced');
  assert.is((await cli(['show', 'vs', '--name', 'lib2'])).code, 0);
  assert.is(await closeProgram(q), 'closed file-gone');
});

test('control: PATH — the socket at that path; false/absent — no socket and a Stack at once; bad values are clear errors', async () => {
  const sock = path.join(runDir, 'own', 'x.sock');
  const st = await createStack(config('lib3'), { control: sock, log: () => {} });
  try {
    assert.ok(st instanceof Stack);
    assert.is(st.controlSocket, sock);
    const r = await controlRequest(sock, { cmd: 'show', kind: 'vs' }, { timeoutMs: 5000 });
    assert.ok(r.ok, r.error);
    assert.equal((r.data as { name: string }[]).map((x) => x.name), ['alpha', 'beta']);
  } finally {
    st.close();
  }
  assert.not.ok(fs.existsSync(sock), 'gone as soon as close() returns');

  const plain = createStack(config('lib4'), { log: () => {} });
  assert.ok(plain instanceof Stack, 'without control, createStack returns the stack itself');
  assert.is(plain.controlSocket, null);
  plain.close();
  const off = createStack(config('lib4'), { control: false, log: () => {} });
  assert.ok(off instanceof Stack);
  off.close();

  assert.throws(() => createStack(config('lib5'), { control: 1 } as never), /createStack: 'control' must be true, false or a socket path, got 1/);
  await createStack(config('lib5'), { control: '' }).then(() => assert.unreachable('empty path accepted'),
    (e: Error) => assert.match(e.message, /control: the socket path must not be empty/));
  // A directory where the socket should go: the error names the path.
  const dirInTheWay = path.join(runDir, 'dir.sock');
  fs.mkdirSync(dirInTheWay);
  await createStack(config('lib6'), { control: dirInTheWay }).then(() => assert.unreachable('listening on a directory'),
    (e: Error) => assert.match(e.message, /dir\.sock/));
});

test.run();

/**
 * The package as an embedder gets it: `npm pack` of a copy of this checkout, installed into
 * scratch projects (from the tarball, and from a git URL: a local bare clone), then used as a
 * program would: `require('xdpstack')`, a TCP echo between two stacks over the memory driver, the
 * AF_XDP addon and XDP object built on install for this Node, `npx xdpstack --version`.
 * Without the libxdp/libbpf headers (hidden from the compilers by a sysroot that lacks them) the
 * install still succeeds, without AF_XDP, and names the Debian packages to install.
 *
 * npm uses the machine's cache first (--prefer-offline); what is not cached comes from the
 * registry. Every step is bounded in time. Takes about 1.5 min.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';

const ROOT = path.resolve(__dirname, '..', '..');
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-pkg-'));
const src = path.join(work, 'src');
const bare = path.join(work, 'repo.git');
let tgz = '';
/** The git install, started as soon as the bare clone exists (it takes the longest: it runs beside the rest). */
let gitInstall: Promise<{ status: number; out: string; secs: number }> | null = null;

/** The environment of the npm runs: this one without what an enclosing `npm test` adds. */
const baseEnv: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== 'INIT_CWD'));

function run(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number; input?: string }): { status: number; out: string } {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: opts.env ?? baseEnv, timeout: opts.timeoutMs, encoding: 'utf8', input: opts.input, maxBuffer: 64 << 20 });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}\n${out.slice(-4000)}`);
  return { status: r.status ?? -1, out };
}

function ok(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): string {
  const r = run(cmd, args, opts);
  assert.is(r.status, 0, `${cmd} ${args.join(' ')} failed:\n${r.out.slice(-4000)}`);
  return r.out;
}

/** run(), in the background. */
function runAsync(cmd: string, args: string[], opts: { cwd: string; timeoutMs: number }): Promise<{ status: number; out: string; secs: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { cwd: opts.cwd, env: baseEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    c.stderr.setEncoding('utf8').on('data', (d: string) => { out += d; });
    const timer = setTimeout(() => { out += `\n(killed after ${opts.timeoutMs} ms)`; c.kill('SIGKILL'); }, opts.timeoutMs);
    c.on('error', (e) => { out += `\n${e.message}`; });
    c.on('close', (code) => { clearTimeout(timer); resolve({ status: code ?? -1, out, secs: (Date.now() - t0) / 1000 }); });
  });
}

function scratch(name: string, extra: Record<string, unknown> = {}): string {
  const dir = path.join(work, name);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: `scratch-${name}`, version: '1.0.0', private: true, ...extra }, null, 2));
  fs.writeFileSync(path.join(dir, 'app.js'), APP);
  return dir;
}

const NPM_INSTALL = ['install', '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts'];

/** A small embedding program: two stacks joined by the memory link, a TCP echo between them, in real time. */
const APP = `'use strict';
const { createStack } = require('xdpstack');
const { randomBytes, createHash } = require('node:crypto');
const cfg = (addr, mac, services) => ({
  control: false,
  devices: [{ name: 'm0', driver: 'memory', mac }],
  virtualServers: [{ name: 'v', links: [{ device: 'm0', addresses: [addr] }] }],
  services,
});
const a = createStack(cfg('10.9.0.1/24', '02:00:00:00:00:01', [{ type: 'tcp-echo', vs: 'v', port: 7 }]), { log: () => {} });
const b = createStack(cfg('10.9.0.2/24', '02:00:00:00:00:02', []), { drivers: { m0: a.peer('m0') }, log: () => {} });
a.start();
b.start();
const payload = randomBytes(300000);
const parts = [];
const timer = setTimeout(() => { console.log(JSON.stringify({ error: 'timeout', received: Buffer.concat(parts).length })); process.exit(2); }, 20000);
const s = b.vs('v').connect({ port: 7, host: '10.9.0.1' }, () => s.end(payload));
s.on('data', (d) => parts.push(d));
s.on('error', (e) => { console.log(JSON.stringify({ error: e.message })); process.exit(2); });
s.on('close', () => {
  clearTimeout(timer);
  const got = Buffer.concat(parts);
  const h = (x) => createHash('sha256').update(x).digest('hex');
  console.log(JSON.stringify({ sent: payload.length, received: got.length, same: h(got) === h(payload) }));
  a.close();
  b.close();
});
`;

/** Runs app.js in `dir`: 300 000 bytes echoed byte for byte. */
function echoWorks(dir: string): void {
  const out = ok(process.execPath, ['app.js'], { cwd: dir, timeoutMs: 60_000 }).trim().split('\n').pop()!;
  assert.equal(JSON.parse(out), { sent: 300000, received: 300000, same: true }, out);
}

/** The installed package's native parts, as its status file and the files say. */
function nativeState(dir: string): { status: { built: boolean; missing: string[] }; addon: boolean; xdpObj: string } {
  const p = path.join(dir, 'node_modules', 'xdpstack');
  return {
    status: JSON.parse(fs.readFileSync(path.join(p, 'driver', 'build', 'native-status.json'), 'utf8')),
    addon: fs.existsSync(path.join(p, 'driver', 'native', 'build', 'Release', 'xdpstack_native.node')),
    xdpObj: path.join(p, 'driver', 'build', 'bpf', 'xdpstack_xdp.bpf.o'),
  };
}

/** An ELF relocatable object for the BPF machine (e_machine 247, EM_BPF). */
function assertBpfObject(file: string): void {
  const b = fs.readFileSync(file);
  assert.equal([...b.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46], `${file} is ELF`);
  assert.is(b.readUInt16LE(16), 1, 'ET_REL');
  assert.is(b.readUInt16LE(18), 247, 'EM_BPF');
}

/** The built package as a user meets it: the addon loads in this Node, the bin, npx. */
function assertWorkingInstall(dir: string): void {
  const p = path.join(dir, 'node_modules', 'xdpstack');
  assert.ok(fs.existsSync(path.join(p, 'dist', 'stack', 'index.js')), 'dist/ is there');
  assert.ok(fs.existsSync(path.join(p, 'dist', 'stack', 'index.d.ts')), 'with the type declarations');
  assert.not.ok(fs.existsSync(path.join(p, 'dist', 'test')), 'no compiled tests');
  const st = nativeState(dir);
  assert.equal(st.status.built, true, JSON.stringify(st.status));
  assert.ok(st.addon, 'addon built');
  assertBpfObject(st.xdpObj);
  const kinds = ok(process.execPath, ['-e', "const n = require('xdpstack/dist/driver/native').loadNative(); console.log(typeof n.Xsk, typeof n.Program, n.burstMax > 0)"], { cwd: dir, timeoutMs: 30_000 });
  assert.is(kinds.trim(), 'function function true', 'the addon loads in this Node');
  echoWorks(dir);
  assert.is(ok('npx', ['--no-install', 'xdpstack', '--version'], { cwd: dir, timeoutMs: 60_000 }).trim(), PKG.version);
  assert.match(ok(path.join(dir, 'node_modules', '.bin', 'xdpstack'), ['help'], { cwd: dir, timeoutMs: 30_000 }), /^Usage: xdpstack <command>/);
}

test.after(() => {
  if (process.env.XDPSTACK_KEEP_TMP === '1') console.log(`# kept ${work}`);
  else fs.rmSync(work, { recursive: true, force: true });
});

test('npm pack (of a copy of the checkout): dist/, bin, the native sources and the install script; no tests, benchmarks, maps or build output', () => {
  // The checkout's files as git sees them (tracked, and new ones not ignored): what a clone has.
  const files = ok('git', ['ls-files', '-co', '--exclude-standard', '-z'], { cwd: ROOT, timeoutMs: 30_000 }).split('\0').filter(Boolean);
  for (const f of files) {
    if (!fs.existsSync(path.join(ROOT, f))) continue; // deleted, not yet committed
    fs.mkdirSync(path.dirname(path.join(src, f)), { recursive: true });
    fs.copyFileSync(path.join(ROOT, f), path.join(src, f));
    fs.chmodSync(path.join(src, f), fs.statSync(path.join(ROOT, f)).mode);
  }
  const git = (args: string[], cwd: string) => ok('git', ['-c', 'user.name=xdpstack', '-c', 'user.email=xdpstack@localhost', '-c', 'init.defaultBranch=main', ...args], { cwd, timeoutMs: 60_000 });
  git(['init', '-q'], src);
  git(['add', '-A'], src);
  git(['commit', '-q', '-m', 'snapshot'], src);
  git(['clone', '-q', '--bare', src, bare], work);
  gitInstall = runAsync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', `git+file://${bare}`], { cwd: scratch('git'), timeoutMs: 270_000 });
  // prepare (TypeScript) needs the devDependencies: the checkout's own.
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(src, 'node_modules'));
  const packDir = path.join(work, 'pack');
  fs.mkdirSync(packDir);
  const out = ok('npm', ['pack', '--pack-destination', packDir], { cwd: src, timeoutMs: 180_000 });
  tgz = path.join(packDir, `${PKG.name}-${PKG.version}.tgz`);
  assert.ok(fs.existsSync(tgz), out.slice(-2000));
  const size = fs.statSync(tgz).size;
  assert.ok(size > 100_000 && size < 1_500_000, `tarball size ${size} B`);

  const list = ok('tar', ['-tzf', tgz], { cwd: work, timeoutMs: 30_000 }).trim().split('\n').map((l) => l.replace(/^package\//, ''));
  for (const f of ['package.json', 'README.md', 'bin/xdpstack.js', 'dist/stack/index.js', 'dist/stack/index.d.ts', 'dist/stack/cli/cli.js',
    'dist/driver/native.js', 'dist/examples/iscsi/index.js', 'driver/Makefile', 'driver/bpf/xdpstack_xdp.bpf.c', 'driver/bpf/xdpstack_maps.h',
    'driver/native/binding.gyp', 'driver/native/xsk.cc', 'scripts/install-native.js']) {
    assert.ok(list.includes(f), `${f} shipped`);
  }
  const junk = list.filter((f) => /^(test|bench)\/|^dist\/(test|bench)\/|\.map$|\.o$|\.node$|tsbuildinfo|^driver\/build\/|^driver\/native\/build\//.test(f) || /\.ts$/.test(f) && !f.endsWith('.d.ts'));
  assert.equal(junk, [], 'nothing of tests, benchmarks, sources maps or build output');
  // Every compiled file has its source (prepare removes those of moved or deleted sources).
  const orphans = list.filter((f) => f.startsWith('dist/') && !fs.existsSync(path.join(src, f.slice(5).replace(/(\.d\.ts|\.js)$/, '.ts'))));
  assert.equal(orphans, []);
});

test('tarball install: dist/ shipped, the addon and BPF objects built on install for this Node; a program over the memory driver; npx xdpstack', () => {
  assert.ok(tgz, 'packed by the first test');
  // npm's allowScripts policy names a tarball dependency by its resolved path.
  const dir = scratch('tarball', { allowScripts: { [`file:${tgz}`]: true } });
  const out = ok('npm', [...NPM_INSTALL, tgz], { cwd: dir, timeoutMs: 240_000 });
  assert.match(out, /xdpstack: AF_XDP driver built \(native addon and BPF objects\)/);
  assertWorkingInstall(dir);
});

test('without the libxdp/libbpf headers: the install succeeds without AF_XDP, names the Debian packages, no compiler error wall; the memory driver works', () => {
  assert.ok(tgz, 'packed by the first test');
  // A sysroot that has everything of /usr/include but xdp/ and bpf/: the compilers see a system without libxdp-dev and libbpf-dev.
  const inc = path.join(work, 'sysroot', 'usr', 'include');
  fs.mkdirSync(inc, { recursive: true });
  for (const e of fs.readdirSync('/usr/include')) if (e !== 'xdp' && e !== 'bpf') fs.symlinkSync(path.join('/usr/include', e), path.join(inc, e));
  const sysroot = path.dirname(path.dirname(inc));
  const env = { ...baseEnv, CXX: `g++ --sysroot=${sysroot}`, BPF_CLANG: `clang --sysroot=${sysroot}` };
  const dir = scratch('noheaders', { allowScripts: { [`file:${tgz}`]: true } });
  const r = run('npm', [...NPM_INSTALL, tgz], { cwd: dir, env, timeoutMs: 240_000 });
  assert.is(r.status, 0, `install failed:\n${r.out.slice(-3000)}`);
  const notice = r.out.split('\n').filter((l) => l.startsWith('xdpstack:'));
  assert.equal(notice, [
    'xdpstack: installed WITHOUT the AF_XDP driver (the memory and pcap drivers work): its build needs',
    'xdpstack:   Debian/Ubuntu packages: libxdp-dev libbpf-dev',
    'xdpstack:     apt-get install libxdp-dev libbpf-dev',
    'xdpstack: then build it with: npm rebuild xdpstack',
  ]);
  assert.not.match(r.out, /fatal error|gyp ERR|error:/, 'no compiler output');
  const st = nativeState(dir);
  assert.equal(st.status.missing, ['libxdp-dev', 'libbpf-dev']);
  assert.not.ok(st.addon);
  assert.not.ok(fs.existsSync(st.xdpObj));
  echoWorks(dir);
  assert.is(ok('npx', ['--no-install', 'xdpstack', '--version'], { cwd: dir, timeoutMs: 60_000 }).trim(), PKG.version);
  // Opening AF_XDP later repeats what is missing and how to get it built.
  const e = run(process.execPath, ['-e', "require('xdpstack/dist/driver/native').loadNative()"], { cwd: dir, timeoutMs: 30_000 });
  assert.is.not(e.status, 0);
  assert.match(e.out, /afxdp: native addon not built \(.*xdpstack_native\.node missing\): its build needs Debian packages libxdp-dev libbpf-dev \(apt-get install libxdp-dev libbpf-dev\); then run 'npm rebuild xdpstack'/);
  // XDPSTACK_REQUIRE_NATIVE=1: the same finding fails the build instead.
  const req = run('npm', ['rebuild', 'xdpstack', '--foreground-scripts'], { cwd: dir, env: { ...env, XDPSTACK_REQUIRE_NATIVE: '1' }, timeoutMs: 120_000 });
  assert.is.not(req.status, 0, req.out.slice(-2000));
  assert.match(req.out, /apt-get install libxdp-dev libbpf-dev/);
});

test('git install from a bare clone: prepare builds dist/ with the devDependencies, install builds the native parts; the same program; npx xdpstack', async () => {
  assert.ok(gitInstall, 'started by the first test');
  const dir = path.join(work, 'git');
  const { status, out, secs } = await gitInstall!;
  assert.is(status, 0, `npm install git+file://${bare} failed:\n${out.slice(-4000)}`);
  console.log(`# git install: ${secs.toFixed(0)} s`);
  assert.ok(fs.existsSync(path.join(dir, 'node_modules', 'xdpstack', 'package.json')), out.slice(-2000));
  assert.ok(fs.existsSync(path.join(dir, 'node_modules', 'xdpstack', 'dist', 'stack', 'index.js')),
    `prepare did not run (npm's install-script policy?):\n${out.slice(-2000)}`);
  assertWorkingInstall(dir);
});

test.run();

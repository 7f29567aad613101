#!/usr/bin/env node
'use strict';
/**
 * The package's install step (package.json "install"; again with `npm rebuild xdpstack`): builds
 * what the AF_XDP driver needs at run time, on the machine that runs it:
 *   - the BPF objects, driver/build/bpf/*.bpf.o (clang; `make -C driver bpf`);
 *   - the native addon, driver/native/build/Release/xdpstack_native.node (node-gyp, against the
 *     running Node's own headers and the system's libxdp/libbpf).
 * Nothing native is shipped prebuilt: the addon is tied to the Node ABI and to the libxdp/libbpf
 * of the system it links, so building where it runs is what works across Debian releases and
 * Node versions. The TypeScript build is not done here: the tarball ships dist/ (made by
 * `prepare`, which npm runs before packing and for git installs, with devDependencies).
 *
 * The prerequisites are checked before compiling. When one is missing the install still succeeds,
 * WITHOUT AF_XDP: the memory and pcap drivers need no native code, so a program embedding the
 * stack (or its tests) keeps working. The notice names the Debian packages to install; it is kept
 * in driver/build/native-status.json so that opening an AF_XDP device later repeats it (see
 * driver/native.ts). A failed compile is handled the same way, with the end of the build log.
 *   XDPSTACK_REQUIRE_NATIVE=1  a missing prerequisite or a failed build fails the install
 *   XDPSTACK_SKIP_NATIVE=1     no native build (memory/pcap only)
 *   CXX, BPF_CLANG             the C++ compiler (node-gyp's) and the BPF compiler (default clang)
 *   npm_config_nodedir         Node headers (default: the prefix of the running node, if it has them)
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const driverDir = path.join(root, 'driver');
const buildDir = path.join(driverDir, 'build');
const STATUS = path.join(buildDir, 'native-status.json');
const LOG = path.join(buildDir, 'native-build.log');
const ADDON = path.join(driverDir, 'native', 'build', 'Release', 'xdpstack_native.node');
const require_ = process.env.XDPSTACK_REQUIRE_NATIVE === '1';

/** Debian package of a header, by its include path (what the compiler reports missing). */
function packageOfHeader(h) {
  if (h.startsWith('xdp/')) return 'libxdp-dev';
  if (h.startsWith('bpf/')) return 'libbpf-dev';
  if (/^(linux|asm|asm-generic)\//.test(h)) return 'linux-libc-dev';
  if (h === 'libelf.h' || h === 'gelf.h') return 'libelf-dev';
  if (h === 'zlib.h') return 'zlib1g-dev';
  return 'libc6-dev';
}

function words(s) { return s.trim().split(/\s+/).filter(Boolean); }

function onPath(cmd) {
  if (cmd.includes('/')) return isExec(cmd);
  for (const d of (process.env.PATH || '').split(path.delimiter)) if (d && isExec(path.join(d, cmd))) return true;
  return false;
}
function isExec(p) { try { fs.accessSync(p, fs.constants.X_OK); return fs.statSync(p).isFile(); } catch { return false; } }

/**
 * Preprocesses `#include <header>` with `compiler`; null when found, else the header the compiler
 * could not find (it may be another one, included by `header`).
 */
function probeHeader(compiler, args, header) {
  const r = spawnSync(compiler[0], [...compiler.slice(1), ...args, '-E', '-o', os.devNull, '-'], {
    input: `#include <${header}>\n`, encoding: 'utf8', timeout: 60_000,
  });
  if (r.status === 0) return null;
  // gcc: "fatal error: xdp/xsk.h: No such file or directory"; clang: "fatal error: 'xdp/xsk.h' file not found".
  const m = /fatal error: '?([^':\s]+)'?(?::| file not found)/.exec(r.stderr || '');
  return m ? m[1] : header;
}

function nodeDir() {
  const candidates = [process.env.npm_config_nodedir, path.resolve(path.dirname(process.execPath), '..')];
  for (const d of candidates) if (d && fs.existsSync(path.join(d, 'include', 'node', 'node_api.h'))) return d;
  return null; // node-gyp then fetches the headers for this Node version (network) or uses its cache
}

function nodeGyp() {
  const c = [process.env.npm_config_node_gyp];
  try { c.push(require.resolve('node-gyp/bin/node-gyp.js', { paths: [root] })); } catch { /* not a devDependency here */ }
  return c.find((p) => p && fs.existsSync(p)) || null;
}

/** What is missing: Debian packages (and other needs), each once. */
function checkPrerequisites(cxx, clang) {
  const missing = new Set();
  const other = [];
  for (const [cmd, pkg] of [['make', 'make'], ['python3', 'python3'], [cxx[0], 'g++'], [clang[0], 'clang']]) {
    if (!onPath(cmd)) missing.add(pkg);
  }
  if (onPath(cxx[0])) {
    for (const h of ['xdp/xsk.h', 'xdp/libxdp.h', 'bpf/libbpf.h', 'linux/if_xdp.h']) {
      const miss = probeHeader(cxx, ['-x', 'c++'], h);
      if (miss) missing.add(packageOfHeader(miss));
    }
  }
  if (onPath(clang[0])) {
    const inc = `/usr/include/${os.machine()}-linux-gnu`; // as driver/Makefile passes it
    for (const h of ['xdp/xdp_helpers.h', 'bpf/bpf_helpers.h', 'linux/bpf.h']) {
      const miss = probeHeader(clang, ['-target', 'bpf', `-I${inc}`, '-x', 'c'], h);
      if (miss) missing.add(packageOfHeader(miss));
    }
  }
  const order = ['libxdp-dev', 'libbpf-dev', 'linux-libc-dev', 'libelf-dev', 'zlib1g-dev', 'clang', 'g++', 'make', 'python3', 'libc6-dev'];
  if (!nodeGyp()) other.push('node-gyp (npm provides it to install scripts; outside npm: npm install -g node-gyp)');
  return { missing: [...missing].sort((a, b) => order.indexOf(a) - order.indexOf(b)), other };
}

function writeStatus(s) {
  fs.mkdirSync(buildDir, { recursive: true });
  fs.writeFileSync(STATUS, JSON.stringify({ ...s, node: process.version, date: new Date().toISOString() }, null, 2) + '\n');
}

/** The notice goes to stderr (npm shows it with --foreground-scripts or on failure) and to the terminal. */
function notice(lines) {
  const text = lines.map((l) => `xdpstack: ${l}`).join('\n') + '\n';
  process.stderr.write(text);
  if (process.env.npm_config_loglevel === 'silent') return;
  // npm keeps a dependency's install output to itself when the script succeeds; the terminal
  // still gets this notice, which is the point of installing without AF_XDP rather than failing.
  try {
    const fd = fs.openSync('/dev/tty', 'w');
    try { fs.writeSync(fd, text); } finally { fs.closeSync(fd); }
  } catch { /* no terminal (CI, containers) */ }
}

function run(cmd, args, opts, log) {
  fs.appendFileSync(log, `$ ${[cmd, ...args].join(' ')}   (in ${opts.cwd})\n`);
  const r = spawnSync(cmd, args, { ...opts, encoding: 'utf8', timeout: 10 * 60_000, maxBuffer: 64 << 20 });
  fs.appendFileSync(log, (r.stdout || '') + (r.stderr || '') + (r.error ? `${r.error.message}\n` : ''));
  return r.status === 0 && !r.error;
}

/**
 * For a git dependency npm prepares a clone of its own (`npm install` there runs this script, then
 * `prepare`), packs it and installs the packed result, where this script runs again and the build
 * stays. The clone's build would be thrown away. npm marks that run with _PACOTE_NO_PREPARE_, and
 * the clone is then the project being installed (for a package installed anywhere else, the
 * project is the one that depends on it). Should npm change the mark, the build just runs twice.
 */
function inGitPreparation() {
  const real = (p) => { try { return fs.realpathSync(p); } catch { return path.resolve(p); } };
  return !!process.env._PACOTE_NO_PREPARE_ && !!process.env.npm_config_local_prefix &&
    real(process.env.npm_config_local_prefix) === real(root);
}

function main() {
  if (inGitPreparation()) {
    process.stdout.write('xdpstack: preparing a git dependency: the native build happens where the package is installed\n');
    return 0;
  }
  if (process.env.XDPSTACK_SKIP_NATIVE === '1') {
    writeStatus({ built: false, skipped: true, missing: [] });
    notice(['XDPSTACK_SKIP_NATIVE=1: AF_XDP driver not built (memory and pcap drivers only)']);
    return 0;
  }
  const cxx = words(process.env.CXX || 'g++');
  const clang = words(process.env.BPF_CLANG || 'clang');
  const { missing, other } = checkPrerequisites(cxx, clang);
  if (missing.length || other.length) {
    writeStatus({ built: false, missing, other });
    const lines = ['installed WITHOUT the AF_XDP driver (the memory and pcap drivers work): its build needs'];
    if (missing.length) lines.push(`  Debian/Ubuntu packages: ${missing.join(' ')}`, `    apt-get install ${missing.join(' ')}`);
    for (const o of other) lines.push(`  ${o}`);
    lines.push('then build it with: npm rebuild xdpstack');
    notice(lines);
    return require_ ? 1 : 0;
  }

  fs.mkdirSync(buildDir, { recursive: true });
  fs.writeFileSync(LOG, '');
  // `node -p` in binding.gyp (node-addon-api's include dir) must be this node.
  const env = { ...process.env, PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH || ''}` };
  const makeArgs = ['-C', driverDir, 'bpf'];
  if (process.env.BPF_CLANG) makeArgs.push(`BPF_CLANG=${process.env.BPF_CLANG}`);
  const nd = nodeDir();
  const gypArgs = [nodeGyp(), 'rebuild', '--loglevel=warn', ...(nd ? [`--nodedir=${nd}`] : [])];
  const ok = run('make', makeArgs, { cwd: root, env }, LOG) &&
    run(process.execPath, gypArgs, { cwd: path.join(driverDir, 'native'), env }, LOG) && fs.existsSync(ADDON);
  if (ok) {
    writeStatus({ built: true, missing: [] });
    process.stdout.write('xdpstack: AF_XDP driver built (native addon and BPF objects)\n');
    return 0;
  }
  writeStatus({ built: false, missing: [], failed: true, log: LOG });
  const tail = fs.readFileSync(LOG, 'utf8').trimEnd().split('\n').slice(-15);
  notice([
    'installed WITHOUT the AF_XDP driver (the memory and pcap drivers work): its build failed.',
    ...(nd ? [] : ['  (no Node headers next to node: node-gyp had to fetch them; set npm_config_nodedir to a Node install with include/node)']),
    `  last lines of ${LOG}:`, ...tail.map((l) => `    ${l}`),
    'after fixing it: npm rebuild xdpstack',
  ]);
  return require_ ? 1 : 0;
}

process.exitCode = main();

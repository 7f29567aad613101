/**
 * Regression (bad input on the command line):
 *  - a name or argument with a newline or an escape character (`vs del $'x\ny'`) was printed as is:
 *    the error ran over two lines (or sent the terminal an escape sequence); now such characters
 *    are written as escapes (`'x\ny'`), so stderr has one line;
 *  - an integer option past 2^53 (`--count 99999999999999999999`) was read as 1e20 and used
 *    ("tracing ... 100000000000000000000 frame(s)"); now a usage error (exit 2);
 *  - `replay` with a capture it cannot read said Node's `ENOENT: no such file or directory, open
 *    '/x'` and, for a corrupt one, did not name the file; now `replay: cannot read FILE: ENOENT (no
 *    such file or directory)` and `replay: FILE: pcap record header truncated ...`; an output it
 *    cannot write says so;
 *  - `replay CONFIG IN.pcap --out IN.pcap` wrote its output over the capture it replayed; now a
 *    usage error (and for --out CONFIG too), the files untouched;
 *  - `run` of a config whose pcap device reads a missing or corrupt capture said Node's `ENOENT:
 *    ..., open '/x'` or the capture's problem without naming the device or the file; now
 *    `device 'p0': cannot open FILE: ENOENT (...)` / `device 'p0': FILE: not a pcap ...`;
 *  - `--name ../../x` was joined to the run directory (another path than a stack's socket, outside
 *    it); now a stack name is checked as a config's `name` is, a usage error otherwise.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { main } from '../stack/cli/cli';
import { SAMPLE_PCAPS } from './lib/env';
import { cliAt, ControlledStack, startControlled, stopControlled } from './lib/control';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-badcli-'));
const sock = path.join(tmp, 'c.sock');
let cs: ControlledStack;

test.before(async () => {
  cs = await startControlled({
    name: 'badcli', engine: { dadTransmits: 0 }, devices: [{ name: 'm0', driver: 'memory' }],
    virtualServers: [{ name: 'a', links: [{ device: 'm0', addresses: ['10.1.1.1/24'] }] }],
  }, sock);
});
test.after(async () => { await stopControlled(cs, tmp); });

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

test('control characters in names and arguments: escaped, one line', async () => {
  let r = await cliAt(sock, ['vs', 'del', 'x\ny\u001b[31m']);
  assert.is(r.code, 1);
  assert.is(r.err, "xdpstack: no virtual server 'x\\ny\\x1b[31m'");
  r = await cliAt(sock, ['show', 'vs', '--vs', 'a\tb']);
  assert.is(r.code, 1);
  assert.is(r.err, "xdpstack: no virtual server 'a\\tb'");
  r = await cli(['sh\now']);
  assert.is(r.code, 2);
  assert.is(r.err.split('\n')[0], "xdpstack: unknown command 'sh\\now' (did you mean 'show'?)");
  // A config file's problems stay one per line.
  const f = path.join(tmp, 'two.json');
  fs.writeFileSync(f, JSON.stringify({ devices: [], virtualServers: 5 }));
  r = await cli(['run', f, '--no-control']);
  assert.is(r.code, 1);
  assert.match(r.err, /two\.json: 2 problems:\n {2}devices: needs at least one device\n {2}virtualServers: must be an array, got number 5$/);
});

test('integers past 2^53 are usage errors, not rounded', async () => {
  for (const args of [['trace', '--out', path.join(tmp, 't.pcap'), '--count', '99999999999999999999'],
    ['ping', '--vs', 'a', '10.1.1.2', '-c', '99999999999999999999'], ['show', 'connections', '--port', '99999999999999999999']]) {
    const r = await cliAt(sock, args);
    assert.is(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, /^xdpstack: option '--(count|port)' expects a non-negative integer, got '99999999999999999999': too large\n/);
  }
  assert.not.ok(fs.existsSync(path.join(tmp, 't.pcap')), 'no trace was started');
  // The largest exact integer is still a number (here out of the option's own range).
  const r = await cliAt(sock, ['show', 'connections', '--port', '9007199254740991']);
  assert.is(r.code, 2);
  assert.match(r.err, /--port expects a port number \(1-65535\), got 9007199254740991/);
});

test('replay: a capture or an output it cannot use is named with the reason', async () => {
  const cfg = path.join(tmp, 'r.json');
  fs.writeFileSync(cfg, JSON.stringify({ name: 'r', devices: [{ name: 'm0', driver: 'memory' }], virtualServers: [{ name: 'a', links: [{ device: 'm0', addresses: ['10.1.1.1/24'] }] }] }));
  const out = path.join(tmp, 'o.pcap');
  const missing = path.join(tmp, 'missing.pcap');
  let r = await cli(['replay', cfg, missing, '--out', out]);
  assert.is(r.code, 1);
  assert.is(r.err, `xdpstack: replay: cannot read ${missing}: ENOENT (no such file or directory)`);
  r = await cli(['replay', cfg, tmp, '--out', out]);
  assert.is(r.err, `xdpstack: replay: cannot read ${tmp}: EISDIR (a directory, not a file)`);
  const cut = path.join(tmp, 'cut.pcap');
  fs.writeFileSync(cut, fs.readFileSync(path.join(SAMPLE_PCAPS, 'tcp-handshake-nano.pcap')).subarray(0, 30));
  r = await cli(['replay', cfg, cut, '--out', out]);
  assert.is(r.code, 1);
  assert.match(r.err, new RegExp(`^xdpstack: replay: ${cut.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: pcap record header truncated \\(6 of 16 bytes\\) at byte offset 24$`));
  r = await cli(['replay', cfg, path.join(SAMPLE_PCAPS, 'tcp-handshake-nano.pcap'), '--out', path.join(tmp, 'no', 'dir', 'o.pcap')]);
  assert.is(r.code, 1);
  assert.is(r.err, `xdpstack: replay: cannot write ${path.join(tmp, 'no', 'dir', 'o.pcap')}: ENOENT (no such file or directory)`);
  for (const x of [r.err]) assert.not.match(x, /\n\s+at /);
  const input = path.join(tmp, 'in.pcap');
  fs.copyFileSync(path.join(SAMPLE_PCAPS, 'tcp-handshake-nano.pcap'), input);
  const before = fs.readFileSync(input);
  r = await cli(['replay', cfg, input, '--out', input]);
  assert.is(r.code, 2);
  assert.is(r.err.split('\n')[0], `xdpstack: option '--out' names the capture it replays (${input}): it would be written over; give another file`);
  r = await cli(['replay', cfg, input, '--out', cfg]);
  assert.is(r.code, 2);
  assert.match(r.err, /option '--out' names the config/);
  assert.ok(fs.readFileSync(input).equals(before), 'the capture is untouched');
  assert.ok(JSON.parse(fs.readFileSync(cfg, 'utf8')).name === 'r', 'the config is untouched');
});

test("run: a pcap device's capture that cannot be read names the device and the file", async () => {
  const missing = path.join(tmp, 'gone', 'in.pcap');
  const junk = path.join(tmp, 'junk.pcap');
  fs.writeFileSync(junk, 'XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX');
  for (const [input, expect] of [[missing, `xdpstack: device 'p0': cannot open ${missing}: ENOENT (no such file or directory)`],
    [junk, `xdpstack: device 'p0': ${junk}: not a pcap or pcapng file (magic 0x58585858) at byte offset 0`]] as const) {
    const f = path.join(tmp, 'pc.json');
    fs.writeFileSync(f, JSON.stringify({ name: 'pc', devices: [{ name: 'p0', driver: 'pcap', input }], virtualServers: [] }));
    const r = await cli(['run', f, '--no-control']);
    assert.is(r.code, 1);
    assert.is(r.err, expect);
  }
});

test('--name is a stack name, not a path', async () => {
  for (const name of ['../../tmp/x', 'a/b', 'a b', '']) {
    const r = await cli(['show', 'vs', `--name=${name}`]);
    assert.is(r.code, 2, `${name}: ${r.err}`);
    if (name === '') assert.match(r.err, /option '--name' needs a value/);
    else assert.is(r.err.split('\n')[0], `xdpstack: option '--name': stack name ${JSON.stringify(name)} is not valid (letters, digits, _ . -; at most 64); give the socket's path with --socket`);
  }
});

test.run();

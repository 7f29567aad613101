/**
 * Regression (bad input on the control socket):
 *  - a client that writes requests and never reads its answers made the stack queue every answer
 *    in memory (a few hundred thousand `show counters` answers took the stack from 60 MB to
 *    760 MB); now its requests are not read while more than a few MiB of answers wait, and all of
 *    them are answered, in order, once it reads;
 *  - `vs.add` with `"limits": {"__proto__": ...}` or `{"constructor": 1}` answered
 *    "undefined is not iterable ..." (a TypeError from deep inside); now the unknown limit is named;
 *  - `vs.add` with an `id` past 32 bits was taken (ids travel as u32 between shards); now refused;
 *  - a field a request does not take was ignored: `{"cmd":"route.add",...,"gw":"10.1.1.254"}` added a
 *    route without its gateway; now refused, naming the fields the request takes (and the near one).
 *  - `xdpstack run CONFIG --socket FILE` (or a config's control.socket) naming an existing regular
 *    file deleted that file and put the socket in its place (`--socket stack.json` lost the
 *    config); a directory there gave Node's "EISDIR: illegal operation on a directory, unlink".
 *    Now only a socket left by a stack that died is replaced; anything else is refused, unharmed.
 * And the socket stays up for the next client after garbage, long lines and wrong types.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ControlServer, controlRequest, REQUESTS } from '../stack/control/control';
import { main } from '../stack/cli/cli';
import { ControlledStack, startControlled, stopControlled } from './lib/control';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-badctl-'));
const sock = path.join(tmp, 'b.sock');
let cs: ControlledStack;

test.before(async () => {
  cs = await startControlled({
    name: 'badctl', engine: { dadTransmits: 0 },
    devices: [{ name: 'm0', driver: 'memory' }],
    virtualServers: [{ name: 'a', links: [{ device: 'm0', vlan: 10, addresses: ['10.1.1.1/24'] }] }],
  }, sock);
});
test.after(async () => { await stopControlled(cs, tmp); });

/** Sends raw bytes on a new connection, half-closes, and collects every answer line (bounded in time). */
function rawExchange(bytes: Buffer | string, ms = 5000): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const c = net.connect(sock);
    let buf = '';
    const timer = setTimeout(() => { c.destroy(); reject(new Error(`no end within ${ms} ms; got ${buf.slice(0, 200)}`)); }, ms);
    c.setEncoding('utf8');
    c.on('data', (d: string) => { buf += d; });
    c.on('error', () => { /* the server may close on us */ });
    c.on('close', () => { clearTimeout(timer); resolve(buf.split('\n').filter((l) => l !== '')); });
    c.on('connect', () => c.end(bytes));
  });
}

async function stillServes(): Promise<void> {
  const r = await controlRequest(sock, { cmd: 'ping' }, { timeoutMs: 5000 });
  assert.ok(r.ok, 'the control socket answers the next client');
  assert.equal(r.data && (r.data as { name: string }).name, 'badctl');
}

test('a client that never reads: answers queued on the stack stay bounded, none is lost', async () => {
  const req = JSON.stringify({ cmd: 'show', kind: 'counters' }) + '\n';
  const N = 30000; // each answer is hundreds of bytes: well over the bound if all were queued
  const c = net.connect(sock);
  c.pause(); // never read (until the end of the test)
  await new Promise<void>((resolve, reject) => { c.once('connect', resolve); c.once('error', reject); });
  const batch = req.repeat(1000);
  for (let i = 0; i < N / 1000; i++) {
    if (!c.write(batch)) {
      // The stack stopped reading: what it has not read stays in the kernel and in this process.
      await new Promise<void>((resolve) => { const t = setTimeout(resolve, 200); c.once('drain', () => { clearTimeout(t); resolve(); }); });
    }
  }
  await new Promise((r) => setTimeout(r, 500));
  // The stack's side of the connection.
  const conns = [...(cs.server as unknown as { conns: Set<net.Socket> }).conns];
  assert.ok(conns.length >= 1);
  const queued = Math.max(...conns.map((x) => x.writableLength));
  assert.ok(queued < 6 << 20, `answers queued on the stack: ${queued} bytes`);
  // Another client is served meanwhile.
  await stillServes();
  // Now the client reads: every request gets its answer, in order.
  let lines = 0;
  let bad = 0;
  let rest = '';
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${lines} of ${N} answers within 60 s`)), 60_000);
    c.setEncoding('utf8');
    c.on('data', (d: string) => {
      rest += d;
      let nl: number;
      while ((nl = rest.indexOf('\n')) >= 0) {
        const line = rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        lines++;
        if (!(JSON.parse(line) as { ok: boolean }).ok) bad++;
        if (lines === N) { clearTimeout(timer); resolve(); }
      }
    });
    c.resume();
  });
  await done;
  c.destroy();
  assert.is(lines, N);
  assert.is(bad, 0);
});

test('garbage, over-long lines and wrong types: one error answer each, the socket stays up', async () => {
  const garbage = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 37 + 11) & 0xff).filter((b) => b !== 10));
  const answers = await rawExchange(Buffer.concat([garbage, Buffer.from('\n{"cmd":5}\n[1,2]\nnull\n{"cmd":"nope"}\n{"cmd":"ping"}\n')]));
  assert.is(answers.length, 6, answers.join('\n'));
  const parsed = answers.map((l) => JSON.parse(l) as { ok: boolean; error?: string });
  assert.equal(parsed.map((p) => p.ok), [false, false, false, false, false, true]);
  assert.match(parsed[0]!.error!, /^bad request: /);
  assert.match(parsed[1]!.error!, /a request is a JSON object with a "cmd" string/);
  assert.match(parsed[4]!.error!, /unknown request 'nope'/);
  // A line past 1 MiB: refused, connection closed, the next client served.
  const long = await rawExchange('{"cmd":"ping","x":"' + 'y'.repeat((1 << 20) + 10) + '"}\n');
  assert.ok(long.length >= 1 && /request line too long/.test(long[0]!), long.join('\n').slice(0, 200));
  await stillServes();
});

test("vs.add: prototype keys in 'limits' are unknown limits, an id past 32 bits is refused", async () => {
  for (const limits of ['{"__proto__":{"x":1}}', '{"constructor":1}', '{"toString":5}']) {
    const [line] = await rawExchange(`{"cmd":"vs.add","name":"p1","limits":${limits}}\n`);
    const r = JSON.parse(line!) as { ok: boolean; error: string };
    assert.is(r.ok, false);
    assert.match(r.error, /unknown virtual server limit '(__proto__|constructor|toString)' \(known: tcpConnections, tcpSynQueue, neighbors\)/);
    assert.not.match(r.error, /iterable|TypeError|Cannot read/);
  }
  const big = await controlRequest(sock, { cmd: 'vs.add', name: 'p2', id: 99999999999 }, { timeoutMs: 5000 });
  assert.is(big.ok, false);
  assert.match(big.error!, /'id' must be 1\.\.2147483647, got 99999999999/);
  // Nothing was created by the refused requests.
  const vs = await controlRequest(sock, { cmd: 'show', kind: 'vs' }, { timeoutMs: 5000 });
  assert.equal((vs.data as { name: string }[]).map((v) => v.name), ['a']);
});

test('a field the request does not take is refused, with the fields it takes; nothing changes', async () => {
  const r = await controlRequest(sock, { cmd: 'route.add', vs: 'a', dst: '10.9.0.0/16', gw: '10.1.1.254' }, { timeoutMs: 5000 });
  assert.is(r.ok, false);
  assert.is(r.error, "request 'route.add': unknown field 'gw' (fields: vs, dst, via, link, onlink, table, metric, src)");
  const routes = await controlRequest(sock, { cmd: 'show', kind: 'routes', vs: 'a' }, { timeoutMs: 5000 });
  assert.not.match(JSON.stringify(routes.data), /10\.9\.0\.0/, 'no route was added');
  const typo = await controlRequest(sock, { cmd: 'address.add', vs: 'a', cdir: '10.1.1.9/24' }, { timeoutMs: 5000 });
  assert.match(typo.error!, /^request 'address\.add': unknown field 'cdir' \(fields: vs, link, cidr\): did you mean 'cidr'\?$/);
  const ping = await controlRequest(sock, { cmd: 'ping', x: 1 }, { timeoutMs: 5000 });
  assert.is(ping.error, "request 'ping': unknown field 'x' (it takes none)");
  const proto = await rawExchange('{"cmd":"vs.del","name":"a","__proto__":{"x":1}}\n');
  assert.match(proto[0]!, /unknown field '__proto__'/);
  await stillServes();
  // Every request the socket knows has its list, so none refuses its own fields.
  for (const cmd of REQUESTS) {
    const x = await controlRequest(sock, { cmd, zzzz: 1 }, { timeoutMs: 5000 });
    assert.match(x.error!, new RegExp(`^request '${cmd.replace('.', '\\.')}': unknown field 'zzzz' \\((fields: |it takes none)`), `${cmd}: ${x.error}`);
  }
  assert.ok(cs.stack.vs('a'), "the VS 'a' is still there");
});

test('a control socket path that holds a file or a directory: refused, left as it was', async () => {
  const file = path.join(tmp, 'stack.json');
  fs.writeFileSync(file, '{"precious": true}');
  let err: Error | null = null;
  try { await ControlServer.listen(cs.stack, file); } catch (e) { err = e as Error; }
  assert.match(String(err?.message), /^control socket .*stack\.json: a file that is not a socket is there \(not replaced\): give another path$/);
  assert.is(fs.readFileSync(file, 'utf8'), '{"precious": true}');
  const dir = path.join(tmp, 'adir');
  fs.mkdirSync(dir);
  err = null;
  try { await ControlServer.listen(cs.stack, dir); } catch (e) { err = e as Error; }
  assert.match(String(err?.message), /adir: a directory is there \(not replaced\)/);
  assert.ok(fs.statSync(dir).isDirectory());
  err = null;
  try { await ControlServer.listen(cs.stack, path.join(file, 'x.sock')); } catch (e) { err = e as Error; }
  assert.match(String(err?.message), /x\.sock: cannot make its directory: (EEXIST|ENOTDIR) \(/);
  // The CLI: exit 1, one line, the file intact.
  const cfg = path.join(tmp, 'run.json');
  fs.writeFileSync(cfg, JSON.stringify({ name: 'runsock', devices: [{ name: 'm0', driver: 'memory' }], virtualServers: [] }));
  const lines: string[] = [];
  const code = await main(['run', cfg, '--socket', file], { out: () => {}, err: (l) => lines.push(l) });
  assert.is(code, 1);
  assert.equal(lines, [`xdpstack: control socket ${file}: a file that is not a socket is there (not replaced): give another path`]);
  assert.is(fs.readFileSync(file, 'utf8'), '{"precious": true}');
  // A socket left by a stack that died is still replaced.
  const stale = path.join(tmp, 'stale.sock');
  // (A process killed while it listens leaves its socket file behind.)
  spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`], { timeout: 10_000 });
  assert.ok(fs.lstatSync(stale).isSocket());
  const again = await ControlServer.listen(cs.stack, stale);
  assert.is((await controlRequest(stale, { cmd: 'ping' }, { timeoutMs: 5000 })).ok, true);
  await again.close();
});

test.run();

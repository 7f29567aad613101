/**
 * Regression: `xdpstack show counters | true` printed a stack trace (an unhandled EPIPE on
 * stdout). A closed output pipe ends the command quietly, as the usual Unix tools do.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createStack, Stack } from '../stack/stack';
import { ControlServer } from '../stack/control/control';

const BIN = path.join(__dirname, '..', '..', 'bin', 'xdpstack.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-epipe-'));
let stack: Stack;
let server: ControlServer;

test.before(async () => {
  const vss = Array.from({ length: 200 }, (_, i) => ({ name: `t${i}`, links: [{ device: 'm0', vlan: i + 1, addresses: ['10.1.1.1/24'] }] }));
  stack = createStack({ name: 'epipe', devices: [{ name: 'm0', driver: 'memory', mac: '02:00:00:00:00:01' }], virtualServers: vss });
  server = await ControlServer.listen(stack, path.join(tmp, 'epipe.sock'));
});
test.after(async () => {
  await server.close();
  stack.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Runs the CLI with its stdout read end closed before it writes; resolves with exit status and stderr. */
function runClosedStdout(args: string[]): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy(); // the reader went away (like `| true`)
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stderr }); });
  });
}

test('show counters into a closed pipe: no stack trace, no error text, exits at once', async () => {
  const r = await runClosedStdout(['show', 'counters', '--socket', path.join(tmp, 'epipe.sock')]);
  assert.is(r.signal, null, 'not killed by the timeout');
  assert.not.match(r.stderr, /EPIPE|\n\s+at /, `stderr: ${r.stderr}`);
  assert.is(r.stderr, '');
  assert.is(r.code, 141, 'exit status of a process ended by SIGPIPE (128 + 13)');
});

/** Runs a command without blocking the event loop (the control server lives in this process). */
function run(cmd: string, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ status: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}

test('through a shell pipe `| true` the shell sees no output on stderr', async () => {
  const r = await run('sh', ['-c', `"${process.execPath}" "${BIN}" show links --socket "${path.join(tmp, 'epipe.sock')}" | true`]);
  assert.is(r.status, 0);
  assert.not.match(r.stderr, /EPIPE|\n\s+at /, `stderr: ${r.stderr}`);
});

test('a normal run still prints everything', async () => {
  const r = await run(process.execPath, [BIN, 'show', 'links', '--socket', path.join(tmp, 'epipe.sock')]);
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout.trim().split('\n').length, 201, 'header + 200 links');
});

test.run();

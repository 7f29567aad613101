/**
 * The reference target: Debian's `tgtd` (tgt 1.0.85) run in a lab namespace over kernel TCP.
 *
 * Each instance has its own management channel: `tgtd -C N` listens on the Unix socket
 * /var/run/tgtd/socket.N (a file path, shared by every network namespace), and tgtadm talks to it
 * with `-C N`. N is chosen away from 0, the system service's (`tgt.service`, when a system runs
 * it), and from any socket that answers, so several instances and the system's daemon coexist;
 * the iSCSI portal is the namespace's own port 3260, so no listener collides either.
 *
 * A LUN is a file on /dev/shm (tmpfs, so RAM-like: no disk below) served with the `rdwr` backing
 * store (pread/pwrite by tgtd's I/O threads). tgt puts a controller (SPC-3 peripheral type 0x0c)
 * on LUN 0 of every target, so the first disk is LUN 1: the URLs below carry it.
 *
 * Stopping: tgtd ignores SIGTERM while it has targets, so `stop()` deletes the targets
 * (`--force`), asks the daemon to exit (`--mode system --op delete`), and falls back to SIGKILL;
 * every wait is bounded. Then the socket, its lock file and the LUN files are removed.
 */
import { execFile, spawn, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const TGT_RUN_DIR = '/var/run/tgtd';
const SHM = '/dev/shm';

export interface TgtLun {
  /** Size in bytes (a multiple of blockSize). */
  size: number;
  /** Logical block size; default 512 (tgt's default). */
  blockSize?: number;
}

export interface TgtTargetSpec {
  iqn: string;
  /** Disks of the target, given LUN 1, 2, ... (tgt's LUN 0 is its controller). */
  luns: TgtLun[];
}

export interface TgtOptions {
  /** Network namespace tgtd runs in (it listens on every address of it). */
  ns: string;
  /** Address the initiator uses to reach tgtd (for the URLs). */
  address: string;
  /** iSCSI port (default 3260). */
  port?: number;
  targets: TgtTargetSpec[];
  /** Target parameters set with `tgtadm --op update --name K --value V` on every target (e.g. MaxRecvDataSegmentLength). */
  params?: Record<string, string | number>;
  /** Directory of the LUN files (default /dev/shm: tmpfs). */
  dir?: string;
  /** I/O threads of tgtd's backing store (`-t`); default tgtd's own. */
  ioThreads?: number;
}

export interface TgtInstance {
  readonly pid: number;
  readonly controlPort: number;
  readonly ns: string;
  readonly portal: { address: string; port: number };
  /** Per target (in the order given): its tid and the iscsi:// URL of each disk (LUN 1, 2, ...). */
  readonly targets: { iqn: string; tid: number; luns: { lun: number; url: string; file: string; size: number; blockSize: number }[] }[];
  /** The last 64 KiB of tgtd's own output (it logs every failed I/O even without -d). */
  log(): string;
  /** `tgtadm --mode target --op show` of every target. */
  show(): Promise<string>;
  /** Stops tgtd and removes its socket and LUN files. Bounded (a few seconds); idempotent. */
  stop(): Promise<void>;
}

/** An iscsi:// URL (IPv6 hosts in brackets) as libiscsi parses it. */
export function iscsiUrl(address: string, port: number, iqn?: string, lun?: number): string {
  const host = address.includes(':') ? `[${address}]` : address;
  const portal = `iscsi://${host}${port === 3260 ? '' : `:${port}`}`;
  return iqn === undefined ? portal : `${portal}/${iqn}/${lun ?? 0}`;
}

function exec(cmd: string, args: string[], timeoutMs = 10_000): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tgtadm(port: number, args: string[]): Promise<{ code: number; out: string }> {
  return exec('tgtadm', ['-C', String(port), ...args]);
}

async function tgtadmOk(port: number, args: string[]): Promise<string> {
  const r = await tgtadm(port, args);
  if (r.code !== 0) throw new Error(`tgtadm -C ${port} ${args.join(' ')} failed (exit ${r.code}): ${r.out.trim()}`);
  return r.out;
}

let portCounter = 0;

/** A control port no tgtd answers on: away from 0 (the system service), spread by pid. */
async function freeControlPort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    // tgtd takes 1..32767 (-C is a short).
    const port = 20000 + ((process.pid * 7 + portCounter++) % 12000);
    const sock = path.join(TGT_RUN_DIR, `socket.${port}`);
    if (!fs.existsSync(sock)) return port;
    // A socket file: in use if a daemon answers, else the remainder of a killed one.
    const r = await tgtadm(port, ['--mode', 'system', '--op', 'show']);
    if (r.code !== 0) { removeControlFiles(port); return port; }
  }
  throw new Error('tgt: no free control port found in 50 tries');
}

/**
 * Removes what a killed harness left behind: LUN files of ours in `dir` whose tgtd no longer
 * answers on their control port, and that port's socket files.
 */
async function sweepStale(dir: string): Promise<void> {
  let names: string[] = [];
  try { names = fs.readdirSync(dir); } catch { return; }
  const ports = new Set<number>();
  for (const n of names) { const m = /^xdpstack-tgt-(\d+)-\d+-\d+\.img$/.exec(n); if (m) ports.add(Number(m[1])); }
  for (const port of ports) {
    if ((await tgtadm(port, ['--mode', 'system', '--op', 'show'])).code === 0) continue;
    for (const n of names) if (n.startsWith(`xdpstack-tgt-${port}-`)) fs.rmSync(path.join(dir, n), { force: true });
    removeControlFiles(port);
  }
}

function removeControlFiles(port: number): void {
  for (const f of [`socket.${port}`, `socket.${port}.lock`]) fs.rmSync(path.join(TGT_RUN_DIR, f), { force: true });
}

function exited(child: ChildProcess): boolean { return child.exitCode !== null || child.signalCode !== null; }

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => { child.off('exit', on); resolve(false); }, ms);
    const on = () => { clearTimeout(t); resolve(true); };
    child.once('exit', on);
  });
}

/** Starts tgtd in `opts.ns` with the given targets and disks; resolves once every LUN is online. */
export async function startTgt(opts: TgtOptions): Promise<TgtInstance> {
  const port = opts.port ?? 3260;
  const dir = opts.dir ?? SHM;
  for (const t of opts.targets) {
    if (!/^(iqn|eui|naa)\.\S+$/.test(t.iqn)) throw new Error(`tgt: bad target name ${t.iqn}`);
    for (const l of t.luns) {
      const bs = l.blockSize ?? 512;
      if (bs !== 512 && bs !== 4096) throw new Error(`tgt: block size ${bs} (512 or 4096)`);
      if (!(l.size > 0) || l.size % bs) throw new Error(`tgt: LUN size ${l.size} is not a positive multiple of ${bs}`);
    }
  }
  fs.mkdirSync(TGT_RUN_DIR, { recursive: true });
  await sweepStale(dir);
  let child: ChildProcess | null = null;
  let controlPort = 0;
  let logTail = '';
  // Another tgtd may take the chosen port between the check and the bind: a few tries.
  for (let attempt = 0; attempt < 5 && !child; attempt++) {
    controlPort = await freeControlPort();
    const args = ['netns', 'exec', opts.ns, 'tgtd', '-f', '-C', String(controlPort)];
    if (opts.ioThreads) args.push('-t', String(opts.ioThreads));
    if (port !== 3260) args.push('--iscsi', `portal=0.0.0.0:${port}`);
    const c = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: string) => { logTail = (logTail + d).slice(-65536); };
    c.stdout!.setEncoding('utf8').on('data', keep);
    c.stderr!.setEncoding('utf8').on('data', keep);
    c.on('error', (e) => keep(`\nspawn: ${e.message}\n`));
    // Up when its management socket answers; gone if it exits (lock taken, no such namespace...).
    let up = false;
    for (let i = 0; i < 50 && !exited(c); i++) {
      if ((await tgtadm(controlPort, ['--mode', 'system', '--op', 'show'])).code === 0) { up = true; break; }
      await sleep(100);
    }
    if (up) { child = c; break; }
    c.kill('SIGKILL');
    await waitExit(c, 2000);
    if (attempt === 4) throw new Error(`tgt: tgtd did not start in ${opts.ns} (control port ${controlPort}): ${logTail.slice(-2000)}`);
  }
  const proc = child!;
  const files: string[] = [];
  const targets: TgtInstance['targets'][number][] = [];
  let stopped = false;

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (!exited(proc)) {
      for (const t of targets) await tgtadm(controlPort, ['--lld', 'iscsi', '--mode', 'target', '--op', 'delete', '--force', '--tid', String(t.tid)]);
      await tgtadm(controlPort, ['--mode', 'system', '--op', 'delete']);
      if (!(await waitExit(proc, 3000))) {
        proc.kill('SIGKILL');
        if (!(await waitExit(proc, 3000))) throw new Error(`tgt: tgtd pid ${proc.pid} survived SIGKILL`);
      }
    }
    removeControlFiles(controlPort);
    for (const f of files) fs.rmSync(f, { force: true });
  };

  try {
    let tid = 0;
    for (const t of opts.targets) {
      tid++;
      const tidS = String(tid);
      await tgtadmOk(controlPort, ['--lld', 'iscsi', '--mode', 'target', '--op', 'new', '--tid', tidS, '--targetname', t.iqn]);
      const luns: TgtInstance['targets'][number]['luns'] = [];
      for (let k = 0; k < t.luns.length; k++) {
        const l = t.luns[k]!;
        const lun = k + 1;
        const bs = l.blockSize ?? 512;
        const file = path.join(dir, `xdpstack-tgt-${controlPort}-${tid}-${lun}.img`);
        // A sparse file on tmpfs: reads of unwritten blocks return zeros, as a fresh RAM disk would.
        fs.rmSync(file, { force: true });
        fs.closeSync(fs.openSync(file, 'w'));
        files.push(file);
        fs.truncateSync(file, l.size);
        const args = ['--lld', 'iscsi', '--mode', 'logicalunit', '--op', 'new', '--tid', tidS, '--lun', String(lun),
          '--backing-store', file, '--bstype', 'rdwr'];
        if (bs !== 512) args.push('--blocksize', String(bs));
        await tgtadmOk(controlPort, args);
        luns.push({ lun, url: iscsiUrl(opts.address, port, t.iqn, lun), file, size: l.size, blockSize: bs });
      }
      for (const [k, v] of Object.entries(opts.params ?? {})) {
        await tgtadmOk(controlPort, ['--lld', 'iscsi', '--mode', 'target', '--op', 'update', '--tid', tidS, '--name', k, '--value', String(v)]);
      }
      await tgtadmOk(controlPort, ['--lld', 'iscsi', '--mode', 'target', '--op', 'bind', '--tid', tidS, '--initiator-address', 'ALL']);
      targets.push({ iqn: t.iqn, tid, luns });
    }
  } catch (e) {
    await stop().catch(() => { /* keep the first error */ });
    throw e;
  }

  return {
    pid: proc.pid!, controlPort, ns: opts.ns, portal: { address: opts.address, port }, targets,
    log: () => logTail,
    show: async () => (await tgtadm(controlPort, ['--lld', 'iscsi', '--mode', 'target', '--op', 'show'])).out,
    stop,
  };
}

/**
 * Command line of the test initiator, for lab tests that run it inside a peer namespace:
 *
 *   ip netns exec NS node dist/test/lib/iscsi-initiator-cli.js CMD --host H [--port 3260]
 *      [--target IQN] [--lun 0] [--hd] [--dd] [--chap USER:SECRET] [--initial-r2t] [--no-immediate]
 *      [--mrdsl N] [--first-burst N] [--max-burst N] [--max-r2t N] [--timeout MS] [--deadline MS]
 *
 *   discover                                     SendTargets=All in a discovery session
 *   login                                        login, the negotiated keys, NOP-Out, logout
 *   idle --ms N [--no-ping-reply]                 login, then nothing for N ms: pings seen, closed or not
 *   write  --lba L --blocks N --seed S [--chunk B] [--depth D] [--random] [--acks]
 *          writes the seed's pattern over [L, L+N) (random extents with --random; --acks prints
 *          one line per acknowledged write)
 *   read   --lba L --blocks N [--chunk B] [--depth D]      sha256 of the range
 *   verify --lba L --blocks N --seed S [--chunk B]         compares the range with the pattern
 *   verify --list L:N,L:N,... --seed S                     the same over a list of extents
 *   hostile --cases a,b,... [--scratch LBA]                 see iscsi-hostile.ts
 *
 * The result is one JSON line on stdout (the last line); exit status 0 when the command did what
 * it was asked. `--deadline` (default 60 s) bounds the whole run.
 */
import { createHash } from 'node:crypto';
import { IscsiInitiator, LoginOptions, openSession, senseCodes } from './iscsi-initiator';
import { fillPattern, randomExtents, sequentialExtents } from './iscsi-pattern';
import { CASES, runCases } from './iscsi-hostile';

type Args = Record<string, string | true>;

function parse(argv: string[]): { cmd: string; a: Args } {
  const a: Args = {};
  const cmd = argv[0] ?? '';
  for (let i = 1; i < argv.length; i++) {
    const k = argv[i]!;
    if (!k.startsWith('--')) throw new Error(`unexpected argument ${k}`);
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) a[k.slice(2)] = true;
    else { a[k.slice(2)] = next; i++; }
  }
  return { cmd, a };
}

const num = (a: Args, k: string, d?: number): number => {
  const v = a[k];
  if (v === undefined || v === true) {
    if (d === undefined) throw new Error(`--${k} is required`);
    return d;
  }
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${k}: not a number: ${v}`);
  return n;
};
const str = (a: Args, k: string): string | undefined => (typeof a[k] === 'string' ? (a[k] as string) : undefined);

function emit(o: unknown): void { process.stdout.write(JSON.stringify(o) + '\n'); }

function loginOptions(a: Args): LoginOptions {
  const chap = str(a, 'chap');
  const target = str(a, 'target');
  return {
    ...(target ? { targetName: target } : { discovery: true }),
    headerDigest: a['hd'] === true,
    dataDigest: a['dd'] === true,
    initialR2T: a['initial-r2t'] === true,
    immediateData: a['no-immediate'] !== true,
    maxRecvDataSegmentLength: num(a, 'mrdsl', 65536),
    firstBurstLength: num(a, 'first-burst', 65536),
    maxBurstLength: num(a, 'max-burst', 262144),
    maxOutstandingR2T: num(a, 'max-r2t', 1),
    ...(str(a, 'initiator') ? { initiatorName: str(a, 'initiator') } : {}),
    ...(chap ? { chap: { user: chap.slice(0, chap.indexOf(':')), secret: chap.slice(chap.indexOf(':') + 1) } } : {}),
  };
}

/** Runs `jobs` with at most `depth` in flight; stops at the first failure. */
async function pool<T>(jobs: T[], depth: number, run: (j: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: Error | null = null;
  const worker = async () => {
    while (!failed && next < jobs.length) {
      const j = jobs[next++]!;
      try { await run(j); } catch (e) { failed = failed ?? (e as Error); }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, depth) }, worker));
  if (failed) throw failed;
}

async function blockSize(ini: IscsiInitiator, lun: number): Promise<{ bs: number; blocks: number }> {
  const c = await ini.readCapacity16(lun);
  return { bs: c.blockSize, blocks: Number(c.blocks) };
}

function scsiError(what: string, r: { status: number; sense?: Uint8Array }): Error {
  return new Error(`${what}: status 0x${r.status.toString(16)} sense ${JSON.stringify(senseCodes(r.sense))}`);
}

async function main(): Promise<number> {
  const { cmd, a } = parse(process.argv.slice(2));
  const host = str(a, 'host');
  if (!host) throw new Error('--host is required');
  const conn = { host, port: num(a, 'port', 3260), timeoutMs: num(a, 'timeout', 10000) };
  const lun = num(a, 'lun', 0);
  const t0 = Date.now();

  if (cmd === 'hostile') {
    const names = (str(a, 'cases') ?? Object.keys(CASES).join(',')).split(',');
    const target = str(a, 'target');
    if (!target) throw new Error('--target is required');
    const results = await runCases({ conn, targetName: target, lun, scratchLba: num(a, 'scratch', 0) }, names);
    emit({ results, ms: Date.now() - t0 });
    return 0;
  }

  const { ini, neg } = await openSession(conn, loginOptions(a));
  try {
    if (cmd === 'discover') {
      const pairs = await ini.sendTargets(str(a, 'value') ?? 'All');
      const logout = await ini.logout();
      emit({ pairs, negotiated: { ...neg, answers: Object.fromEntries(neg.answers) }, logout, violations: ini.violations });
      return 0;
    }
    if (cmd === 'login') {
      const echo = await ini.nop(Uint8Array.from(Buffer.from('ping')));
      const tur = await ini.commandUa({ cdb: new Uint8Array(6), lun });
      const logout = await ini.logout();
      emit({ negotiated: { ...neg, answers: Object.fromEntries(neg.answers) }, echo: Buffer.from(echo).toString(), tur: tur.status, logout, violations: ini.violations });
      return 0;
    }
    if (cmd === 'idle') {
      ini.answerPings = a['no-ping-reply'] !== true;
      const ms = num(a, 'ms');
      const t = Date.now();
      await ini.waitFor(() => ini.closed || ini.peerEnded, ms);
      const closedAfter = ini.closed || ini.peerEnded ? Date.now() - t : null;
      let tur: number | string | null = null;
      if (closedAfter === null) { try { tur = (await ini.commandUa({ cdb: new Uint8Array(6), lun })).status; } catch (e) { tur = (e as Error).message; } }
      emit({ pingsSeen: ini.pingsSeen, pingsAnswered: ini.pingsAnswered, closedAfter, tur, violations: ini.violations });
      return 0;
    }
    const { bs } = await blockSize(ini, lun);
    const list = str(a, 'list')?.split(',').map((x) => { const [l, n] = x.split(':').map(Number); return { lba: l!, blocks: n! }; });
    const lba = list ? 0 : num(a, 'lba');
    const blocks = list ? list.reduce((t, e) => t + e.blocks, 0) : num(a, 'blocks');
    const chunk = num(a, 'chunk', 128);
    const depth = num(a, 'depth', 4);
    if (cmd === 'write') {
      const seed = num(a, 'seed');
      const extents = a['random'] === true ? randomExtents(seed, lba, blocks, chunk) : sequentialExtents(lba, blocks, chunk);
      let bytes = 0;
      let acked = 0;
      const io = { r2ts: 0, dataOuts: 0, unsolicited: 0, immediateBytes: 0 };
      try {
        await pool(extents, depth, async (e) => {
          const d = new Uint8Array(e.blocks * bs);
          fillPattern(d, e.lba, bs, seed);
          const r = await ini.write16(e.lba, d, bs, lun);
          if (r.status !== 0) throw scsiError(`WRITE(16) at ${e.lba}`, r);
          if (r.overflow || r.underflow) throw new Error(`WRITE(16) at ${e.lba}: residual ${r.residual} reported (11.4.5)`);
          io.r2ts += r.r2ts; io.dataOuts += r.dataOuts; io.unsolicited += r.unsolicited; io.immediateBytes += r.immediateBytes;
          bytes += d.length;
          acked++;
          if (a['acks'] === true) emit({ ack: [e.lba, e.blocks] });
        });
      } catch (e) {
        emit({ error: (e as Error).message, acked, bytes });
        return 1;
      }
      await ini.logout();
      const { answers: _a, ...n } = neg;
      emit({ ok: true, writes: extents.length, bytes, ms: Date.now() - t0, io, negotiated: n, violations: ini.violations });
      return 0;
    }
    if (cmd === 'read' || cmd === 'verify') {
      const seed = cmd === 'verify' ? num(a, 'seed') : 0;
      const extents = list ?? sequentialExtents(lba, blocks, chunk);
      // Reads may complete out of order: hashed in LBA order from the finished pieces.
      const got = new Map<number, Uint8Array>();
      const h = createHash('sha256');
      let hashed = 0;
      const bad: number[] = [];
      let badCount = 0;
      let dataIns = 0;
      await pool(extents, depth, async (e) => {
        const r = await ini.read16(e.lba, e.blocks, bs, lun);
        if (r.status !== 0) throw scsiError(`READ(16) at ${e.lba}`, r);
        if (r.received !== e.blocks * bs) throw new Error(`READ(16) at ${e.lba}: ${r.received} bytes of ${e.blocks * bs}`);
        if (r.overflow || r.underflow) throw new Error(`READ(16) at ${e.lba}: residual ${r.residual} reported (11.4.5)`);
        dataIns += r.dataIns;
        if (cmd === 'verify') {
          const want = new Uint8Array(e.blocks * bs);
          fillPattern(want, e.lba, bs, seed);
          for (let b = 0; b < e.blocks; b++) {
            if (Buffer.compare(r.data.subarray(b * bs, (b + 1) * bs), want.subarray(b * bs, (b + 1) * bs)) !== 0) {
              badCount++;
              if (bad.length < 20) bad.push(e.lba + b);
            }
          }
        }
        got.set(e.lba, r.data);
        while (hashed < extents.length && got.has(extents[hashed]!.lba)) {
          h.update(got.get(extents[hashed]!.lba)!);
          got.delete(extents[hashed]!.lba);
          hashed++;
        }
      });
      await ini.logout();
      emit({ ok: badCount === 0, sha256: h.digest('hex'), bytes: blocks * bs, bad, badCount, dataIns, ms: Date.now() - t0, violations: ini.violations });
      return badCount === 0 ? 0 : 1;
    }
    throw new Error(`unknown command ${JSON.stringify(cmd)}`);
  } finally {
    ini.destroy();
  }
}

const deadline = (() => { const i = process.argv.indexOf('--deadline'); return i > 0 ? Number(process.argv[i + 1]) : 60000; })();
const timer = setTimeout(() => { emit({ error: `deadline of ${deadline} ms passed` }); process.exit(3); }, deadline);
main().then((code) => { clearTimeout(timer); process.exitCode = code; }, (e: Error) => {
  clearTimeout(timer);
  emit({ error: e.message, name: e.name, ...('status' in e ? { status: (e as { status: number }).status } : {}) });
  process.exitCode = 2;
});

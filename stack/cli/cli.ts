/**
 * `xdpstack` command line. Commands live in a table (`COMMANDS`); a command with sub-commands
 * (like `lab up|down|status`) carries a nested table in `subcommands`. Add a command by adding an
 * entry: { name, summary, usage, run(args, ctx) } returning the exit code (throw UsageError for
 * bad arguments; parseOptions does it for you).
 *
 * Exit codes: 0 ok, 1 runtime failure, 2 bad arguments (UsageError / LabConfigError).
 * Errors are printed as one clear line, never as a stack trace (set XDPSTACK_DEBUG=1 to see it).
 */
import { addrToString, Cidr, Ip6, isIp6, maskAddr, parseCidr } from '../../protocols/ip/addr';
import { STACK_COMMANDS } from './stack-commands';
import { CliContext, closedPipe, Command, didYouMean, OptValues, parseOptions, tableUsage, UsageError } from './args';

export { UsageError, parseOptions, editDistance, closest, didYouMean } from './args';
export { loadServiceModule } from '../control/services';
export type { Command, CliContext, OptKind, OptSpec, OptValues } from './args';

function dispatch(table: Command[], args: string[], ctx: CliContext, usage: string): number | Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined) { ctx.err(usage); return 2; }
  if (name === '--help' || name === '-h') { ctx.out(usage); return 0; }
  if (name === 'help') {
    // `help COMMAND [SUB]`: the text `COMMAND [SUB] --help` prints.
    ctx.out(helpText(table, rest, usage));
    return 0;
  }
  const cmd = findCommand(table, name, usage);
  if (cmd.subcommands) return dispatch(cmd.subcommands, rest, ctx, cmd.usage);
  if (rest.includes('--help') || rest.includes('-h')) { ctx.out(cmd.usage); return 0; }
  if (!cmd.run) throw new Error(`command '${name}' has no handler`);
  return cmd.run(rest, ctx);
}

/** The command `name` of `table`, or a UsageError naming the closest one. */
function findCommand(table: Command[], name: string, usage: string): Command {
  const cmd = table.find((c) => c.name === name);
  if (cmd) return cmd;
  throw new UsageError(`unknown command '${name}'${didYouMean(name, [...table.map((c) => c.name), 'help'])}`, usage);
}

/** Usage text of the command path `names` in `table` (the table's own usage when empty). */
function helpText(table: Command[], names: string[], usage: string): string {
  // `help help`: help is this table's own command (the usage says how to use it).
  if (!names.length || (names.length === 1 && names[0] === 'help')) return usage;
  const [name, ...rest] = names;
  const cmd = findCommand(table, name!, usage);
  if (cmd.subcommands) return helpText(cmd.subcommands, rest, cmd.usage);
  if (rest.length) throw new UsageError(`command '${cmd.name}' has no subcommands (got '${rest.join(' ')}')`, cmd.usage);
  return cmd.usage;
}

// ---------------------------------------------------------------------------------------------
// lab

const LAB_UP_USAGE = `Usage: xdpstack lab up [--peers N] [--vlans 10,20,30] [--net 10.1.1.0/24] [--net6 fd00::/64]
                       [--mtu N] [--loss P%] [--corrupt P%] [--prefix xs] [--force] [--json]

Builds the test lab: the stack's device <prefix>0 in this namespace, a bridge in <prefix>-sw and
kernel peers <prefix>-p<i>. An existing lab of the same prefix is replaced, unless a running
stack uses its device (then --force is needed; the stack gets the new device when it is up).
  --peers N     number of peers (default: the number of VLANs, or 1)
  --vlans L     VLAN ids, assigned to peers in turn (default: untagged)
  --net CIDR    IPv4 network; in each VLAN the peers take .2, .3, ... (.1 is left for the stack)
  --net6 CIDR   optional IPv6 network, numbered like --net (::2, ::3, ...)
  --mtu N       MTU of every lab link (default 1500)
  --loss P%     random loss on every peer's path, both directions (default 0%)
  --corrupt P%  random bit corruption on every peer's path, both directions (default 0%)
  --prefix P    lab prefix, 1-4 characters (default xs)
  --force       replace the lab even when a running stack uses its device
  --json        print the lab as JSON`;
const LAB_DOWN_USAGE = `Usage: xdpstack lab down [--prefix xs]

Removes the lab: its namespaces (and processes in them), links, tc programs and state.`;
const LAB_STATUS_USAGE = `Usage: xdpstack lab status [--prefix xs] [--json]

Shows the lab and its impairment (probabilities, frames seen, dropped and corrupted per peer and
direction); exit code 1 when there is none.`;
const LAB_IMPAIR_USAGE = `Usage: xdpstack lab impair [--loss P%] [--corrupt P%] [--peer N] [--dir in|out|both] [--reset]
                           [--prefix xs] [--json]

Changes the random impairment of a running lab's paths (tc BPF on each peer's switch port; the
links and connections stay up). Options not given keep their values.
  --loss P%      probability a frame is dropped, e.g. 1% or 0.1% (0% turns loss off)
  --corrupt P%   probability one random bit of a frame's TCP/UDP/ICMP segment is flipped
  --peer N       only peer N (default: every peer)
  --dir D        in = toward the peer (frames the stack sends), out = from the peer, both (default)
  --reset        zero the counters of the directions chosen
  --prefix P     lab prefix (default xs)
  --json         print the new state as JSON`;

/** '1%', '0.1%' → 0.01, 0.001; anything else is a UsageError. */
export function parsePercent(v: string | undefined, opt: string, usage: string): number | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)%$/.exec(v);
  if (!m || Number(m[1]) > 100) throw new UsageError(`option '--${opt}' expects a percentage 0%..100% like 1% or 0.1%, got '${v}'`, usage);
  return Number(m[1]) / 100;
}

function pct(p: number): string { return `${Number((p * 100).toPrecision(6))}%`; }

function printImpairment(ctx: CliContext, imp: import('../lab/lab').PeerImpairment[]): void {
  ctx.out('  impairment (in = toward the peer, out = from the peer)');
  ctx.out('  peer  dir  loss      corrupt   frames      dropped     corrupted');
  for (const p of imp) {
    for (const d of ['in', 'out'] as const) {
      const s = p[d];
      ctx.out(`  ${String(p.peer).padEnd(4)}  ${d.padEnd(3)}  ${pct(s.loss).padEnd(8)}  ${pct(s.corrupt).padEnd(8)}  ${String(s.frames).padEnd(10)}  ${String(s.dropped).padEnd(10)}  ${s.corrupted}`);
    }
  }
}

/** Host number `host` inside a network given as CIDR; UsageError when it does not fit. */
export function hostInNet(cidr: string, host: number, family: 4 | 6, opt: string): string {
  const bad = () => new UsageError(`option '--${opt}' expects an IPv${family} network like ${family === 4 ? '10.1.1.0/24' : 'fd00::/64'}, got '${cidr}'`);
  let c: Cidr;
  try {
    c = parseCidr(cidr);
  } catch {
    throw bad();
  }
  if (c.family.fam !== family) throw bad();
  const len = c.prefixLen;
  const hostBits = c.family.bits - len;
  if (hostBits < 2) throw new UsageError(`option '--${opt}': prefix length ${len} leaves no room for hosts`);
  // The last host number is the subnet broadcast in IPv4 and left out in IPv6 as well.
  if (hostBits < 32 && host >= 2 ** hostBits - 1) throw new UsageError(`option '--${opt}': ${cidr} has no room for ${host - 1} peers in one VLAN`);
  const base = maskAddr(c.addr, len);
  // host < 2^hostBits: it fits in the zero host bits of the last word (the whole word when hostBits >= 32).
  const a = isIp6(base) ? new Ip6(base.w0, base.w1, base.w2, base.w3 | host) : (base | host) >>> 0;
  return `${addrToString(a)}/${len}`;
}

function labPrefix(opts: OptValues): string | undefined { return opts.prefix as string | undefined; }

async function loadLab() { return import('../lab/lab'); }

function printLab(ctx: CliContext, lab: import('../lab/lab').Lab): void {
  ctx.out(`lab ${lab.prefix}: stack device ${lab.stackDevice} (${lab.stackMac}), switch namespace ${lab.switchNs}, ${lab.peers.length} peer(s)`);
  ctx.out('  peer  namespace   mac                vlan  ipv4                ipv6');
  for (const p of lab.peers) {
    ctx.out(`  ${String(p.index).padEnd(4)}  ${p.ns.padEnd(10)}  ${p.mac}  ${String(p.vlan || '-').padEnd(4)}  ${(p.ipv4 ?? '-').padEnd(18)}  ${p.ipv6 ?? '-'}`);
  }
}

const labCommands: Command[] = [
  {
    name: 'up', summary: 'build the test lab (replaces an existing one)', usage: LAB_UP_USAGE,
    async run(args, ctx) {
      const { opts } = parseOptions(args, { peers: 'int', vlans: 'list', net: 'string', net6: 'string', mtu: 'int', loss: 'string', corrupt: 'string', prefix: 'string', force: 'bool', json: 'bool' }, LAB_UP_USAGE);
      const loss = parsePercent(opts.loss as string | undefined, 'loss', LAB_UP_USAGE);
      const corrupt = parsePercent(opts.corrupt as string | undefined, 'corrupt', LAB_UP_USAGE);
      const vlans = ((opts.vlans as string[] | undefined) ?? []).map((s) => {
        if (!/^\d+$/.test(s) || Number(s) < 1 || Number(s) > 4094) throw new UsageError(`option '--vlans': bad VLAN id '${s}' (expected 1..4094)`, LAB_UP_USAGE);
        return Number(s);
      });
      const n = (opts.peers as number | undefined) ?? (vlans.length || 1);
      if (n < 1) throw new UsageError(`option '--peers' must be at least 1`, LAB_UP_USAGE);
      const net4 = (opts.net as string | undefined) ?? '10.1.1.0/24';
      const net6 = opts.net6 as string | undefined;
      const perVlan = new Map<number, number>();
      const peers = [];
      for (let i = 0; i < n; i++) {
        const vlan = vlans.length ? vlans[i % vlans.length] : 0;
        const k = perVlan.get(vlan) ?? 0;
        perVlan.set(vlan, k + 1);
        peers.push({ vlan, ipv4: hostInNet(net4, k + 2, 4, 'net'), ipv6: net6 ? hostInNet(net6, k + 2, 6, 'net6') : undefined });
      }
      const lab = await loadLab();
      const impair = loss !== undefined || corrupt !== undefined ? { loss, corrupt } : undefined;
      const l = lab.labUp({ prefix: labPrefix(opts), peers, mtu: opts.mtu as number | undefined, impair, force: !!opts.force });
      if (opts.json) ctx.out(JSON.stringify(l, null, 2)); else printLab(ctx, l);
      return 0;
    },
  },
  {
    name: 'down', summary: 'remove the test lab', usage: LAB_DOWN_USAGE,
    async run(args) {
      const { opts } = parseOptions(args, { prefix: 'string' }, LAB_DOWN_USAGE);
      (await loadLab()).labDown(labPrefix(opts));
      return 0;
    },
  },
  {
    name: 'status', summary: 'show the test lab', usage: LAB_STATUS_USAGE,
    async run(args, ctx) {
      const { opts } = parseOptions(args, { prefix: 'string', json: 'bool' }, LAB_STATUS_USAGE);
      const lab = await loadLab();
      const prefix = labPrefix(opts) ?? lab.DEFAULT_PREFIX;
      const l = lab.labStatus(prefix);
      const imp = l ? impairmentOrNull(lab, prefix) : null;
      if (opts.json) { ctx.out(JSON.stringify(l ? { ...l, impairment: imp } : null, null, 2)); return l ? 0 : 1; }
      if (!l) { ctx.out(`no lab with prefix ${prefix}`); return 1; }
      printLab(ctx, l);
      if (imp) printImpairment(ctx, imp);
      else ctx.out('  impairment: none (lab built without the impairment programs)');
      return 0;
    },
  },
  {
    name: 'impair', summary: 'change the random loss/corruption of a running lab', usage: LAB_IMPAIR_USAGE,
    async run(args, ctx) {
      const { opts } = parseOptions(args, { loss: 'string', corrupt: 'string', peer: 'int', dir: 'string', reset: 'bool', prefix: 'string', json: 'bool' }, LAB_IMPAIR_USAGE);
      const loss = parsePercent(opts.loss as string | undefined, 'loss', LAB_IMPAIR_USAGE);
      const corrupt = parsePercent(opts.corrupt as string | undefined, 'corrupt', LAB_IMPAIR_USAGE);
      const dir = opts.dir as string | undefined;
      if (dir !== undefined && dir !== 'in' && dir !== 'out' && dir !== 'both') throw new UsageError(`option '--dir' expects in, out or both, got '${dir}'`, LAB_IMPAIR_USAGE);
      if (loss === undefined && corrupt === undefined && !opts.reset) throw new UsageError('nothing to change: give --loss, --corrupt or --reset', LAB_IMPAIR_USAGE);
      const lab = await loadLab();
      const prefix = labPrefix(opts) ?? lab.DEFAULT_PREFIX;
      const r = lab.labImpair(prefix, { loss, corrupt, dir: dir as 'in' | 'out' | 'both' | undefined, peer: opts.peer as number | undefined, resetCounters: opts.reset === true });
      if (opts.json) ctx.out(JSON.stringify(r, null, 2));
      else { ctx.out(`lab ${prefix}:`); printImpairment(ctx, r); }
      return 0;
    },
  },
];

/** The lab's impairment, or null for a lab built without it. */
function impairmentOrNull(lab: typeof import('../lab/lab'), prefix: string): import('../lab/lab').PeerImpairment[] | null {
  try { return lab.labImpairment(prefix); } catch { return null; }
}

const LAB_USAGE = tableUsage('Usage: xdpstack lab <up|down|status|impair> [options]   (xdpstack lab <command> --help)', labCommands);

// ---------------------------------------------------------------------------------------------
// Top level

export const COMMANDS: Command[] = [
  {
    name: 'lab', summary: 'build, remove or show the namespace test lab, or impair its paths', usage: LAB_USAGE,
    subcommands: labCommands,
  },
  ...STACK_COMMANDS,
];

export function usage(): string {
  return tableUsage('Usage: xdpstack <command> [options]   (xdpstack <command> --help, or xdpstack help <command>)\n\n' +
    'xdpstack: a user-space TCP/IP stack for Node.js over AF_XDP.', COMMANDS);
}

const defaultCtx: CliContext = {
  out: (l) => process.stdout.write(l + '\n'),
  err: (l) => process.stderr.write(l + '\n'),
  stdout: process.stdout,
};

/** Exit status of a process ended by SIGPIPE, as a shell reports it (128 + 13). */
export const EXIT_EPIPE = 141;
let pipeHandlers = false;

/**
 * A reader that goes away (`xdpstack show counters | head -1`, `| true`) ends the command quietly,
 * as SIGPIPE ends the usual Unix tools; Node ignores SIGPIPE and reports EPIPE as an 'error' event
 * on the stream instead, which would otherwise print a stack trace.
 */
export function exitQuietlyOnClosedPipe(): void {
  if (pipeHandlers) return;
  pipeHandlers = true;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if ((e.code === 'EPIPE' || e.code === 'ERR_STREAM_DESTROYED') && stream === process.stdout && closedPipe.onStdoutClosed) {
        closedPipe.onStdoutClosed();
        return;
      }
      if (e.code === 'EPIPE' || e.code === 'ERR_STREAM_DESTROYED') process.exit(EXIT_EPIPE);
      // Any other output failure: nothing more can be printed where it went; say it once elsewhere.
      try { (stream === process.stdout ? process.stderr : process.stdout).write(`xdpstack: output error: ${e.code ?? e.message}\n`); } catch { /* both gone */ }
      process.exit(1);
    });
  }
}

/**
 * `s` with its control characters written as escapes (`\n`, `\x1b`): an argument or a name quoted
 * in an error message cannot break it over lines or send the terminal escape sequences.
 */
export function visible(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f]/g, (c) => {
    const named: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };
    return named[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}

/** Runs the command line (without `node` and the script name); resolves to the exit code. */
export async function main(argv: string[], ctx: CliContext = defaultCtx): Promise<number> {
  if (ctx === defaultCtx) exitQuietlyOnClosedPipe();
  try {
    if (argv[0] === '--version' || argv[0] === '-V') {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      ctx.out(require('../../../package.json').version);
      return 0;
    }
    return await dispatch(COMMANDS, argv, ctx, usage());
  } catch (e) {
    const err = e as Error;
    if (process.env.XDPSTACK_DEBUG) ctx.err(err.stack ?? String(err));
    if (err instanceof UsageError || err?.name === 'LabConfigError') {
      ctx.err(`xdpstack: ${visible(err.message)}`);
      if (err instanceof UsageError && err.usage) ctx.err(err.usage.split('\n\n')[0]);
      return 2;
    }
    // A config file's problems are one per line; any other error is one line, whatever it quotes.
    const text = err?.message ?? String(e);
    ctx.err(`xdpstack: ${err?.name === 'ConfigError' ? text : visible(text)}`);
    return 1;
  }
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
}

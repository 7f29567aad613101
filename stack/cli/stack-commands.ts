/**
 * CLI commands that run a stack or talk to a running one through its control socket:
 *   xdpstack run CONFIG                         foreground stack with a control socket
 *   xdpstack show KIND [--vs NAME] [--json]     vs | links | addresses | routes | rules | neighbors | counters | limits
 *   xdpstack vs add|del NAME                    runtime changes
 *   xdpstack link add DEV --vs NAME [--vlan N] / link del LINK --vs NAME
 *   xdpstack address add|del CIDR --vs NAME [--link LINK]          CIDR of either family
 *   xdpstack route add|del DST [--via GW] [--link L] [--table N] [--metric N] [--src A] --vs NAME
 *   xdpstack rule add|del --priority N [--from CIDR] [--fwmark N] --table N --vs NAME
 *   xdpstack trace [--vs NAME] [--vlan N] [--host ADDR] [--port P] [--proto P] [--count N] --out FILE.pcap|-
 *   xdpstack ping --vs NAME ADDR [--count N] [--interval S] [--size N] [--timeout S]
 *   xdpstack replay CONFIG IN.pcap --out OUT.pcap
 * Every command talking to a stack takes --name NAME (socket /run/xdpstack/NAME.sock) or
 * --socket PATH; with neither, the only running stack is used.
 */
import * as path from 'node:path';
import { CliContext, closedPipe, Command, OptValues, parseOptions, UsageError } from './args';
import { ControlServer, controlRequest, defaultSocketPath, formatShow, formatTable, Request, resolveSocket } from '../control/control';
import { createStack, replayCapture, SHOW_KINDS, Stack } from '../stack';
import { loadConfig, StackConfig } from '../control/config';
import { ShardedStack } from '../shard/threads';
import { TRACE_PROTOS, TraceCounts, TraceFilter, TraceFilterSpec } from '../trace';
import { checkPingOptions, parsePingTarget, PingReply, PingStart, PingSummary, pingText } from '../ping';
import * as fs from 'node:fs';

const TARGET = { name: 'string', socket: 'string' } as const;
const TARGET_HELP = `  --name NAME    stack name (control socket ${defaultSocketPath('NAME')})
  --socket PATH  control socket path`;

async function ask(opts: OptValues, req: Request): Promise<unknown> {
  const sock = resolveSocket({ socket: opts.socket as string | undefined, name: opts.name as string | undefined });
  const r = await controlRequest(sock, req, { timeoutMs: 10_000 });
  if (!r.ok) throw new Error(r.error ?? 'request failed');
  return r.data;
}

// ---------------------------------------------------------------------------------------------
// run

const RUN_USAGE = `Usage: xdpstack run CONFIG [--shards N|auto] [--app FILE] [--socket PATH] [--no-control] [--busy-poll]

Starts the stack described by CONFIG (JSON) in the foreground, with a control socket for
'xdpstack show', 'vs', 'address', 'route' and 'trace'. SIGINT/SIGTERM close it cleanly
(AF_XDP programs are detached).
  --shards N|auto one shard per NIC queue, each in its own thread (auto: the devices' receive
                  queues, at most one per CPU); the config's services run in every shard
  --app FILE      a module run in every shard: module.exports = (stack, { shard, shards }) => {...}
  --socket PATH   control socket (default ${defaultSocketPath('NAME')}, NAME from the config)
  --no-control    no control socket
  --busy-poll     spin instead of sleeping when idle`;

/** Runs a stack until `stop` resolves (signal); exported for tests. */
export async function runStack(configPath: string, opts: { socket?: string; control?: boolean; busyPoll?: boolean; shards?: number | 'auto'; app?: string },
  ctx: CliContext, stop: Promise<unknown>): Promise<number> {
  const cfg = loadConfig(configPath);
  if (opts.shards !== undefined) return runShards(cfg, opts as typeof opts & { shards: number | 'auto' }, ctx, stop);
  if (opts.app !== undefined) throw new UsageError('--app runs a module in every shard: it needs --shards', RUN_USAGE);
  const stack: Stack = createStack(cfg, { busyPoll: opts.busyPoll, log: (m) => ctx.err(m) });
  let server: ControlServer | null = null;
  try {
    const sockPath = opts.socket ?? (cfg.control ? cfg.control.socket : undefined) ?? defaultSocketPath(stack.name);
    if (opts.control !== false && cfg.control !== false) server = await ControlServer.listen(stack, path.resolve(sockPath));
    stack.start();
    ctx.out(`xdpstack: stack '${stack.name}' running: ${cfg.devices.length} device(s), ${cfg.virtualServers.length} virtual server(s)` +
      `${server ? `, control socket ${server.socketPath}` : ''}`);
    await stop;
  } finally {
    await server?.close();
    stack.close();
  }
  ctx.out(`xdpstack: stack '${stack.name}' stopped`);
  return 0;
}

/** `run --shards`: the control plane here, one worker per shard. */
async function runShards(cfg: StackConfig, opts: { socket?: string; control?: boolean; busyPoll?: boolean; shards: number | 'auto'; app?: string },
  ctx: CliContext, stop: Promise<unknown>): Promise<number> {
  let server: ControlServer | null = null;
  // A shard died: the group has stopped and detached its devices; the control socket goes too.
  const onFatal = (msg: string): void => {
    ctx.err(msg);
    void (server?.close() ?? Promise.resolve()).finally(() => process.exit(1));
  };
  const stack = await ShardedStack.start(cfg, { shards: opts.shards, app: opts.app, busyPoll: opts.busyPoll, log: (m) => ctx.err(m), onFatal });
  try {
    const sockPath = opts.socket ?? (cfg.control ? cfg.control.socket : undefined) ?? defaultSocketPath(stack.name);
    if (opts.control !== false && cfg.control !== false) server = await ControlServer.listen(stack, path.resolve(sockPath));
    ctx.out(`xdpstack: stack '${stack.name}' running: ${stack.shards} shard(s), ${cfg.devices.length} device(s), ${cfg.virtualServers.length} virtual server(s)` +
      `${server ? `, control socket ${server.socketPath}` : ''}`);
    await stop;
  } finally {
    await server?.close();
    await stack.close();
  }
  ctx.out(`xdpstack: stack '${stack.name}' stopped`);
  return 0;
}

function signalPromise(): Promise<string> {
  return new Promise((resolve) => {
    const on = (sig: string) => {
      // Removed later: other handlers of this signal (the AF_XDP driver's) run after this one and
      // re-raise the signal when they find themselves alone.
      setImmediate(() => {
        process.off('SIGINT', on);
        process.off('SIGTERM', on);
      });
      resolve(sig);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

// ---------------------------------------------------------------------------------------------
// show

const SHOW_USAGE = `Usage: xdpstack show ${SHOW_KINDS.join('|')} [--vs NAME] [--json] [--name NAME | --socket PATH]

Shows the state of a running stack as aligned tables (or JSON). 'limits': each limit on a table
peers can grow (config 'limits'), its use, its maximum and how often it was reached (hits).
  --vs NAME      only this virtual server
  --per-shard    a stack of shards: each shard's own figures (default: their sum)
  --json         machine-readable output
${TARGET_HELP}`;

// ---------------------------------------------------------------------------------------------
// vs / address / route

const VS_ADD_USAGE = `Usage: xdpstack vs add NAME [--device DEV [--vlan N] [--mac MAC] [--mtu N] [--address CIDR,...]]
                       [--name STACK | --socket PATH]

Creates a virtual server in the running stack, optionally with one link on DEV (VLAN N) and its
addresses (IPv4 or IPv6: 10.1.1.1/24,fd00::1/64); more links can be added later with
'xdpstack link add'.
${TARGET_HELP.replace('--name NAME    stack name', '--name STACK   stack name')}`;
const LINK_ADD_USAGE = `Usage: xdpstack link add DEV --vs NAME [--vlan N] [--mac MAC] [--mtu N] [--link LINK] [--address CIDR,...]
                         [--name STACK | --socket PATH]

Adds a link on device DEV (VLAN N) to a virtual server of the running stack; --link names it
(default DEV or DEV.N), --address gives its addresses (IPv4 or IPv6: 10.2.2.1/24,fd00:2::1/64).
The rules are a config file's: a VLAN + MAC another link uses is refused.`;
const LINK_DEL_USAGE = `Usage: xdpstack link del LINK --vs NAME [--name STACK | --socket PATH]

Removes a link of a virtual server with its addresses and the routes through it.`;
const VS_DEL_USAGE = `Usage: xdpstack vs del NAME [--name STACK | --socket PATH]

Destroys a virtual server: its sockets are closed, its links and addresses removed.`;

const ADDR_USAGE = (op: string) => `Usage: xdpstack address ${op} CIDR --vs NAME [--link LINK] [--name STACK | --socket PATH]

${op === 'add' ? 'Adds' : 'Removes'} an IPv4 or IPv6 address (like 10.1.1.1/24 or fd00::1/64) on a link of a
virtual server (--link may be left out when the virtual server has one link). Every link has an
IPv6 link-local address (fe80::/64 from its MAC); adding a link-local address replaces it. A new
IPv6 address is 'tentative' in 'xdpstack show addresses' until duplicate address detection
passes, and 'duplicate' (not used) when another node has it.`;

const ROUTE_USAGE = (op: string) => `Usage: xdpstack route ${op} DST --vs NAME [--via GW] [--link LINK] [--onlink] [--table N] [--metric N] [--src ADDR]
                          [--name STACK | --socket PATH]

${op === 'add' ? 'Adds' : 'Removes'} a static route. DST is a.b.c.d/len, an IPv6 prefix like fd00:2::/48, or
'default' (0.0.0.0/0, or ::/0 when --via or --src is IPv6; ::/0 may be written). GW and ADDR are
of DST's family; a link-local gateway needs its link: --via fe80::1 --link LINK, or --via fe80::1%LINK.`;

const RULE_USAGE = (op: string) => `Usage: xdpstack rule ${op} --priority N${op === 'add' ? ' [--from PREFIX] [--fwmark N] --table N' : ''} --vs NAME [--name STACK | --socket PATH]

${op === 'add'
    ? `Adds a policy rule: packets from PREFIX (IPv4 or IPv6, like 10.1.0.0/16 or fd00:1::/64; a plain
address is one host; default all) and/or with socket mark N look up table N, in priority order.`
    : 'Removes the policy rules of priority N.'}`;

function vsTarget(opts: OptValues, usage: string): string {
  const vs = opts.vs as string | undefined;
  if (!vs) throw new UsageError('option --vs NAME is required', usage);
  return vs;
}

function one(positional: string[], what: string, usage: string): string {
  if (positional.length !== 1) throw new UsageError(`expected ${what}`, usage);
  return positional[0]!;
}

const vsCommands: Command[] = [
  {
    name: 'add', summary: 'create a virtual server', usage: VS_ADD_USAGE,
    async run(args, ctx) {
      const { opts, positional } = parseOptions(args, { ...TARGET, device: 'string', vlan: 'int', mac: 'string', mtu: 'int', address: 'list' }, VS_ADD_USAGE, 1);
      const name = one(positional, 'a virtual server NAME', VS_ADD_USAGE);
      if ((opts.vlan !== undefined || opts.mac !== undefined || opts.mtu !== undefined || opts.address !== undefined) && opts.device === undefined) {
        throw new UsageError('--vlan, --mac, --mtu and --address describe a link: give --device too', VS_ADD_USAGE);
      }
      const links = opts.device !== undefined ? [{ device: opts.device, vlan: opts.vlan, mac: opts.mac, mtu: opts.mtu, addresses: opts.address }] : [];
      await ask(opts, { cmd: 'vs.add', name, links });
      ctx.out(`virtual server '${name}' created`);
      return 0;
    },
  },
  {
    name: 'del', summary: 'destroy a virtual server', usage: VS_DEL_USAGE,
    async run(args, ctx) {
      const { opts, positional } = parseOptions(args, TARGET, VS_DEL_USAGE, 1);
      const name = one(positional, 'a virtual server NAME', VS_DEL_USAGE);
      await ask(opts, { cmd: 'vs.del', name });
      ctx.out(`virtual server '${name}' destroyed`);
      return 0;
    },
  },
];

const linkCommands: Command[] = [
  {
    name: 'add', summary: 'add a link to a virtual server', usage: LINK_ADD_USAGE,
    async run(args, ctx) {
      const { opts, positional } = parseOptions(args, { ...TARGET, vs: 'string', vlan: 'int', mac: 'string', mtu: 'int', link: 'string', address: 'list' }, LINK_ADD_USAGE, 1);
      const device = one(positional, 'a device DEV', LINK_ADD_USAGE);
      const vs = vsTarget(opts, LINK_ADD_USAGE);
      await ask(opts, { cmd: 'link.add', vs, device, vlan: opts.vlan, mac: opts.mac, mtu: opts.mtu, name: opts.link, addresses: opts.address });
      ctx.out(`link ${(opts.link as string | undefined) ?? (opts.vlan !== undefined ? `${device}.${opts.vlan}` : device)} added to virtual server '${vs}'`);
      return 0;
    },
  },
  {
    name: 'del', summary: 'remove a link of a virtual server', usage: LINK_DEL_USAGE,
    async run(args) {
      const { opts, positional } = parseOptions(args, { ...TARGET, vs: 'string' }, LINK_DEL_USAGE, 1);
      const link = one(positional, 'a LINK name', LINK_DEL_USAGE);
      await ask(opts, { cmd: 'link.del', vs: vsTarget(opts, LINK_DEL_USAGE), link });
      return 0;
    },
  },
];

function addrCommand(op: 'add' | 'del'): Command {
  const usage = ADDR_USAGE(op);
  return {
    name: op, summary: `${op === 'add' ? 'add' : 'remove'} an address`, usage,
    async run(args) {
      const { opts, positional } = parseOptions(args, { ...TARGET, vs: 'string', link: 'string' }, usage, 1);
      const cidr = one(positional, 'an address like 10.1.1.1/24 or fd00::1/64', usage);
      await ask(opts, { cmd: `address.${op}`, vs: vsTarget(opts, usage), link: opts.link, cidr });
      return 0;
    },
  };
}

function routeCommand(op: 'add' | 'del'): Command {
  const usage = ROUTE_USAGE(op);
  return {
    name: op, summary: `${op === 'add' ? 'add' : 'remove'} a route`, usage,
    async run(args) {
      const { opts, positional } = parseOptions(args,
        { ...TARGET, vs: 'string', via: 'string', link: 'string', onlink: 'bool', table: 'int', metric: 'int', src: 'string' }, usage, 1);
      const dst = one(positional, "a destination like 10.2.0.0/16, fd00:2::/48 or 'default'", usage);
      await ask(opts, { cmd: `route.${op}`, vs: vsTarget(opts, usage), dst, via: opts.via, link: opts.link, onlink: opts.onlink ? true : undefined, table: opts.table, metric: opts.metric, src: opts.src });
      return 0;
    },
  };
}

function ruleCommand(op: 'add' | 'del'): Command {
  const usage = RULE_USAGE(op);
  return {
    name: op, summary: `${op === 'add' ? 'add' : 'remove'} a policy rule`, usage,
    async run(args) {
      const spec = op === 'add' ? { ...TARGET, vs: 'string', priority: 'int', from: 'string', fwmark: 'int', table: 'int' } as const
        : { ...TARGET, vs: 'string', priority: 'int' } as const;
      const { opts } = parseOptions(args, spec, usage);
      if (opts.priority === undefined) throw new UsageError('option --priority N is required', usage);
      if (op === 'add' && opts.table === undefined) throw new UsageError('option --table N is required', usage);
      await ask(opts, { cmd: `rule.${op}`, vs: vsTarget(opts, usage), priority: opts.priority, from: opts.from, fwmark: opts.fwmark, table: opts.table });
      return 0;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// trace

const TRACE_USAGE = `Usage: xdpstack trace --out FILE.pcap|- [--vs NAME] [--vlan N] [--host ADDR] [--port P]
                      [--proto ${TRACE_PROTOS.join('|')}] [--count N] [--name STACK | --socket PATH]

Asks the running stack to mirror frames into a pcap: those of a virtual server's links (device +
VLAN), or of every device. Stops after N matching frames, or on Ctrl-C; the counts go to stderr.
  --out FILE.pcap  written by the stack
  --out -          the capture on standard output, e.g. 'xdpstack trace --out - | tshark -r -'
                   (nothing else is written there; a reader that goes away ends the trace)
  --vs NAME        only the links of this virtual server
  --vlan N         frames with VLAN id N in an 802.1Q or 802.1ad tag
  --host ADDR      IPv4/IPv6 source or destination; also ARP's sender/target address and the
                   target of an IPv6 Neighbor Solicitation/Advertisement
  --port P         TCP or UDP source or destination port
  --proto P        tcp, udp (IPv4 or IPv6), icmp (IPv4), icmp6, arp, ipv4, ipv6
  --count N        stop after N frames that match
Filters combine with AND. tcpdump on the device does not see what the XDP program redirects to
the stack: this is where those frames are (README, 'Tracing').`;

/** `N frames captured (...)`: the stop message. */
function traceCountsText(c: TraceCounts): string {
  return `${c.captured} frame(s) captured (${c.matched} matched the filter of ${c.seen} seen${c.dropped ? `, ${c.dropped} dropped: the reader did not keep up` : ''})`;
}

/** The trace filter of the options (checked here, so a bad one is a usage error). */
function traceFilterOpts(opts: OptValues): TraceFilterSpec {
  const f: TraceFilterSpec = { vlan: opts.vlan as number | undefined, host: opts.host as string | undefined, port: opts.port as number | undefined, proto: opts.proto as string | undefined };
  try {
    TraceFilter.parse(f);
  } catch (e) {
    throw new UsageError(`bad filter: ${(e as Error).message}`, TRACE_USAGE);
  }
  return f;
}

async function traceCommand(args: string[], ctx: CliContext): Promise<number> {
  const { opts } = parseOptions(args, { ...TARGET, vs: 'string', count: 'int', out: 'string', vlan: 'int', host: 'string', port: 'int', proto: 'string' }, TRACE_USAGE);
  if (!opts.out) throw new UsageError('option --out FILE.pcap (or --out - for standard output) is required', TRACE_USAGE);
  if (opts.count === 0) throw new UsageError('option --count must be at least 1', TRACE_USAGE);
  const filter = traceFilterOpts(opts);
  const toStdout = opts.out === '-';
  const stdout = ctx.stdout;
  if (toStdout && !stdout) throw new UsageError('--out - needs a standard output to write the capture to', TRACE_USAGE);
  const sock = resolveSocket({ socket: opts.socket as string | undefined, name: opts.name as string | undefined });
  const out = toStdout ? '-' : path.resolve(opts.out as string);
  const ac = new AbortController();
  let pipeClosed = false;
  // Ctrl-C, or the reader of standard output going away: the stack stops the trace and says what it did.
  const onSig = () => ac.abort();
  process.once('SIGINT', onSig);
  if (toStdout) closedPipe.onStdoutClosed = () => { pipeClosed = true; ac.abort(); };
  const filterText = TraceFilter.parse(filter).toString();
  try {
    const req: Request = { cmd: 'trace', vs: opts.vs, count: opts.count, ...filter, ...(toStdout ? { stream: true } : { out }) };
    const r = await controlRequest(sock, req, {
      signal: ac.signal,
      endOnAbort: true,
      onEvent: (e) => {
        if (e.event !== 'started') return;
        ctx.err(`tracing${opts.vs ? ` virtual server '${opts.vs}'` : ''}${filterText ? ` (${filterText})` : ''} into ${toStdout ? 'standard output' : out}` +
          `${opts.count ? `, ${opts.count} frame(s)` : ''}; Ctrl-C stops`);
      },
      onData: (chunk) => {
        if (pipeClosed) return;
        // Back-pressure: the stack's side of the connection fills, then its trace drops (counted).
        if (!stdout!.write(chunk)) return new Promise<void>((resolve) => { stdout!.once('drain', resolve); ac.signal.addEventListener('abort', () => resolve(), { once: true }); });
      },
    });
    if (!r.ok) throw new Error(r.error ?? 'trace failed');
    const counts = r.data as TraceCounts | undefined;
    const where = toStdout ? (pipeClosed ? 'the reader closed standard output; ' : '') : '';
    if (r.event === 'done' && counts) ctx.err(`xdpstack: trace stopped: ${where}${traceCountsText(counts)}${toStdout ? '' : ` into ${out}`}`);
    else if (r.event === 'done') ctx.err(`xdpstack: trace stopped: ${r.frames} frame(s) written${toStdout ? '' : ` to ${out}`}`);
    else ctx.err(`xdpstack: trace stopped${toStdout ? '' : `; frames written to ${out}`}`);
  } finally {
    process.off('SIGINT', onSig);
    if (toStdout) closedPipe.onStdoutClosed = null;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// ping

const PING_USAGE = `Usage: xdpstack ping --vs NAME ADDR [--count N] [--interval S] [--size N] [--timeout S]
                     [--name STACK | --socket PATH]

Sends ICMP (IPv4) or ICMPv6 Echo Requests from inside virtual server NAME, as 'ip vrf exec VRF
ping' would: from the VS's address for ADDR, by its routes and rules. ADDR is IPv4 or IPv6
(fe80::2%LINK for a link-local one). Prints a line per reply and ping's summary; exit code 0
when a reply came, 1 when none did.
  --count N      requests to send (default: until Ctrl-C)
  --interval S   seconds between requests (default 1, at least 0.01)
  --size N       data bytes per request (default 56)
  --timeout S    seconds to wait for the last replies after the last request (default 10)`;

/** A positive number option given as text ('0.2'): UsageError otherwise. */
function seconds(v: string | undefined, opt: string, usage: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+(\.\d+)?$/.test(v)) throw new UsageError(`option '--${opt}' expects seconds like 1 or 0.2, got '${v}'`, usage);
  return Number(v);
}

async function pingCommand(args: string[], ctx: CliContext): Promise<number> {
  const { opts, positional } = parseOptions(args, { ...TARGET, vs: 'string', count: 'int', interval: 'string', size: 'int', timeout: 'string' }, PING_USAGE, 1);
  const target = one(positional, 'an address to ping (IPv4 or IPv6)', PING_USAGE);
  const vs = vsTarget(opts, PING_USAGE);
  const po = {
    count: opts.count as number | undefined, interval: seconds(opts.interval as string | undefined, 'interval', PING_USAGE),
    size: opts.size as number | undefined, timeout: seconds(opts.timeout as string | undefined, 'timeout', PING_USAGE),
  };
  try {
    checkPingOptions(po);
    parsePingTarget(target);
  } catch (e) {
    throw new UsageError((e as Error).message, PING_USAGE);
  }
  const sock = resolveSocket({ socket: opts.socket as string | undefined, name: opts.name as string | undefined });
  const ac = new AbortController();
  const onSig = () => ac.abort();
  process.once('SIGINT', onSig);
  try {
    const r = await controlRequest(sock, { cmd: 'icmp.echo', vs, target, ...po }, {
      signal: ac.signal,
      endOnAbort: true,
      onEvent: (e) => {
        if (e.event === 'started') ctx.out(pingText.header(e.data as PingStart));
        else if (e.event === 'reply') ctx.out(pingText.reply(e.data as PingReply));
        else if (e.event === 'error') { const d = e.data as { seq: number; error: string }; ctx.err(pingText.error(d.seq, d.error)); }
      },
    });
    if (!r.ok) throw new Error(r.error ?? 'ping failed');
    if (r.event !== 'done') { ctx.err('xdpstack: ping interrupted before its summary'); return 1; }
    const sum = r.data as PingSummary;
    ctx.out('');
    for (const l of pingText.summary(sum)) ctx.out(l);
    return sum.received > 0 ? 0 : 1;
  } finally {
    process.off('SIGINT', onSig);
  }
}

// ---------------------------------------------------------------------------------------------
// replay

const REPLAY_USAGE = `Usage: xdpstack replay CONFIG IN.pcap --out OUT.pcap [--device NAME] [--mac MAC] [--linger SECONDS] [--json]

Runs the stack of CONFIG under virtual time with its device replaced by a capture reader: frames
of IN.pcap arrive at their timestamps, and what the stack sends is written to OUT.pcap. The same
input always gives the same output, byte for byte.
  --device NAME     the device the capture feeds (needed when CONFIG has several)
  --mac MAC         MAC of that device (default: the config's; for an AF_XDP device, whose MAC is
                    the interface's, the destination MAC of the capture's frames to the config's
                    addresses; else 02:00:00:00:00:01)
  --linger SECONDS  keep running timers after the last frame (default 5)
  --json            print the summary and counters as JSON`;

// ---------------------------------------------------------------------------------------------

export const STACK_COMMANDS: Command[] = [
  {
    name: 'run', summary: 'run a stack from a config file (foreground)', usage: RUN_USAGE,
    async run(args, ctx) {
      const { opts, positional } = parseOptions(args, { socket: 'string', 'no-control': 'bool', 'busy-poll': 'bool', shards: 'string', app: 'string' }, RUN_USAGE, 1);
      const file = one(positional, 'a CONFIG file', RUN_USAGE);
      let shards: number | 'auto' | undefined;
      if (opts.shards !== undefined) {
        const v = opts.shards as string;
        if (v !== 'auto' && !/^[1-9]\d*$/.test(v)) throw new UsageError(`option '--shards' expects a positive integer or 'auto', got '${v}'`, RUN_USAGE);
        shards = v === 'auto' ? 'auto' : Number(v);
      }
      const app = opts.app as string | undefined;
      if (app !== undefined && !fs.existsSync(app)) throw new UsageError(`--app: no such file '${app}'`, RUN_USAGE);
      return runStack(file, { socket: opts.socket as string | undefined, control: !opts['no-control'], busyPoll: !!opts['busy-poll'], shards, app }, ctx, signalPromise());
    },
  },
  {
    name: 'show', summary: 'show virtual servers, links, addresses, routes, neighbors, counters or limits', usage: SHOW_USAGE,
    async run(args, ctx) {
      const { opts, positional } = parseOptions(args, { ...TARGET, vs: 'string', json: 'bool', 'per-shard': 'bool' }, SHOW_USAGE, 1);
      const kind = one(positional, `what to show (${SHOW_KINDS.join(', ')})`, SHOW_USAGE);
      if (!(SHOW_KINDS as readonly string[]).includes(kind)) throw new UsageError(`unknown kind '${kind}' (one of ${SHOW_KINDS.join(', ')})`, SHOW_USAGE);
      const data = await ask(opts, { cmd: 'show', kind, vs: opts.vs, ...(opts['per-shard'] ? { perShard: true } : {}) });
      if (opts.json) ctx.out(JSON.stringify(data, null, 2));
      else for (const l of formatShow(kind, data)) ctx.out(l);
      return 0;
    },
  },
  {
    name: 'vs', summary: 'create or destroy a virtual server in a running stack', usage: `Usage: xdpstack vs add|del NAME ...`,
    subcommands: vsCommands,
  },
  {
    name: 'link', summary: 'add or remove a link of a virtual server in a running stack', usage: `Usage: xdpstack link add DEV --vs NAME [--vlan N] | link del LINK --vs NAME`,
    subcommands: linkCommands,
  },
  {
    name: 'address', summary: 'add or remove an address in a running stack', usage: `Usage: xdpstack address add|del CIDR --vs NAME [--link LINK]`,
    subcommands: [addrCommand('add'), addrCommand('del')],
  },
  {
    name: 'route', summary: 'add or remove a route in a running stack', usage: `Usage: xdpstack route add|del DST --vs NAME [--via GW] [--link L] [--table N]`,
    subcommands: [routeCommand('add'), routeCommand('del')],
  },
  {
    name: 'rule', summary: 'add or remove a policy rule in a running stack', usage: `Usage: xdpstack rule add|del --priority N [--from PREFIX] [--table N] --vs NAME`,
    subcommands: [ruleCommand('add'), ruleCommand('del')],
  },
  {
    name: 'trace', summary: 'capture frames of a running stack (filtered) into a pcap file or to standard output', usage: TRACE_USAGE,
    run: traceCommand,
  },
  {
    name: 'ping', summary: 'ping an address from inside a virtual server (ICMP or ICMPv6 echo)', usage: PING_USAGE,
    run: pingCommand,
  },
  {
    name: 'replay', summary: 'run a config over a capture under virtual time, writing what it sends', usage: REPLAY_USAGE,
    async run(args, ctx) {
      const { opts, positional } = parseOptions(args, { out: 'string', device: 'string', mac: 'string', linger: 'int', json: 'bool' }, REPLAY_USAGE, 2);
      if (positional.length !== 2) throw new UsageError('expected CONFIG and IN.pcap', REPLAY_USAGE);
      if (!opts.out) throw new UsageError('option --out OUT.pcap is required', REPLAY_USAGE);
      const r = replayCapture(positional[0]!, positional[1]!, opts.out as string, {
        device: opts.device as string | undefined, mac: opts.mac as string | undefined,
        lingerUs: opts.linger !== undefined ? (opts.linger as number) * 1e6 : undefined,
      });
      if (opts.json) { ctx.out(JSON.stringify(r, null, 2)); return 0; }
      ctx.out(`replayed ${r.input} frame(s)${r.skippedNonEthernet ? ` (${r.skippedNonEthernet} non-Ethernet record(s) skipped)` : ''}, ` +
        `sent ${r.output} frame(s) to ${opts.out} (device MAC ${r.mac})`);
      const c = r.counters as { devices: Record<string, unknown>[] };
      for (const l of formatTable(c.devices, ['device', 'rxPackets', 'txPackets', 'drops'])) ctx.out(l);
      return 0;
    },
  },
];

/**
 * CLI commands that run a stack or talk to a running one through its control socket:
 *   xdpstack run CONFIG                         foreground stack with a control socket
 *   xdpstack show KIND [--vs NAME] [--json]     vs | links | addresses | routes | rules | neighbors | counters | pool | limits | connections | vips | config
 *   xdpstack show connections [--state S] [--port P]   like ss -tuani
 *   xdpstack show KIND --interval S [--count N] rates per second of the counters (counters, vs, limits, vips)
 *   xdpstack clear counters [--vs NAME]         zeroes packet/byte/drop counters
 *   xdpstack neighbor show|flush ...            ARP/NDP entries: list (as show neighbors), flush
 *   xdpstack vs add|del NAME                    runtime changes
 *   xdpstack link add DEV --vs NAME [--vlan N] / link del LINK --vs NAME
 *   xdpstack address add|del CIDR --vs NAME [--link LINK]          CIDR of either family
 *   xdpstack route add|del DST [--via GW] [--link L] [--table N] [--metric N] [--src A] --vs NAME
 *   xdpstack rule add|del --priority N [--from CIDR] [--fwmark N] --table N --vs NAME
 *   xdpstack vip add|del ADDR --vs NAME                             a VIP (direct server return)
 *   xdpstack decap set --vs NAME --from CIDR[,CIDR...] [--overhead N] / decap clear --vs NAME
 *   xdpstack trace [--vs NAME] [--vlan N] [--host ADDR] [--port P] [--proto P] [--count N] --out FILE.pcap|-
 *   xdpstack ping --vs NAME ADDR [--count N] [--interval S] [--size N] [--timeout S]
 *   xdpstack replay CONFIG IN.pcap --out OUT.pcap
 * Every command talking to a stack takes --name NAME (socket /run/xdpstack/NAME.sock) or
 * --socket PATH; with neither, the only running stack is used.
 */
import * as path from 'node:path';
import { CliContext, closedPipe, Command, didYouMean, OptValues, parseOptions, tableUsage, UsageError } from './args';
import { MAX_INTERVAL_S, MIN_INTERVAL_S, parseInterval, RATE_KINDS, RateSample, roundNumbers, watchRates } from './rates';
import { VS_LIMIT_KEYS } from '../limits';
import { controlRequest, defaultSocketPath, listenControl, Request, resolveSocket } from '../control/control';
import { formatShow, formatTable } from '../control/format';
import { createStack, SHOW_KINDS, Stack } from '../stack';
import { replayCapture } from '../replay';
import { parseStateFilter, STATE_FILTER_NAMES } from '../connections';
import { loadConfig, StackConfig } from '../control/config';
import { ShardedStack } from '../shard/threads';
import { TRACE_PROTOS, TraceCounts, TraceFilter, TraceFilterSpec } from '../trace';
import { checkPingOptions, parsePingTarget, PingIcmpError, PingReply, PingStart, PingSummary, pingText } from '../ping';
import * as fs from 'node:fs';
import { LogFormat, logFormatProblem, Logger, LogLevel, logLevelProblem, stackLogger } from '../control/log';

const TARGET = { name: 'string', socket: 'string' } as const;
const TARGET_HELP = `  --name NAME    stack name (control socket ${defaultSocketPath('NAME')})
  --socket PATH  control socket path`;

/** The control socket of --socket or --name (else the only running stack); a bad --name is a usage error. */
function socketOf(opts: OptValues): string {
  try {
    return resolveSocket({ socket: opts.socket as string | undefined, name: opts.name as string | undefined });
  } catch (e) {
    if ((e as Error).name === 'ValidationError') throw new UsageError(`option '--name': ${(e as Error).message}`);
    throw e;
  }
}

async function ask(opts: OptValues, req: Request): Promise<unknown> {
  const sock = socketOf(opts);
  const r = await controlRequest(sock, req, { timeoutMs: 10_000 });
  if (!r.ok) throw new Error(r.error ?? 'request failed');
  return r.data;
}

// ---------------------------------------------------------------------------------------------
// run

const RUN_USAGE = `Usage: xdpstack run CONFIG [--shards N|auto] [--app FILE] [--socket PATH] [--no-control] [--busy-poll]
                    [--log-level error|warn|info|debug] [--log-format text|json]

Starts the stack described by CONFIG (JSON) in the foreground, with a control socket for
'xdpstack show', 'vs', 'address', 'route' and 'trace', and the Prometheus endpoint of the
config's 'metrics' ({ "listen": "127.0.0.1:9464" }: http://127.0.0.1:9464/metrics). Events
(runtime changes, devices lost and back, limits reached) are logged on standard error, one line
each. SIGINT/SIGTERM close it cleanly (AF_XDP programs are detached).
  --shards N|auto one shard per NIC queue, each in its own thread (auto: the devices' receive
                  queues, at most one per CPU); the config's services run in every shard
  --app FILE      a module run in every shard: module.exports = (stack, { shard, shards }) => {...}
  --socket PATH   control socket (default ${defaultSocketPath('NAME')}, NAME from the config)
  --no-control    no control socket
  --busy-poll     spin instead of sleeping when idle
  --log-level L   log lines of level L and more severe (default: the config's logLevel, else info)
  --log-format F  text (time, level, event, key=value fields) or json (default: the config's, else text)`;

interface RunOptions {
  socket?: string; control?: boolean; busyPoll?: boolean; shards?: number | 'auto'; app?: string;
  logLevel?: LogLevel; logFormat?: LogFormat;
}

/** Runs a stack until `stop` resolves (signal); exported for tests. */
export async function runStack(configPath: string, opts: RunOptions, ctx: CliContext, stop: Promise<unknown>): Promise<number> {
  const cfg = loadConfig(configPath);
  const logger = stackLogger({ log: (l) => ctx.err(l), logLevel: opts.logLevel, logFormat: opts.logFormat }, cfg);
  if (opts.shards !== undefined) return runShards(cfg, opts as RunOptions & { shards: number | 'auto' }, logger, ctx, stop);
  if (opts.app !== undefined) throw new UsageError('--app runs a module in every shard: it needs --shards', RUN_USAGE);
  // As the library's `control` option: --socket, else the config's control.socket, else the default path.
  const control = opts.control !== false && cfg.control !== false ? opts.socket ?? true : false;
  const stack: Stack = createStack(cfg, { busyPoll: opts.busyPoll, logger });
  try {
    if (control) await listenControl(stack, control);
    const metrics = cfg.metrics ? await stack.serveMetrics() : null;
    stack.start();
    ctx.out(`xdpstack: stack '${stack.name}' running: ${cfg.devices.length} device(s), ${cfg.virtualServers.length} virtual server(s)` +
      `${stack.controlSocket ? `, control socket ${stack.controlSocket}` : ''}${metrics ? `, metrics ${metrics.url}` : ''}`);
    await stop;
  } finally {
    stack.close();
  }
  ctx.out(`xdpstack: stack '${stack.name}' stopped`);
  return 0;
}

/** `run --shards`: the control plane here, one worker per shard. */
async function runShards(cfg: StackConfig, opts: RunOptions & { shards: number | 'auto' }, logger: Logger,
  ctx: CliContext, stop: Promise<unknown>): Promise<number> {
  // A shard died: the group has stopped, detached its devices and removed its control socket.
  const onFatal = (msg: string): void => {
    ctx.err(msg);
    process.exit(1);
  };
  const control = opts.control !== false && cfg.control !== false ? opts.socket ?? true : false;
  const stack = await ShardedStack.start(cfg, { shards: opts.shards, app: opts.app, busyPoll: opts.busyPoll, logger, onFatal, control });
  try {
    const metrics = cfg.metrics ? await stack.serveMetrics() : null;
    ctx.out(`xdpstack: stack '${stack.name}' running: ${stack.shards} shard(s), ${cfg.devices.length} device(s), ${cfg.virtualServers.length} virtual server(s)` +
      `${stack.controlSocket ? `, control socket ${stack.controlSocket}` : ''}${metrics ? `, metrics ${metrics.url}` : ''}`);
    await stop;
  } finally {
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

const SHOW_USAGE = `Usage: xdpstack show ${SHOW_KINDS.join('|')} [--vs NAME] [--json] [--per-shard]
                     [--interval S [--count N]] [--name NAME | --socket PATH]
       xdpstack show connections [--vs NAME] [--state S[,S...]] [--port P] [--json]

Shows the state of a running stack as aligned tables (or JSON). 'limits': each limit on a table
peers can grow (config 'limits'), its use, its maximum and how often it was reached (hits).
'config': the running configuration (after every runtime change) as JSON that 'xdpstack run'
accepts back. Drops are { total, reasons } in JSON; tables show the total, and 'show counters'
lists the reasons under 'Drops by reason'.
'connections': like 'ss -tuani', every TCP connection, TCP listener and UDP socket with its
state (ss's names: ESTAB, SYN-SENT, SYN-RECV, FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT, CLOSE-WAIT,
LAST-ACK, CLOSING, CLOSED, LISTEN; UDP: ESTAB when connected, else UNCONN), receive and send
queues in bytes (a listener: its accept queue and backlog), addresses, and under each TCP
connection its RTT, RTO (ms), MSS, cwnd/ssthresh (segments), options, bytes and retransmissions.
'counters' also gives each virtual server's TCP counters (Linux's Tcp/TcpExt MIB names).
'vips': per virtual server with VIPs or load balancers (with --vs: that one in any case), its
VIPs, the load balancers it takes encapsulated traffic from (FROM; none: nothing is taken), the
bytes their encapsulation adds (OVERHEAD, '(default)' when not configured), and the packets
decapsulated to a VIP, refused for their outer source or for an inner destination that is no VIP,
and every decapsulation drop (reasons under 'Drops by reason').
  --vs NAME      only this virtual server
  --state S      connections in these states (ss's filter names, comma-separated):
                 ${STATE_FILTER_NAMES.join(', ')}
  --port P       connections whose local or remote port is P
  --per-shard    a stack of shards: each shard's own figures (default: their sum)
  --json         machine-readable output (with --interval: one JSON object per line and sample)
  --interval S   rates per second of ${RATE_KINDS.join(', ')}: every S seconds (${MIN_INTERVAL_S}..${MAX_INTERVAL_S}), the
                 counters' increase over the time measured between two samples; gauges
                 (connections, sockets, frame pools, limits in use, overheads) as they are.
                 Until Ctrl-C, or:
  --count N      stop after N samples of rates
${TARGET_HELP}`;

const CLEAR_USAGE = `Usage: xdpstack clear counters [--vs NAME] [--name NAME | --socket PATH]

Zeroes the packet, byte and drop counters of a running stack (every shard of a stack of shards):
of every device (with its driver's drops and XDP statistics), link and virtual server, the TCP open
counts and the shards' hand-over counts; with --vs, only that virtual server's and its links'.
Not cleared: gauges (connections, sockets, neighbor entries, frame pools, the use of limits) and
the limit hits of 'show limits', which count from the stack's start.
${TARGET_HELP}`;

const NEIGHBOR_SHOW_USAGE = `Usage: xdpstack neighbor show [--vs NAME] [--json] [--name NAME | --socket PATH]

Lists the neighbor (ARP and NDP) entries, as 'xdpstack show neighbors' (and 'ip neigh show'): per
virtual server and link the address, MAC, state and frames queued while resolving.
${TARGET_HELP}`;

const NEIGHBOR_FLUSH_USAGE = `Usage: xdpstack neighbor flush --vs NAME [--link LINK] [ADDR] [--name NAME | --socket PATH]

Removes the neighbor (ARP and NDP) entries of a virtual server, as 'ip neigh flush': of every link
or of LINK, every entry or only ADDR's (IPv4 or IPv6). All entries are learned (the stack keeps no
static ones); the next frame to a flushed neighbor resolves it again. Frames waiting on an entry
still resolving are dropped as when resolution fails. Every shard of a stack of shards flushes.
${TARGET_HELP}`;

// ---------------------------------------------------------------------------------------------
// vs / address / route

const VS_ADD_USAGE = `Usage: xdpstack vs add NAME [--device DEV [--vlan N] [--mac MAC] [--mtu N] [--address CIDR,...]]
                       [--limits KEY=N,...] [--name STACK | --socket PATH]

Creates a virtual server in the running stack, optionally with one link on DEV (VLAN N) and its
addresses (IPv4 or IPv6: 10.1.1.1/24,fd00::1/64); more links can be added later with
'xdpstack link add'. --limits sets its own limits (${Object.keys(VS_LIMIT_KEYS).join(', ')}), as a
config's virtual server 'limits': --limits tcpConnections=1000,neighbors=512.
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

const VIP_USAGE = (op: string) => `Usage: xdpstack vip ${op} ADDR --vs NAME [--name STACK | --socket PATH]

${op === 'add'
    ? `Adds a VIP to a virtual server: an address (IPv4 or IPv6, like 198.51.100.10 or 2001:db8::10) it
serves behind an L4 load balancer (direct server return) but never answers ARP or NDP for. Its
traffic comes encapsulated (IPIP, IPv6 tunnels) from the load balancers of 'xdpstack decap set';
replies leave from the VIP straight to the client, routed. Services and sockets may bind to it.
A VIP is not an address of one of the virtual server's links.`
    : `Removes a VIP of a virtual server: what comes encapsulated to it afterwards is dropped and
counted (decap-not-vip in 'xdpstack show vips'). Its connections are not closed, as Linux leaves
sockets open when an address is removed.`}`;

const DECAP_SET_USAGE = `Usage: xdpstack decap set --vs NAME --from CIDR[,CIDR...] [--overhead N] [--name STACK | --socket PATH]

Sets where a virtual server takes encapsulated traffic for its VIPs from: the load balancers'
source prefixes (IPv4 or IPv6, like 10.1.1.100/32,fd00:1::100/128), replacing the previous ones.
Encapsulated packets (IPIP RFC 2003, IPv6 tunnels RFC 2473, either family in either) to an address
of the virtual server's links from one of them are decapsulated, and their inner packet, which
must be to a VIP, is taken in; from anywhere else they are dropped and counted
(decap-source-refused in 'xdpstack show vips').
  --from CIDR,...  the load balancers' prefixes (no host bits set)
  --overhead N     bytes their encapsulation adds, 0..512: the MSS offered on a connection to a
                   VIP is lowered by N (default, also when left out here: the outer header the
                   connection's SYN came in, 20 for IPv4 or 40 for IPv6)`;

const DECAP_CLEAR_USAGE = `Usage: xdpstack decap clear --vs NAME [--name STACK | --socket PATH]

Takes encapsulated traffic from no load balancer any more (as 'decap set' with no prefix) and
forgets the overhead: whatever comes encapsulated is dropped and counted (decap-source-refused).
The VIPs stay ('xdpstack vip del' removes them); a virtual server with neither VIPs nor load
balancers treats IPIP and IPv6 tunnels as any protocol it does not know.`;

/** `--limits tcpConnections=1000,neighbors=512` → { tcpConnections: 1000, neighbors: 512 } (ranges: the validator's). */
function parseLimits(items: string[]): Record<string, number> {
  const keys = Object.keys(VS_LIMIT_KEYS);
  const out: Record<string, number> = {};
  for (const it of items) {
    const m = /^([A-Za-z]+)=(\d+)$/.exec(it);
    if (!m) throw new UsageError(`option '--limits' expects KEY=N items like tcpConnections=1000, got '${it}'`, VS_ADD_USAGE);
    if (!keys.includes(m[1]!)) throw new UsageError(`option '--limits': unknown limit '${m[1]}'${didYouMean(m[1]!, keys)} (one of ${keys.join(', ')})`, VS_ADD_USAGE);
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

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
      const { opts, positional } = parseOptions(args, { ...TARGET, device: 'string', vlan: 'int', mac: 'string', mtu: 'int', address: 'list', limits: 'list' }, VS_ADD_USAGE, 1);
      const name = one(positional, 'a virtual server NAME', VS_ADD_USAGE);
      if ((opts.vlan !== undefined || opts.mac !== undefined || opts.mtu !== undefined || opts.address !== undefined) && opts.device === undefined) {
        throw new UsageError('--vlan, --mac, --mtu and --address describe a link: give --device too', VS_ADD_USAGE);
      }
      const links = opts.device !== undefined ? [{ device: opts.device, vlan: opts.vlan, mac: opts.mac, mtu: opts.mtu, addresses: opts.address }] : [];
      const limits = opts.limits !== undefined ? parseLimits(opts.limits as string[]) : undefined;
      await ask(opts, { cmd: 'vs.add', name, links, ...(limits ? { limits } : {}) });
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

function vipCommand(op: 'add' | 'del'): Command {
  const usage = VIP_USAGE(op);
  return {
    name: op, summary: `${op === 'add' ? 'add' : 'remove'} a VIP`, usage,
    async run(args) {
      const { opts, positional } = parseOptions(args, { ...TARGET, vs: 'string' }, usage, 1);
      const addr = one(positional, 'an address like 198.51.100.10 or 2001:db8::10', usage);
      await ask(opts, { cmd: `vip.${op}`, vs: vsTarget(opts, usage), addr });
      return 0;
    },
  };
}

const DECAP_COMMANDS: Command[] = [
  {
    name: 'set', summary: 'set the load balancers a virtual server takes encapsulated traffic from', usage: DECAP_SET_USAGE,
    async run(args) {
      const { opts } = parseOptions(args, { ...TARGET, vs: 'string', from: 'list', overhead: 'int' }, DECAP_SET_USAGE);
      const vs = vsTarget(opts, DECAP_SET_USAGE);
      if (opts.from === undefined) throw new UsageError("option --from CIDR[,CIDR...] is required ('xdpstack decap clear' takes none)", DECAP_SET_USAGE);
      await ask(opts, { cmd: 'decap.set', vs, from: opts.from, ...(opts.overhead !== undefined ? { overhead: opts.overhead } : {}) });
      return 0;
    },
  },
  {
    name: 'clear', summary: 'take encapsulated traffic from no load balancer', usage: DECAP_CLEAR_USAGE,
    async run(args) {
      const { opts } = parseOptions(args, { ...TARGET, vs: 'string' }, DECAP_CLEAR_USAGE);
      await ask(opts, { cmd: 'decap.set', vs: vsTarget(opts, DECAP_CLEAR_USAGE), from: [] });
      return 0;
    },
  },
];

const ADDRESS_COMMANDS = [addrCommand('add'), addrCommand('del')];
const VIP_COMMANDS = [vipCommand('add'), vipCommand('del')];
const ROUTE_COMMANDS = [routeCommand('add'), routeCommand('del')];
const RULE_COMMANDS = [ruleCommand('add'), ruleCommand('del')];

// ---------------------------------------------------------------------------------------------
// show --interval, clear counters, neighbor

/** `show KIND --interval S`: rates every S seconds until --count lines or Ctrl-C (exit 0). */
async function showRates(kind: string, req: Request, o: { interval: number; count?: number; json: boolean }, opts: OptValues, ctx: CliContext): Promise<number> {
  const sock = socketOf(opts);
  const ac = new AbortController();
  const onSig = () => ac.abort();
  process.once('SIGINT', onSig);
  try {
    await watchRates({
      kind, interval: o.interval, count: o.count, signal: ac.signal,
      sample: async () => {
        const r = await controlRequest(sock, req, { timeoutMs: 10_000 });
        if (!r.ok) throw new Error(r.error ?? 'request failed');
        return r.data;
      },
      emit: (r: RateSample) => {
        if (o.json) { ctx.out(JSON.stringify({ ...r, rates: roundNumbers(r.rates, 3) })); return; }
        ctx.out(`${kind} per second over ${r.interval.toFixed(3)} s, at ${r.time}:`);
        for (const l of formatShow(kind, roundNumbers(r.rates, 1))) ctx.out(l);
        ctx.out('');
      },
    });
  } finally {
    process.off('SIGINT', onSig);
  }
  return 0;
}

const CLEAR_COMMANDS: Command[] = [
  {
    name: 'counters', summary: 'zero packet, byte and drop counters (of one VS with --vs)', usage: CLEAR_USAGE,
    async run(args, ctx) {
      const { opts } = parseOptions(args, { ...TARGET, vs: 'string' }, CLEAR_USAGE);
      const r = await ask(opts, { cmd: 'counters.clear', ...(opts.vs !== undefined ? { vs: opts.vs } : {}) }) as { devices: number; vs: number; links: number };
      ctx.out(opts.vs !== undefined ? `counters of virtual server '${opts.vs}' cleared (${r.links} link(s))`
        : `counters cleared: ${r.devices} device(s), ${r.vs} virtual server(s), ${r.links} link(s)`);
      return 0;
    },
  },
];

const NEIGHBOR_COMMANDS: Command[] = [
  {
    name: 'show', summary: 'list the neighbor entries (as show neighbors)', usage: NEIGHBOR_SHOW_USAGE,
    async run(args, ctx) {
      const { opts } = parseOptions(args, { ...TARGET, vs: 'string', json: 'bool' }, NEIGHBOR_SHOW_USAGE);
      const data = await ask(opts, { cmd: 'show', kind: 'neighbors', vs: opts.vs });
      if (opts.json) ctx.out(JSON.stringify(data, null, 2));
      else for (const l of formatShow('neighbors', data)) ctx.out(l);
      return 0;
    },
  },
  {
    name: 'flush', summary: 'remove neighbor entries of a virtual server', usage: NEIGHBOR_FLUSH_USAGE,
    async run(args, ctx) {
      const { opts, positional } = parseOptions(args, { ...TARGET, vs: 'string', link: 'string' }, NEIGHBOR_FLUSH_USAGE, 1);
      const vs = vsTarget(opts, NEIGHBOR_FLUSH_USAGE);
      const r = await ask(opts, { cmd: 'neighbor.flush', vs, link: opts.link, address: positional[0] }) as { flushed: unknown[] };
      const n = r.flushed.length;
      ctx.out(n ? `${n} neighbor entr${n === 1 ? 'y' : 'ies'} flushed` : 'nothing to flush');
      return 0;
    },
  },
];

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
  const sock = socketOf(opts);
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
  --timeout S    seconds to wait for the last replies after the last request (default 10)
ping's own short options are taken too: -c N, -i S, -s N, -W S.`;

/** ping(8)'s short options (iputils) and the long ones they stand for. */
const PING_SHORT: Readonly<Record<string, string>> = { '-c': '--count', '-i': '--interval', '-s': '--size', '-W': '--timeout' };

/** A positive number option given as text ('0.2'): UsageError otherwise. */
function seconds(v: string | undefined, opt: string, usage: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+(\.\d+)?$/.test(v)) throw new UsageError(`option '--${opt}' expects seconds like 1 or 0.2, got '${v}'`, usage);
  return Number(v);
}

async function pingCommand(args: string[], ctx: CliContext): Promise<number> {
  args = args.map((a) => PING_SHORT[a] ?? a);
  const { opts, positional } = parseOptions(args, { ...TARGET, vs: 'string', count: 'int', interval: 'string', size: 'int', timeout: 'string' }, PING_USAGE, 1);
  const target = one(positional, 'an address to ping (IPv4 or IPv6)', PING_USAGE);
  const vs = vsTarget(opts, PING_USAGE);
  const po = {
    count: opts.count as number | undefined, interval: seconds(opts.interval as string | undefined, 'interval', PING_USAGE),
    size: opts.size as number | undefined, timeout: seconds(opts.timeout as string | undefined, 'timeout', PING_USAGE),
  };
  try {
    checkPingOptions(po, typeof parsePingTarget(target).addr === 'number' ? 4 : 6);
  } catch (e) {
    throw new UsageError((e as Error).message, PING_USAGE);
  }
  const sock = socketOf(opts);
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
        else if (e.event === 'unreachable') ctx.out(pingText.unreachable(e.data as PingIcmpError));
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
      const { opts, positional } = parseOptions(args, {
        socket: 'string', 'no-control': 'bool', 'busy-poll': 'bool', shards: 'string', app: 'string', 'log-level': 'string', 'log-format': 'string',
      }, RUN_USAGE, 1);
      const file = one(positional, 'a CONFIG file', RUN_USAGE);
      let shards: number | 'auto' | undefined;
      if (opts.shards !== undefined) {
        const v = opts.shards as string;
        if (v !== 'auto' && !/^[1-9]\d*$/.test(v)) throw new UsageError(`option '--shards' expects a positive integer or 'auto', got '${v}'`, RUN_USAGE);
        shards = v === 'auto' ? 'auto' : Number(v);
      }
      const app = opts.app as string | undefined;
      if (app !== undefined && !fs.existsSync(app)) throw new UsageError(`--app: no such file '${app}'`, RUN_USAGE);
      for (const [k, problem] of [['log-level', logLevelProblem], ['log-format', logFormatProblem]] as const) {
        const why = opts[k] === undefined ? null : problem(opts[k]);
        if (why) throw new UsageError(`option '--${k}' ${why}`, RUN_USAGE);
      }
      return runStack(file, {
        socket: opts.socket as string | undefined, control: !opts['no-control'], busyPoll: !!opts['busy-poll'], shards, app,
        logLevel: opts['log-level'] as LogLevel | undefined, logFormat: opts['log-format'] as LogFormat | undefined,
      }, ctx, signalPromise());
    },
  },
  {
    name: 'show', summary: 'show virtual servers, links, addresses, routes, neighbors, counters, limits, connections, VIPs or the running config (or rates)', usage: SHOW_USAGE,
    async run(args, ctx) {
      const { opts, positional } = parseOptions(args, { ...TARGET, vs: 'string', json: 'bool', 'per-shard': 'bool', interval: 'string', count: 'int', state: 'string', port: 'int' }, SHOW_USAGE, 1);
      const kind = one(positional, `what to show (${SHOW_KINDS.join(', ')})`, SHOW_USAGE);
      if (!(SHOW_KINDS as readonly string[]).includes(kind)) throw new UsageError(`unknown kind '${kind}'${didYouMean(kind, SHOW_KINDS)} (one of ${SHOW_KINDS.join(', ')})`, SHOW_USAGE);
      const state = opts.state as string | undefined;
      const port = opts.port as number | undefined;
      if (kind !== 'connections' && (state !== undefined || port !== undefined)) {
        throw new UsageError(`--${state !== undefined ? 'state' : 'port'} narrows 'show connections' only`, SHOW_USAGE);
      }
      if (state !== undefined) {
        try { parseStateFilter(state); } catch (e) { throw new UsageError(`--state: ${(e as Error).message}`, SHOW_USAGE); }
      }
      if (port !== undefined && (port < 1 || port > 65535)) throw new UsageError(`--port expects a port number (1-65535), got ${port}`, SHOW_USAGE);
      const req: Request = { cmd: 'show', kind, vs: opts.vs, state, port, ...(opts['per-shard'] ? { perShard: true } : {}) };
      if (kind === 'config' && opts.vs !== undefined) throw new UsageError("'show config' is the whole stack's configuration: --vs is not for it", SHOW_USAGE);
      if (opts.count !== undefined && opts.interval === undefined) throw new UsageError('option --count goes with --interval S', SHOW_USAGE);
      if (opts.interval !== undefined) {
        const interval = parseInterval(opts.interval as string, SHOW_USAGE);
        if (opts.count === 0) throw new UsageError('option --count must be at least 1', SHOW_USAGE);
        if (!RATE_KINDS.includes(kind)) throw new UsageError(`--interval gives rates of counters: it is for ${RATE_KINDS.join(', ')}, not '${kind}'`, SHOW_USAGE);
        return showRates(kind, req, { interval, count: opts.count as number | undefined, json: !!opts.json }, opts, ctx);
      }
      const data = await ask(opts, req);
      // The running configuration is a config file: JSON in any case.
      if (opts.json || kind === 'config') ctx.out(JSON.stringify(data, null, 2));
      else for (const l of formatShow(kind, data)) ctx.out(l);
      return 0;
    },
  },
  {
    name: 'clear', summary: 'zero the packet, byte and drop counters of a running stack', usage: tableUsage('Usage: xdpstack clear counters [--vs NAME]   (xdpstack clear counters --help)', CLEAR_COMMANDS),
    subcommands: CLEAR_COMMANDS,
  },
  {
    name: 'neighbor', summary: 'list or flush the neighbor (ARP/NDP) entries of a running stack', usage: tableUsage('Usage: xdpstack neighbor show|flush [options]   (xdpstack neighbor <command> --help)', NEIGHBOR_COMMANDS),
    subcommands: NEIGHBOR_COMMANDS,
  },
  {
    name: 'vs', summary: 'create or destroy a virtual server in a running stack', usage: tableUsage('Usage: xdpstack vs add|del NAME ...   (xdpstack vs <command> --help)', vsCommands),
    subcommands: vsCommands,
  },
  {
    name: 'link', summary: 'add or remove a link of a virtual server in a running stack', usage: tableUsage('Usage: xdpstack link add DEV --vs NAME [--vlan N] | link del LINK --vs NAME   (xdpstack link <command> --help)', linkCommands),
    subcommands: linkCommands,
  },
  {
    name: 'address', summary: 'add or remove an address in a running stack', usage: tableUsage('Usage: xdpstack address add|del CIDR --vs NAME [--link LINK]   (xdpstack address <command> --help)', ADDRESS_COMMANDS),
    subcommands: ADDRESS_COMMANDS,
  },
  {
    name: 'route', summary: 'add or remove a route in a running stack', usage: tableUsage('Usage: xdpstack route add|del DST --vs NAME [--via GW] [--link L] [--table N]   (xdpstack route <command> --help)', ROUTE_COMMANDS),
    subcommands: ROUTE_COMMANDS,
  },
  {
    name: 'rule', summary: 'add or remove a policy rule in a running stack', usage: tableUsage('Usage: xdpstack rule add|del --priority N [--from PREFIX] [--table N] --vs NAME   (xdpstack rule <command> --help)', RULE_COMMANDS),
    subcommands: RULE_COMMANDS,
  },
  {
    name: 'vip', summary: 'add or remove a VIP (direct server return) in a running stack', usage: tableUsage('Usage: xdpstack vip add|del ADDR --vs NAME   (xdpstack vip <command> --help)', VIP_COMMANDS),
    subcommands: VIP_COMMANDS,
  },
  {
    name: 'decap', summary: 'set or clear the load balancers a virtual server takes encapsulated traffic from', usage: tableUsage('Usage: xdpstack decap set --vs NAME --from CIDR[,CIDR...] [--overhead N] | decap clear --vs NAME   (xdpstack decap <command> --help)', DECAP_COMMANDS),
    subcommands: DECAP_COMMANDS,
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
      // The output is written over: never the capture being read or the config.
      for (const [i, what] of [[1, 'the capture it replays'], [0, 'the config']] as const) {
        if (path.resolve(opts.out as string) === path.resolve(positional[i]!)) throw new UsageError(`option '--out' names ${what} (${positional[i]}): it would be written over; give another file`, REPLAY_USAGE);
      }
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

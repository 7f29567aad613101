/**
 * CLI commands that run a stack or talk to a running one through its control socket:
 *   xdpstack run CONFIG                         foreground stack with a control socket
 *   xdpstack show KIND [--vs NAME] [--json]     vs | links | addresses | routes | rules | neighbors | counters | limits
 *   xdpstack vs add|del NAME                    runtime changes
 *   xdpstack link add DEV --vs NAME [--vlan N] / link del LINK --vs NAME
 *   xdpstack address add|del CIDR --vs NAME [--link LINK]          CIDR of either family
 *   xdpstack route add|del DST [--via GW] [--link L] [--table N] [--metric N] [--src A] --vs NAME
 *   xdpstack rule add|del --priority N [--from CIDR] [--fwmark N] --table N --vs NAME
 *   xdpstack trace [--vs NAME] [--count N] --out FILE.pcap
 *   xdpstack replay CONFIG IN.pcap --out OUT.pcap
 * Every command talking to a stack takes --name NAME (socket /run/xdpstack/NAME.sock) or
 * --socket PATH; with neither, the only running stack is used.
 */
import * as path from 'node:path';
import { CliContext, Command, OptValues, parseOptions, UsageError } from './args';
import { ControlServer, controlRequest, defaultSocketPath, formatShow, formatTable, Request, resolveSocket } from '../control/control';
import { createStack, replayCapture, SHOW_KINDS, Stack } from '../stack';
import { loadConfig, StackConfig } from '../control/config';
import { ShardedStack } from '../shard/threads';
import * as fs from 'node:fs';
import { LogFormat, logFormatProblem, Logger, LogLevel, logLevelProblem, stackLogger } from '../control/log';

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
  const stack: Stack = createStack(cfg, { busyPoll: opts.busyPoll, logger });
  let server: ControlServer | null = null;
  try {
    const sockPath = opts.socket ?? (cfg.control ? cfg.control.socket : undefined) ?? defaultSocketPath(stack.name);
    if (opts.control !== false && cfg.control !== false) server = await ControlServer.listen(stack, path.resolve(sockPath));
    const metrics = cfg.metrics ? await stack.serveMetrics() : null;
    stack.start();
    ctx.out(`xdpstack: stack '${stack.name}' running: ${cfg.devices.length} device(s), ${cfg.virtualServers.length} virtual server(s)` +
      `${server ? `, control socket ${server.socketPath}` : ''}${metrics ? `, metrics ${metrics.url}` : ''}`);
    await stop;
  } finally {
    await server?.close();
    stack.close();
  }
  ctx.out(`xdpstack: stack '${stack.name}' stopped`);
  return 0;
}

/** `run --shards`: the control plane here, one worker per shard. */
async function runShards(cfg: StackConfig, opts: RunOptions & { shards: number | 'auto' }, logger: Logger,
  ctx: CliContext, stop: Promise<unknown>): Promise<number> {
  let server: ControlServer | null = null;
  // A shard died: the group has stopped and detached its devices; the control socket goes too.
  const onFatal = (msg: string): void => {
    ctx.err(msg);
    void (server?.close() ?? Promise.resolve()).finally(() => process.exit(1));
  };
  const stack = await ShardedStack.start(cfg, { shards: opts.shards, app: opts.app, busyPoll: opts.busyPoll, logger, onFatal });
  try {
    const sockPath = opts.socket ?? (cfg.control ? cfg.control.socket : undefined) ?? defaultSocketPath(stack.name);
    if (opts.control !== false && cfg.control !== false) server = await ControlServer.listen(stack, path.resolve(sockPath));
    const metrics = cfg.metrics ? await stack.serveMetrics() : null;
    ctx.out(`xdpstack: stack '${stack.name}' running: ${stack.shards} shard(s), ${cfg.devices.length} device(s), ${cfg.virtualServers.length} virtual server(s)` +
      `${server ? `, control socket ${server.socketPath}` : ''}${metrics ? `, metrics ${metrics.url}` : ''}`);
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

const TRACE_USAGE = `Usage: xdpstack trace --out FILE.pcap [--vs NAME] [--count N] [--name STACK | --socket PATH]

Asks the running stack to mirror the frames of a virtual server's links (device + VLAN), or of
every device, into FILE.pcap (written by the stack). Stops after N frames, or on Ctrl-C.`;

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
    name: 'trace', summary: 'capture the frames of a running stack into a pcap file', usage: TRACE_USAGE,
    async run(args, ctx) {
      const { opts } = parseOptions(args, { ...TARGET, vs: 'string', count: 'int', out: 'string' }, TRACE_USAGE);
      if (!opts.out) throw new UsageError('option --out FILE.pcap is required', TRACE_USAGE);
      if (opts.count === 0) throw new UsageError('option --count must be at least 1', TRACE_USAGE);
      const sock = resolveSocket({ socket: opts.socket as string | undefined, name: opts.name as string | undefined });
      const out = path.resolve(opts.out as string);
      const ac = new AbortController();
      const onSig = () => ac.abort();
      process.once('SIGINT', onSig);
      try {
        const r = await controlRequest(sock, { cmd: 'trace', vs: opts.vs, count: opts.count, out }, {
          signal: ac.signal,
          onEvent: (e) => { if (e.event === 'started') ctx.err(`tracing${opts.vs ? ` virtual server '${opts.vs}'` : ''} into ${out}${opts.count ? ` (${opts.count} frames)` : ''}; Ctrl-C stops`); },
        });
        if (!r.ok) throw new Error(r.error ?? 'trace failed');
        if (r.event === 'done') ctx.out(`${r.frames} frame(s) written to ${out}`);
        else ctx.out(`trace stopped; frames written to ${out}`);
      } finally {
        process.off('SIGINT', onSig);
      }
      return 0;
    },
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

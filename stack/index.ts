/**
 * xdpstack public API.
 *
 *   import { createStack } from 'xdpstack';
 *   const stack = createStack('stack.json');
 *   const sock = stack.vs('tenant-a').createSocket('udp4');
 *   sock.on('message', (msg, rinfo) => sock.send(msg, rinfo.port, rinfo.address));
 *   sock.bind(7);
 *   stack.start();
 */
export { Stack, VsHandle, Trace, SHOW_KINDS } from './stack';
export { replayCapture } from './replay';
import { createStack as createSingle, Stack, StackOptions } from './stack';
import { ControlOption, listenControl } from './control/control';
import type { StackConfig } from './control/config';
import { ShardedStack, ShardedStackOptions } from './shard/threads';
import { describe, ValidationError } from './control/validate';
import { closest } from './control/suggest';
import { logFormatProblem, logLevelProblem } from './control/log';

/**
 * Builds a stack from a config object or a JSON file path (validated first; a ConfigError names
 * the file, the field and the problem).
 *
 * With `shards` (a number, or 'auto': one per receive queue of the devices, at most one per CPU),
 * a stack of shards in worker threads instead, each running the config's services and the `app`
 * module (`module.exports = (stack, { shard, shards }) => { ... }`); it resolves once all run.
 *
 * With `control` (true, or a socket path), the stack opens its control socket so the `xdpstack`
 * CLI sees it (`xdpstack show vs --name NAME`); createStack() then returns a promise, resolved
 * once the socket listens. close() removes it.
 */
export function createStack(config: StackConfig | string, opts: ShardedStackOptions): Promise<ShardedStack>;
export function createStack(config: StackConfig | string, opts: StackOptions & ControlOption): Promise<Stack>;
export function createStack(config: StackConfig | string, opts?: StackOptions & { control?: false }): Stack;
export function createStack(config: StackConfig | string, opts: (StackOptions & { control?: boolean | string }) | ShardedStackOptions = {}): Stack | Promise<Stack> | Promise<ShardedStack> {
  checkCreateOptions(opts);
  const control = opts.control;
  if (control !== undefined && typeof control !== 'boolean' && typeof control !== 'string') {
    throw new TypeError(`createStack: 'control' must be true, false or a socket path, got ${JSON.stringify(control)}`);
  }
  if ('shards' in opts && opts.shards !== undefined) return ShardedStack.start(config, opts);
  const { control: _, ...rest } = opts as StackOptions & { control?: boolean | string };
  if (control === undefined || control === false) return createSingle(config, rest);
  return (async () => {
    const st = createSingle(config, rest);
    try {
      await listenControl(st, control);
    } catch (e) {
      st.close();
      throw e;
    }
    return st;
  })();
}
export type { StackOptions, ShowKind } from './stack';
export type { ReplayResult } from './replay';
export type { ControlOption } from './control/control';
export { loadConfig, validateConfig, ConfigError } from './control/config';
export { registerService, serviceKind, serviceTypes, loadServiceModule } from './control/services';
export { ShardedStack, ShardedStackOptions };
export type { Service, ServiceKind, ServiceVs } from './control/services';
export type { StackConfig, DeviceConfig, VsConfig, LinkConfig, RouteConfig, RuleConfig } from './control/config';
export type { ServiceConfig } from './control/services';
export { ControlServer, controlRequest, controlSocketPath, defaultSocketPath, listenControl, resolveSocket } from './control/control';
export { formatTable, formatShow } from './control/format';
export { createLogger } from './control/log';
export type { Logger, LoggerOptions, LogLevel, LogFormat, LogFields } from './control/log';
export type { MetricsEndpoint } from './control/metrics';
export { Engine } from './engine';
export { Runtime, monotonicUs } from './runtime';
export { UdpSocket } from './api/dgram';
export type {
  AddressInfo, BindOptions, DgramMessage, LookupFunction as DgramLookupFunction, RemoteInfo, SendCallback, SocketError, SocketOptions, UdpSocketEvents, UdpType,
} from './api/dgram';
export { Socket, Server, createServer, connect, netModule } from './api/net';
export type {
  NetContext, NetModule, ServerOptions, ListenOptions, SocketConnectOpts, TcpSocketConnectOpts, SocketConstructorOpts, ConnectFunction,
  DropArgument, LookupFunction, OnReadOpts, TcpInfo,
} from './api/net';
export type { NetError } from './api/errors';
export { TraceFilter, TraceFilterError, TRACE_PROTOS } from './trace';
export type { TraceFilterSpec, TraceCounts, TraceSink } from './trace';
export { PingSession } from './ping';
export type { PingOptions, PingEvents, PingStart, PingReply, PingSummary, PingIcmpError } from './ping';

/** Options createStack() takes: a single stack's, a stack of shards', and `control`. */
const CREATE_OPTIONS = ['drivers', 'now', 'busyPoll', 'steer', 'secret', 'logger', 'log', 'logLevel', 'logFormat', 'control',
  'shards', 'app', 'onFatal', 'preload', 'flowSize', 'ringSize', 'startTimeoutMs'];

/**
 * createStack()'s options: an object of known keys (a misspelt `contol: true` would otherwise open
 * no control socket, silently), each of its type where a wrong one would fail later and far away.
 */
function checkCreateOptions(opts: unknown): void {
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) throw new ValidationError(`createStack: the options must be an object, got ${describe(opts)}`);
  const o = opts as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (CREATE_OPTIONS.includes(k)) continue;
    const near = closest(k, CREATE_OPTIONS);
    throw new ValidationError(`createStack: unknown option '${k}'${near ? ` (did you mean '${near}'?)` : ''} (options: ${CREATE_OPTIONS.join(', ')})`, k);
  }
  const bad = (k: string, what: string) => new ValidationError(`createStack: '${k}' must be ${what}, got ${describe(o[k])}`, k);
  if (o.busyPoll !== undefined && typeof o.busyPoll !== 'boolean') throw bad('busyPoll', 'true or false');
  if (o.now !== undefined && (typeof o.now !== 'number' || !Number.isFinite(o.now) || o.now < 0)) throw bad('now', 'a non-negative number of µs');
  if (o.log !== undefined && typeof o.log !== 'function') throw bad('log', 'a function taking a line');
  if (o.onFatal !== undefined && typeof o.onFatal !== 'function') throw bad('onFatal', 'a function taking a message');
  if (o.app !== undefined && (typeof o.app !== 'string' || o.app === '')) throw bad('app', 'a module path');
  if (o.drivers !== undefined && (typeof o.drivers !== 'object' || o.drivers === null || Array.isArray(o.drivers))) throw bad('drivers', 'an object of drivers by device name');
  for (const [k, problem] of [['logLevel', logLevelProblem], ['logFormat', logFormatProblem]] as const) {
    const why = o[k] === undefined ? null : problem(o[k]);
    if (why) throw new ValidationError(`createStack: '${k}' ${why}`, k);
  }
}

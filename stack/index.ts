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

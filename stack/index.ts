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
export { replayCapture, Stack, VsHandle, Trace, SHOW_KINDS } from './stack';
import { createStack as createSingle, Stack, StackOptions } from './stack';
import type { StackConfig } from './control/config';
import { ShardedStack, ShardedStackOptions } from './shard/threads';

/**
 * Builds a stack from a config object or a JSON file path (validated first; a ConfigError names
 * the file, the field and the problem).
 *
 * With `shards` (a number, or 'auto': one per receive queue of the devices, at most one per CPU),
 * a stack of shards in worker threads instead, each running the config's services and the `app`
 * module (`module.exports = (stack, { shard, shards }) => { ... }`); it resolves once all run.
 */
export function createStack(config: StackConfig | string, opts: ShardedStackOptions): Promise<ShardedStack>;
export function createStack(config: StackConfig | string, opts?: StackOptions): Stack;
export function createStack(config: StackConfig | string, opts: StackOptions | ShardedStackOptions = {}): Stack | Promise<ShardedStack> {
  if ('shards' in opts && opts.shards !== undefined) return ShardedStack.start(config, opts);
  return createSingle(config, opts as StackOptions);
}
export type { StackOptions, ShowKind, ReplayResult } from './stack';
export { loadConfig, validateConfig, ConfigError } from './control/config';
export { registerService, serviceKind, serviceTypes, loadServiceModule } from './control/services';
export { ShardedStack, ShardedStackOptions };
export type { Service, ServiceKind, ServiceVs } from './control/services';
export type { StackConfig, DeviceConfig, VsConfig, LinkConfig, RouteConfig, RuleConfig } from './control/config';
export type { ServiceConfig } from './control/services';
export { ControlServer, controlRequest, defaultSocketPath, resolveSocket, formatTable } from './control/control';
export { Engine } from './engine';
export { Runtime, monotonicUs } from './runtime';
export { UdpSocket } from './api/dgram';
export type { RemoteInfo } from './api/dgram';
export { Socket, Server, createServer, connect, netModule } from './api/net';
export type {
  NetContext, NetModule, ServerOptions, ListenOptions, SocketConnectOpts, TcpSocketConnectOpts, SocketConstructorOpts, ConnectFunction,
  DropArgument, LookupFunction, OnReadOpts,
} from './api/net';
export type { NetError } from './api/errors';

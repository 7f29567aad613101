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
export { createStack, replayCapture, Stack, VsHandle, Trace, SHOW_KINDS } from './stack';
export type { StackOptions, ShowKind, ReplayResult } from './stack';
export { loadConfig, validateConfig, ConfigError } from './config';
export { registerService, serviceKind, serviceTypes } from './services';
export type { Service, ServiceKind, ServiceVs } from './services';
export type { StackConfig, DeviceConfig, VsConfig, LinkConfig, RouteConfig, RuleConfig } from './config';
export type { ServiceConfig } from './services';
export { ControlServer, controlRequest, defaultSocketPath, resolveSocket, formatTable } from './control';
export { Engine } from './engine';
export { Runtime, monotonicUs } from './runtime';
export { UdpSocket } from './udp';
export type { RemoteInfo } from './udp';
export { Socket, Server, createServer, connect } from './net';
export type { NetContext, ServerOptions, SocketConnectOpts } from './net';

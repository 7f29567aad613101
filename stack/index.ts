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
export { createStack, replayCapture, Stack, VsHandle, Trace, SERVICES, SHOW_KINDS } from './stack';
export type { StackOptions, ShowKind, Service, ServiceFactory, ReplayResult } from './stack';
export { loadConfig, validateConfig, ConfigError, SERVICE_TYPES } from './config';
export type { StackConfig, DeviceConfig, VsConfig, LinkConfig, RouteConfig, RuleConfig, ServiceConfig } from './config';
export { ControlServer, controlRequest, defaultSocketPath, resolveSocket, formatTable } from './control';
export { Engine } from './engine';
export { Runtime, monotonicUs } from './runtime';
export { UdpSocket } from './udp';
export type { RemoteInfo } from './udp';
export { Socket, Server, createServer, connect } from './net';
export type { NetContext, ServerOptions, SocketConnectOpts } from './net';

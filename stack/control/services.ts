/**
 * The services registry: one place that knows each service type, how its part of the config is
 * checked, which transport port it binds, and how it starts in a virtual server. The config
 * validator and the stack both read it, so a type cannot be accepted by one and unknown to the
 * other. The echo services are built in; examples register their own (e.g. examples/iscsi).
 */
import type { Socket as NetSocket, Server as NetServer, ServerOptions } from '../api/net';
import type { RemoteInfo, SocketOptions, UdpSocket, UdpType } from '../api/dgram';
import type { Checker, Obj } from './validate';

/** A service entry of the config. The keys beyond these belong to the service type. */
export interface ServiceConfig {
  type: string;
  vs: string;
  /** Port to listen on; the type's default when absent. */
  port?: number;
  /** One address of the VS to listen on (default: every address, both families). */
  address?: string;
  readonly [key: string]: unknown;
}

/** What a service sees of its virtual server (a subset of the stack's VsHandle). */
export interface ServiceVs {
  readonly name: string;
  createServer(options?: ServerOptions | ((s: NetSocket) => void), listener?: (s: NetSocket) => void): NetServer;
  createSocket(type: UdpType | SocketOptions, listener?: (msg: Buffer, rinfo: RemoteInfo) => void): UdpSocket;
}

export interface Service {
  readonly type: string;
  close(): void;
}

const modules: string[] = [];

/**
 * Loads a module that registers service types, and remembers it: every shard of a stack of shards
 * (worker threads) loads the same modules, so the config's services start in each.
 */
export function loadServiceModule(file: string): void {
  const abs = require.resolve(file);
  require(abs);
  if (!modules.includes(abs)) modules.push(abs);
}

/** The modules loaded with loadServiceModule(), in order. */
export function serviceModules(): readonly string[] {
  return modules;
}

export interface ServiceContext {
  log(msg: string): void;
}

export interface ServiceKind {
  readonly type: string;
  /** The transport whose port the service binds (two services of a VS may not share one). */
  readonly transport: 'tcp' | 'udp';
  /** Port used when the config names none; the port is required when absent. */
  readonly defaultPort?: number;
  /** Keys of the service's own beyond type, vs, port, address. */
  readonly keys?: readonly string[];
  /** Checks the service's own keys (problems go to `c` under `path`). */
  validate?(c: Checker, spec: Obj, path: string): void;
  /** Starts the service in `vs` from a validated spec; `ctx.log` is the stack's log (notices, once per event). */
  start(vs: ServiceVs, spec: ServiceConfig & { port: number }, ctx: ServiceContext): Service;
}

const KINDS = new Map<string, ServiceKind>();

/** Registers a service type (a second registration of the same type replaces the first). */
export function registerService(kind: ServiceKind): void {
  KINDS.set(kind.type, kind);
}

export function serviceKind(type: string): ServiceKind | undefined {
  return KINDS.get(type);
}

/** The registered service types. */
export function serviceTypes(): string[] {
  return [...KINDS.keys()];
}

// Services serve both families on every address of their VS unless they name one, as a Node
// server does on '::' (IPv4 peers reach it as ::ffff:a.b.c.d).
registerService({
  type: 'udp-echo',
  transport: 'udp',
  start(vs, spec) {
    const sock = vs.createSocket(spec.address && !spec.address.includes(':') ? 'udp4' : 'udp6');
    sock.on('message', (msg: Buffer, rinfo: { address: string; port: number }) => {
      sock.send(msg, rinfo.port, rinfo.address, () => { /* errors are counted by the engine */ });
    });
    sock.on('error', () => { /* bind errors are reported by the validator; runtime ones are counted */ });
    sock.bind(spec.port, spec.address);
    return { type: 'udp-echo', close: () => { if (!sock.closed) sock.close(); } };
  },
});

registerService({
  type: 'tcp-echo',
  transport: 'tcp',
  start(vs, spec) {
    const srv = vs.createServer((s) => {
      s.on('error', () => { /* resets are the peer's business */ });
      s.pipe(s);
    });
    srv.on('error', () => { /* bind errors are reported by the validator */ });
    srv.listen(spec.port, spec.address);
    return { type: 'tcp-echo', close: () => { if (srv.listening) srv.close(); } };
  },
});

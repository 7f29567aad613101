/**
 * A virtual server's handle (`stack.vs(name)`): its links, addresses, routes, rules, VIPs and
 * load balancers changed at run time (each change checked by the validator and logged once), and
 * its sockets — `dgram`-shaped UDP, the `net` module, ping.
 */
import type { Engine, RouteSpec, RuleSpec } from '../engine';
import { PingEvents, PingOptions, PingSession } from '../ping';
import { RemoteInfo, SocketOptions, UdpSocket, UdpType } from './dgram';
import { createServer as netCreateServer, netModule, NetContext, NetModule, Server as NetServer, ServerOptions, Socket as NetSocket, TcpSocketConnectOpts } from './net';
import type { Link, VirtualServer } from '../vs';
import type { DecapConfig, LinkConfig, RouteConfig, RuleConfig } from '../control/config';
import type { VsLimits } from '../limits';
import { parseMac } from '../../driver/types';
import { checkLink, cidr as checkCidr, describe, enforce, parseRoute, splitScopedVia, ValidationError } from '../control/validate';

/** What a VS handle needs of its stack. */
export interface VsHandleHost {
  readonly engine: Engine;
  /** Logs a run-time change once, after it succeeded. */
  logChange(cmd: string, fields: Record<string, unknown>): void;
  /** Throws when a configured service listens on `addrText` of `vs` (it cannot go from under it). */
  refuseIfServed(vs: string, addrText: string, what: string): void;
  /** The stack's clock (real or virtual), µs. */
  nowUs(): number;
  /** The stack was closed: its handles change nothing any more. */
  readonly isClosed?: boolean;
}

export class VsHandle {
  constructor(private readonly stack: VsHandleHost, readonly raw: VirtualServer,
    /** The VS's own limits as they were given (`show config` writes them back). */
    readonly limits?: VsLimits) {}

  get name(): string { return this.raw.name; }

  /**
   * Throws when this handle's VS was destroyed or its stack closed: a change or a socket there
   * would reach nothing (a new VS of the same name is another one, with another handle).
   */
  private live(): void {
    if (this.stack.isClosed) throw new Error(`virtual server '${this.name}': the stack is closed`);
    if (this.raw.destroyed) throw new Error(`virtual server '${this.name}' was destroyed`);
  }

  /** A route (or the part of one that names it) given as an object: a ValidationError otherwise. */
  private routeSpec(spec: unknown, op: 'add' | 'del'): RouteConfig {
    if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
      throw new ValidationError(`virtual server '${this.name}': route: must be an object like { dst: '10.2.0.0/16', via: '10.1.1.254' }, got ${describe(spec)}`);
    }
    if (op === 'del') {
      const r = spec as Record<string, unknown>;
      const dstText = typeof r.dst === 'string' ? r.dst : '';
      enforce(`virtual server '${this.name}': route${dstText ? ` ${dstText}` : ''}`, (c) => {
        c.string(r, 'dst', '', true);
        c.string(r, 'via', '', false);
        c.string(r, 'link', '', false);
        c.string(r, 'src', '', false);
        c.int(r, 'table', '', false, 1, 0xffffffff);
        if (c.problems.length) return;
        try { parseRoute(splitScopedVia(r as { dst: string; via?: string; link?: string })); } catch (e) { c.fail(r.via !== undefined && !/CIDR/.test((e as Error).message) ? 'via' : 'dst', (e as Error).message); }
      });
    }
    return spec as RouteConfig;
  }

  private get engine(): Engine { return this.stack.engine; }

  /** `link` of an address call: a link's name, or left out. */
  private checkLinkArg(link: unknown): void {
    if (link !== undefined && typeof link !== 'string') throw new ValidationError(`virtual server '${this.name}': address: link: must be a link's name (a string), got ${describe(link)}`);
  }

  private linkName(link?: string): string {
    if (link !== undefined) return link;
    if (this.raw.links.length === 1) return this.raw.links[0]!.name;
    throw new Error(`virtual server '${this.name}' has ${this.raw.links.length} links: name one`);
  }

  /** Adds a link (with its addresses), all checked first by the validator: nothing is added when one is refused. */
  addLink(spec: LinkConfig): Link {
    this.live();
    const link = this.addLinkQuietly(spec);
    this.stack.logChange('link.add', { vs: this.name, ...spec, name: link.name });
    return link;
  }

  /** @internal addLink() as part of a larger change (a new VS and its links), logged by that change. */
  addLinkQuietly(spec: LinkConfig): Link {
    enforce(`virtual server '${this.name}': link`, (c) => checkLink(c, spec, '', this.engine.state, this.name, this.raw.links.length));
    const link = this.engine.addLink(this.raw, {
      name: spec.name, device: spec.device, vlan: spec.vlan, mac: spec.mac ? parseMac(spec.mac) : undefined, mtu: spec.mtu,
    });
    for (const a of spec.addresses ?? []) this.engine.addAddress(this.raw, link.name, a);
    return link;
  }

  // Each change is logged once it is made (a refused one throws first and is not).
  removeLink(name: string): void {
    this.live();
    if (typeof name !== 'string') throw new ValidationError(`virtual server '${this.name}': link: the name must be a string, got ${describe(name)}`);
    this.engine.removeLink(this.raw, name);
    this.stack.logChange('link.del', { vs: this.name, link: name });
  }

  addAddress(cidr: string, link?: string): void {
    this.live();
    this.checkLinkArg(link);
    const l = this.linkName(link);
    this.engine.addAddress(this.raw, l, cidr);
    this.stack.logChange('address.add', { vs: this.name, link: l, cidr });
  }

  removeAddress(cidr: string, link?: string): void {
    this.live();
    this.checkLinkArg(link);
    enforce(`virtual server '${this.name}': address`, (c) => checkCidr(c, cidr, ''));
    const l = this.linkName(link);
    this.stack.refuseIfServed(this.name, cidr.split('/')[0]!, 'address');
    this.engine.removeAddress(this.raw, l, cidr);
    this.stack.logChange('address.del', { vs: this.name, link: l, cidr });
  }

  /** Adds a route; a scoped gateway `fe80::1%LINK` is its `via` plus its `link`. */
  addRoute(spec: RouteConfig | RouteSpec): void {
    this.live();
    this.engine.addRoute(this.raw, splitScopedVia(this.routeSpec(spec, 'add')));
    this.stack.logChange('route.add', { vs: this.name, ...spec });
  }

  removeRoute(spec: RouteConfig | RouteSpec): number {
    this.live();
    const removed = this.engine.removeRoute(this.raw, splitScopedVia(this.routeSpec(spec, 'del')));
    this.stack.logChange('route.del', { vs: this.name, ...spec, removed });
    return removed;
  }

  addRule(spec: RuleConfig | RuleSpec): void {
    this.live();
    if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
      throw new ValidationError(`virtual server '${this.name}': rule: must be an object like { priority: 100, from: '10.1.0.0/16', table: 100 }, got ${describe(spec)}`);
    }
    this.engine.addRule(this.raw, spec);
    this.stack.logChange('rule.add', { vs: this.name, ...spec });
  }

  /** Adds a VIP: an address the VS serves behind a load balancer, never answering ARP/NDP for it. */
  addVip(addr: string): void {
    this.live();
    this.engine.addVip(this.raw, addr);
    this.stack.logChange('vip.add', { vs: this.name, addr });
  }

  removeVip(addr: string): void {
    this.live();
    if (typeof addr !== 'string') throw new ValidationError(`virtual server '${this.name}': VIP: must be a string address like "198.51.100.10" or "2001:db8::10", got ${describe(addr)}`);
    this.stack.refuseIfServed(this.name, addr, 'VIP');
    this.engine.removeVip(this.raw, addr);
    this.stack.logChange('vip.del', { vs: this.name, addr });
  }

  /**
   * Where encapsulated traffic for the VIPs is taken from: the load balancers' source prefixes
   * (CIDR; an empty list takes none), and the bytes their encapsulation adds (the MSS offered on
   * a VIP leaves room for them; default: the outer header the SYN came in, 20 or 40).
   */
  setDecap(spec: DecapConfig): void {
    this.live();
    this.engine.setDecap(this.raw, spec);
    this.stack.logChange('decap.set', { vs: this.name, ...spec });
  }

  /** Removes the policy rules of `priority`; throws when there is none. */
  removeRule(priority: number): number {
    this.live();
    if (typeof priority !== 'number' || !Number.isInteger(priority) || priority < 0 || priority > 32767) {
      throw new ValidationError(`virtual server '${this.name}': rule: priority: must be an integer 0..32767, got ${describe(priority)}`);
    }
    const n = this.raw.rules.remove(priority);
    if (!n) throw new Error(`virtual server '${this.name}' has no rule of priority ${priority}`);
    this.stack.logChange('rule.del', { vs: this.name, priority, removed: n });
    return n;
  }

  /**
   * A dgram-shaped socket inside this virtual server, as Node's dgram.createSocket(type | options
   * [, listener]): 'udp4', or 'udp6' (bound to :: it also hears IPv4 peers, as ::ffff:a.b.c.d,
   * unless `ipv6Only`). Options are Node 20's (type, reuseAddr, ipv6Only, recvBufferSize,
   * sendBufferSize, lookup, signal), each checked; `listener` is added for 'message'.
   */
  createSocket(type: UdpType | SocketOptions, listener?: (msg: Buffer, rinfo: RemoteInfo) => void): UdpSocket {
    this.live();
    const s = this.engine.newUdpSocket(this.raw, type);
    if (listener) s.on('message', listener);
    return s;
  }

  /** Context for the `net`-shaped TCP API: this VS, with the stack's clock (real or virtual). */
  get netContext(): NetContext {
    return { engine: this.engine, vs: this.raw, now: () => this.stack.nowUs() };
  }

  /**
   * This virtual server's `net` module: connect/createConnection, createServer, `new Socket()`,
   * `new Server()` as Node's `net` has them, in this VS (code written for Node's `net` takes it).
   */
  get net(): NetModule {
    return (this.netMod ??= netModule(this.netContext));
  }

  private netMod: NetModule | undefined;

  /** A TCP server in this virtual server, like net.createServer([options][, connectionListener]). */
  createServer(options?: ServerOptions, connectionListener?: (socket: NetSocket) => void): NetServer;
  createServer(connectionListener?: (socket: NetSocket) => void): NetServer;
  createServer(opts?: ServerOptions | ((s: NetSocket) => void), listener?: (s: NetSocket) => void): NetServer {
    this.live();
    return netCreateServer(this.netContext, opts, listener);
  }

  /**
   * Pings `target` (IPv4 or IPv6, `fe80::2%link`) from this virtual server, as `ip vrf exec VRF
   * ping`: Echo Requests from the VS's address by its routing, every `interval` s, `count` of them
   * (default: until `stop()`). Events report each reply; `done` resolves with the summary. Throws
   * at once when the first request cannot be sent (no route, no source address, bad options).
   */
  ping(target: string, opts: PingOptions = {}, events: PingEvents = {}): PingSession {
    this.live();
    return new PingSession(this.engine, this.raw, target, opts, events);
  }

  /** A TCP connection from this virtual server, like net.connect(options | port[, host][, connectListener]). */
  connect(options: TcpSocketConnectOpts, connectionListener?: () => void): NetSocket;
  connect(port: number, host?: string, connectionListener?: () => void): NetSocket;
  connect(port: number, connectionListener?: () => void): NetSocket;
  connect(a0: TcpSocketConnectOpts | number, a1?: string | (() => void), a2?: () => void): NetSocket {
    this.live();
    const args: unknown[] = [a0, a1, a2];
    while (args.length > 1 && args[args.length - 1] === undefined) args.pop();
    return (this.net.connect as (...a: unknown[]) => NetSocket)(...args);
  }
}


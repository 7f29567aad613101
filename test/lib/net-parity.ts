/**
 * The harness of the `net` parity tests: each scenario runs with Node's `net` on loopback (server
 * 127.0.0.2, client from 127.0.0.1) and with ours (two stacks on the memory link in real time:
 * server VS 10.1.1.1, client VS 10.1.1.2); what it observes is compared once addresses and ports
 * are named by their role (SRV, CLI, OTHER; SP for the server's port).
 */
import * as nodeNet from 'node:net';
import { EventEmitter } from 'node:events';
import * as assert from 'uvu/assert';
import { realTimeHosts } from './realtime';
import { netModule, NetModule, Server, ServerOptions, Socket } from '../../stack/api/net';

export interface Env {
  name: string;
  /** The `net` of the server's side and of the client's side. */
  srv: NetModule;
  cli: NetModule;
  srvHost: string;
  cliHost: string;
  /** An address neither side has. */
  otherHost: string;
}

export const NODE: Env = {
  name: 'node', srv: nodeNet as unknown as NetModule, cli: nodeNet as unknown as NetModule,
  srvHost: '127.0.0.2', cliHost: '127.0.0.1', otherHost: '192.0.2.123',
};

export type Rec = Record<string, unknown>;

/** Names addresses and ports by role, so both runs can be compared. */
export class Roles {
  private readonly ports = new Map<number, string>();
  constructor(private readonly env: Env) {}
  port(p: number, role: string): number {
    const had = this.ports.get(p);
    if (had !== undefined && had !== role) throw new Error(`port ${p} has two roles: ${had} and ${role}`);
    this.ports.set(p, role);
    return p;
  }
  a(x: unknown): unknown {
    if (typeof x !== 'string') return x;
    const e = this.env;
    return x.replace(e.srvHost, 'SRV').replace(e.cliHost, 'CLI').replace(e.otherHost, 'OTHER');
  }
  p(x: unknown): unknown {
    if (typeof x !== 'number') return x;
    return this.ports.get(x) ?? (x >= 1024 ? 'EPHEMERAL' : x);
  }
  text(m: string): string {
    let s = m;
    for (const [p, role] of this.ports) s = s.split(`:${p}`).join(`:${role}`);
    const e = this.env;
    return s.split(e.srvHost).join('SRV').split(e.cliHost).join('CLI').split(e.otherHost).join('OTHER');
  }
  err(e: unknown): Rec | null {
    if (!e) return null;
    const x = e as Error & { code?: string; errno?: number; syscall?: string; address?: string; port?: number; localAddress?: string; localPort?: number };
    const out: Rec = { name: x.name, code: x.code, message: this.text(x.message) };
    for (const k of ['errno', 'syscall'] as const) if (x[k] !== undefined) out[k] = x[k];
    if (x.address !== undefined) out.address = this.a(x.address);
    if (x.port !== undefined) out.port = this.p(x.port);
    if (x.localAddress !== undefined) out.localAddress = this.a(x.localAddress);
    if (x.localPort !== undefined) out.localPort = this.p(x.localPort);
    if (x.cause !== undefined) out.cause = String(x.cause);
    return out;
  }
  /** Records the events of `s` in order ('data' left out: chunking is the transport's business). */
  watch(s: EventEmitter, out: string[]): void {
    for (const n of ['connectionAttempt', 'connectionAttemptFailed', 'connect', 'ready', 'end', 'finish', 'close', 'error', 'timeout',
      'listening', 'drop']) {
      s.on(n, (...args: unknown[]) => {
        if (n === 'error') out.push(`error ${(args[0] as { code?: string }).code}`);
        else if (n === 'close') out.push(args.length ? `close ${String(args[0])}` : 'close');
        else if (n === 'connectionAttempt') out.push(`connectionAttempt ${this.a(args[0])} ${this.p(args[1])} ${args[2]}`);
        else if (n === 'connectionAttemptFailed') out.push(`connectionAttemptFailed ${(args[3] as { code?: string }).code}`);
        else out.push(n);
      });
    }
  }
  props(s: Socket): Rec {
    const addr = s.address() as { address?: string; family?: string; port?: number };
    return {
      connecting: s.connecting, pending: s.pending, readyState: s.readyState, destroyed: s.destroyed,
      bufferSize: s.bufferSize, writableLength: s.writableLength, bytesRead: s.bytesRead, bytesWritten: s.bytesWritten,
      timeout: s.timeout, remoteAddress: this.a(s.remoteAddress), remotePort: this.p(s.remotePort), remoteFamily: s.remoteFamily,
      // A local port is the stack's choice: only whether there is one is compared.
      localAddress: this.a(s.localAddress), localPort: typeof s.localPort, localFamily: s.localFamily,
      address: { address: this.a(addr.address), family: addr.family, port: typeof addr.port },
    };
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** listen(...args); resolves with the port once 'listening' (or rejects with the 'error'). */
export function listen(srv: Server, ...args: unknown[]): Promise<number> {
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    (srv.listen as (...a: unknown[]) => Server)(...args);
    srv.once('listening', () => { srv.off('error', reject); resolve((srv.address() as { port: number }).port); });
  });
}

export function closeServer(srv: Server): Promise<void> {
  return new Promise((r) => { if (!srv.listening) r(); else srv.close(() => r()); });
}

/** `n` distinct ports nothing listens on (taken together, then given back). */
export async function freePorts(env: Env, n: number): Promise<number[]> {
  const ss = Array.from({ length: n }, () => env.srv.createServer());
  const ps: number[] = [];
  for (const s of ss) ps.push(await listen(s, 0, env.srvHost));
  for (const s of ss) await closeServer(s);
  return ps;
}

/** Runs `scenario` with Node's net over the kernel, then with ours; returns both observations. */
export async function both<T>(scenario: (env: Env, r: Roles) => Promise<T>): Promise<{ node: T; ours: T }> {
  const node = await scenario(NODE, new Roles(NODE));
  const w = realTimeHosts();
  try {
    const env: Env = { name: 'xdpstack', srv: netModule(w.a.ctx), cli: netModule(w.b.ctx), srvHost: '10.1.1.1', cliHost: '10.1.1.2', otherHost: '192.0.2.123' };
    const ours = await scenario(env, new Roles(env));
    return { node, ours };
  } finally {
    w.stop();
  }
}

/** The paths where two observations differ, each with both values. */
export function diff(a: unknown, b: unknown, path = ''): string[] {
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].flatMap((k) => diff((a as Rec)[k], (b as Rec)[k], `${path}.${k}`));
  }
  return [`${path}: xdpstack ${JSON.stringify(a)}, Node ${JSON.stringify(b)}`];
}

export function same<T>(r: { node: T; ours: T }): T {
  const d = diff(r.ours, r.node);
  assert.ok(d.length === 0, `xdpstack differs from Node's net:\n${d.join('\n')}`);
  assert.equal(r.ours, r.node);
  return r.node;
}

/** An echo server; resolves with it and its port. */
export async function echoServer(env: Env, r: Roles, opts: ServerOptions = {}): Promise<{ srv: Server; port: number; conns: Socket[] }> {
  const conns: Socket[] = [];
  const srv = env.srv.createServer(opts, (s: Socket) => {
    conns.push(s);
    s.on('error', () => {});
    s.on('data', (d: Buffer) => s.write(d));
    s.on('end', () => s.end());
  });
  const port = r.port(await listen(srv, 0, env.srvHost), 'SP');
  return { srv, port, conns };
}

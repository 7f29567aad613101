/**
 * Compile-time checks of the net-shaped API (the build's tsc fails when one breaks; never run):
 * a typo in an options object is an error (excess property check), the IPC and handle forms are
 * refused, every documented overload of connect/listen compiles, and our Socket and Server fit
 * Node's own `net` types, so code written against Node's docs takes them.
 */
import type * as nodeNet from 'node:net';
import type { NetModule, Server, Socket } from '../stack/api/net';
import type { VsHandle } from '../stack/stack';

/** true when `Ours` has every member `Theirs` has, else the names it lacks. */
type Missing<Ours, Theirs> = [Exclude<keyof Theirs, keyof Ours>] extends [never] ? true : Exclude<keyof Theirs, keyof Ours>;

export function netTypeChecks(net: NetModule, vs: VsHandle, signal: AbortSignal): void {
  // connect / createConnection: (port[, host][, cb]) and (options[, cb]).
  net.connect(80);
  net.connect(80, '10.1.1.2');
  net.connect(80, () => {});
  net.connect(80, '10.1.1.2', () => {});
  net.createConnection({ port: 80, host: '10.1.1.2', localAddress: '10.1.1.1', localPort: 4000, noDelay: true, keepAlive: true,
    keepAliveInitialDelay: 1000, timeout: 5000, allowHalfOpen: true, signal, family: 4, mark: 7, tcp: { sack: false } }, () => {});
  net.connect({ port: 80, host: 'db.internal', lookup: (_h, _o, cb) => cb(null, '10.1.1.9', 4) });
  net.connect({ port: 80, onread: { buffer: Buffer.alloc(4096), callback: (n, buf) => buf.length >= n } });
  vs.connect(80, '10.1.1.2');
  vs.connect({ port: 80, host: '10.1.1.2' }, () => {});
  // @ts-expect-error a typo in the options: 'prot' is no option (excess property check)
  net.connect({ prot: 80 });
  // @ts-expect-error a typo beside a valid port
  net.connect({ port: 80, hots: '10.1.1.2' });
  // @ts-expect-error the same through the VS handle
  vs.connect({ port: 80, hots: '10.1.1.2' });
  // IPC paths compile (as in Node's types) but are typed `never`: they throw, not supported.
  const ipc: never = net.connect('/run/app.sock');
  void ipc;
  // @ts-expect-error nor an IPC path in options
  net.connect({ path: '/run/app.sock' });
  // @ts-expect-error the port is a number
  net.connect({ port: true });
  // @ts-expect-error no file descriptors
  net.connect({ port: 80, fd: 3 });

  // new Socket([options]) then socket.connect(...), as Node.
  const s: Socket = new net.Socket({ allowHalfOpen: true, signal, noDelay: true });
  s.connect(80, '10.1.1.2', () => {});
  s.connect({ port: 80, host: '10.1.1.2' });
  // @ts-expect-error a typo in socket.connect's options
  s.connect({ port: 80, hots: '10.1.1.2' });
  // @ts-expect-error no file descriptors
  new net.Socket({ fd: 3 });

  // createServer and listen: (port[, host][, backlog][, cb]), (options[, cb]), ().
  const srv: Server = net.createServer({ pauseOnConnect: true, noDelay: true, highWaterMark: 65536 }, (c) => c.end());
  net.createServer((c) => c.end());
  vs.createServer({ allowHalfOpen: true });
  srv.listen();
  srv.listen(() => {});
  srv.listen(80);
  srv.listen(80, () => {});
  srv.listen(80, '10.1.1.1');
  srv.listen(80, '10.1.1.1', () => {});
  srv.listen(80, 511, () => {});
  srv.listen(80, '10.1.1.1', 511, () => {});
  srv.listen({ port: 80, host: '::', backlog: 128, ipv6Only: true, exclusive: false, signal }, () => {});
  // @ts-expect-error a typo in listen options
  srv.listen({ prot: 80 });
  // @ts-expect-error IPC servers are not supported
  srv.listen({ path: '/run/app.sock' });
  // @ts-expect-error nor an IPC path as the first argument
  srv.listen('/run/app.sock');
  // @ts-expect-error nor handles
  srv.listen({ fd: 3 });
  // @ts-expect-error a typo in createServer options
  net.createServer({ pauseOnConect: true });

  // Every member of Node's net.Socket / net.Server exists on ours (by name: tsc does not relate the
  // two classes' `this`-returning overload sets; the forms of connect/listen are checked above).
  const socketFits: true = null as unknown as Missing<Socket, nodeNet.Socket>;
  const serverFits: true = null as unknown as Missing<Server, nodeNet.Server>;
  void socketFits; void serverFits;
  // And every export of Node's `net` on a VS's module (Node's underscored internals aside).
  const moduleFits: true = null as unknown as Missing<NetModule, Omit<typeof nodeNet, `_${string}`>>;
  void moduleFits;
}

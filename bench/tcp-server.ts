/**
 * Child process of the TCP benchmarks: the same application code over xdpstack (AF_XDP, one VS,
 * busy-poll runtime) or over Node's own `net`/`http` (kernel TCP).
 *
 *   node dist/bench/tcp-server.js xdp  IFNAME CIDR APP PORT SECONDS
 *   node dist/bench/tcp-server.js node -      IP   APP PORT SECONDS
 *
 * APP: `echo` (writes back what it reads), `sink` (counts bytes per connection and prints one JSON
 * line {"bytes","seconds"} per connection at its end, seconds from its first byte), `http` (Node
 * `http` server answering "hello world\n"). CIDR / IP of either family; an IPv6 address of the
 * stack is ready once Duplicate Address Detection passed (about 1 s). Prints "ready" when listening, and a final JSON line
 * {"done":true,...} (for xdp with the VS counters) when it exits after SECONDS or on SIGTERM.
 */
import * as http from 'node:http';
import * as net from 'node:net';
import { createStack, Stack } from '../stack/stack';

type App = 'echo' | 'sink' | 'http';

interface ServerLike {
  on(ev: 'connection', cb: (s: SockLike) => void): unknown;
}
interface SockLike {
  on(ev: string, cb: (...a: any[]) => void): unknown; // eslint-disable-line @typescript-eslint/no-explicit-any
  write(b: Uint8Array): boolean;
  setNoDelay?(on?: boolean): unknown;
}

/** Attaches the application to a server emitting 'connection' with net-shaped sockets. */
function attach(app: App, srv: ServerLike): void {
  if (app === 'http') {
    const web = http.createServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '12' });
      res.end('hello world\n');
    });
    srv.on('connection', (s) => { s.on('error', () => {}); web.emit('connection', s); });
    return;
  }
  srv.on('connection', (s) => {
    s.on('error', () => {});
    s.setNoDelay?.(true);
    if (app === 'echo') {
      s.on('data', (d: Uint8Array) => { s.write(d); });
      return;
    }
    let bytes = 0, first = 0;
    s.on('data', (d: Uint8Array) => {
      if (!first) first = performance.now();
      bytes += d.length;
    });
    s.on('end', () => {
      const seconds = (performance.now() - first) / 1000;
      console.log(JSON.stringify({ bytes, seconds }));
    });
  });
}

function main(): void {
  const [backend, ifname, addr, app, portS, secs] = process.argv.slice(2);
  if (!backend || !ifname || !addr || !app || !portS || !secs || !['xdp', 'node'].includes(backend)
    || !['echo', 'sink', 'http'].includes(app)) {
    console.error('usage: tcp-server xdp IFNAME CIDR APP PORT SECONDS | tcp-server node - IP APP PORT SECONDS');
    process.exit(2);
  }
  const port = Number(portS);
  let stack: Stack | null = null;
  let finish: () => void;
  if (backend === 'xdp') {
    stack = createStack({
      name: 'bench',
      devices: [{ name: ifname, driver: 'afxdp', frameCount: 8192, busyPoll: true }],
      virtualServers: [{ name: 'bench', links: [{ device: ifname, addresses: [addr] }] }],
    }, { busyPoll: true, log: () => {} });
    const vs = stack.vs('bench');
    const srv = vs.createServer({ noDelay: true });
    attach(app as App, srv as unknown as ServerLike);
    srv.listen(port);
    stack.start();
    // RFC 4862: an IPv6 address is tentative until DAD passed; wait for it (bounded) before "ready".
    const until = Date.now() + 10_000;
    const tentative = () => vs.raw.links.some((l) => l.addrs.some((a) => a.state === 'tentative'));
    const ready = () => {
      if (tentative() && Date.now() < until) { setTimeout(ready, 50); return; }
      console.log(tentative() ? 'ready (address still tentative)' : 'ready');
    };
    finish = () => {
      const counters = vs.raw.counters.toJSON();
      const devices = (stack!.show('counters') as { devices: unknown[] }).devices;
      try { stack!.close(); } catch { /* exiting */ }
      console.log(JSON.stringify({ done: true, vs: counters, devices }));
      process.exit(0);
    };
    ready();
  } else {
    const srv = net.createServer({ noDelay: true });
    attach(app as App, srv as unknown as ServerLike);
    srv.listen(port, addr, 1024, () => console.log('ready'));
    finish = () => { console.log(JSON.stringify({ done: true })); process.exit(0); };
  }
  setTimeout(() => finish(), Number(secs) * 1000);
  // Before the driver's own SIGTERM handler closes the socket, so its statistics can still be read.
  process.prependListener('SIGTERM', () => finish());
}

main();

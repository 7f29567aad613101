/**
 * Compile-time checks of the dgram-shaped API's types: compiled by `tsc` with the build, never run.
 * Each `@ts-expect-error` line must fail to compile (tsc reports an unused directive otherwise), so
 * a typo in an option, a wrong send form or an untyped listener breaks the build. The lines
 * without the directive are the forms Node's docs allow, which must keep compiling.
 */
import type { VsHandle } from '../stack/stack';
import type { RemoteInfo, SocketError, UdpSocket } from '../stack/api/dgram';

export function dgramTypes(vs: VsHandle, s: UdpSocket): void {
  // createSocket(type | options[, listener])
  vs.createSocket('udp4');
  vs.createSocket('udp6', (msg: Buffer, rinfo: RemoteInfo) => void [msg, rinfo]);
  vs.createSocket({
    type: 'udp6', reuseAddr: true, ipv6Only: true, recvBufferSize: 1 << 20, sendBufferSize: 1 << 16, signal: new AbortController().signal,
    lookup: (host, family, cb) => cb(null, host, family),
  });
  // @ts-expect-error a typo in an option
  vs.createSocket({ type: 'udp4', resuseAddr: true });
  // @ts-expect-error not a socket type
  vs.createSocket('udp5');
  // @ts-expect-error options need a type
  vs.createSocket({ reuseAddr: true });
  // @ts-expect-error lookup gets the name as text
  vs.createSocket({ type: 'udp4', lookup: (host: number) => void host });
  // @ts-expect-error signal is an AbortSignal
  vs.createSocket({ type: 'udp4', signal: true });

  // bind(port?, address?, cb?) | bind(options, cb?)
  s.bind();
  s.bind(53);
  s.bind(53, '10.1.1.1');
  s.bind(53, '10.1.1.1', () => {});
  s.bind(53, () => {});
  s.bind(() => {});
  s.bind({ port: 53, address: '10.1.1.1', exclusive: true }, () => {});
  // @ts-expect-error a typo in bind options
  s.bind({ prot: 80 });
  // @ts-expect-error the port is a number
  s.bind('53');
  // @ts-expect-error the address is text
  s.bind(53, 0x0a010101);

  // connect(port, address?, cb?)
  s.connect(53);
  s.connect(53, '10.1.1.2');
  s.connect(53, '10.1.1.2', () => {});
  s.connect(53, () => {});
  // @ts-expect-error a port is needed
  s.connect('10.1.1.2');

  // send: msg[, offset, length][, port][, address][, callback]; a list of messages
  s.send('text', 53, '10.1.1.2');
  s.send(Buffer.from('x'), 53, '10.1.1.2', (err: SocketError | null, bytes?: number) => void [err, bytes]);
  s.send(new Uint8Array(4), 0, 2, 53, '10.1.1.2', () => {});
  s.send(new DataView(new ArrayBuffer(4)), 53);
  s.send(['a', Buffer.from('b'), new Uint16Array(1)], 53, '10.1.1.2');
  s.send('connected');
  s.send('connected', (err) => void err);
  s.send(Buffer.from('connected'), 0, 4, () => {});
  // @ts-expect-error not a message
  s.send(42, 53, '10.1.1.2');
  // @ts-expect-error the callback is a function
  s.send('x', 53, '10.1.1.2', 'done');
  // @ts-expect-error a list cannot be sliced
  s.send(['a', 'b'], 0, 1, 53, '10.1.1.2');
  // @ts-expect-error the callback comes last
  s.send('x', () => {}, 53);

  // Typed events: rinfo, errors; an unknown event does not compile.
  s.on('message', (msg, rinfo) => {
    const b: Buffer = msg;
    const fam: 'IPv4' | 'IPv6' = rinfo.family;
    const n: number = rinfo.size + rinfo.port;
    const a: string = rinfo.address;
    void [b, fam, n, a];
    // @ts-expect-error rinfo has no such field
    void rinfo.addr;
  });
  s.once('error', (err) => { const code: string = err.code; void code; });
  s.on('listening', () => {});
  s.on('connect', () => {});
  s.on('close', () => {});
  // @ts-expect-error no such event
  s.on('mesage', () => {});
  // @ts-expect-error a message listener gets (msg, rinfo)
  s.on('message', (msg: string) => void msg);

  // Return values, as Node's.
  const addr: { address: string; family: 'IPv4' | 'IPv6'; port: number } = s.address();
  const ttl: number = s.setTTL(64);
  const rcv: number = s.getRecvBufferSize() + s.getSendBufferSize() + s.getSendQueueSize() + s.getSendQueueCount();
  const same: UdpSocket = s.ref();
  void [addr, ttl, rcv, same];
  // @ts-expect-error setBroadcast takes a flag
  s.setBroadcast();
}

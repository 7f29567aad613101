/**
 * TCP and UDP echo in every virtual server of a config, over xdpstack:
 *
 *   node dist/examples/echo/index.js CONFIG [--port N]
 *
 * Each VS echoes TCP connections and UDP datagrams on port N (default 7) on all its addresses.
 * Try from a peer: `nc -N ADDR 7 < file | cmp - file`, `echo hi | nc -u -w1 ADDR 7`. Ctrl-C stops.
 */
import { createStack } from '../../stack/stack';

function usage(msg?: string): never {
  if (msg) console.error(`echo example: ${msg}`);
  console.error('usage: node dist/examples/echo/index.js CONFIG [--port N]');
  process.exit(2);
}

function main(): void {
  const args = process.argv.slice(2);
  let config: string | undefined;
  let port = 7;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--port') port = Number(args[++i]);
    else if (a === '-h' || a === '--help') usage();
    else if (a.startsWith('-')) usage(`unknown option ${a}`);
    else if (config === undefined) config = a;
    else usage(`unexpected argument ${a}`);
  }
  if (!config) usage('missing CONFIG');
  if (!Number.isInteger(port) || port < 1 || port > 65535) usage('bad --port');

  const stack = createStack(config);
  const names = [...stack.engine.vsByName.keys()];
  let tcpConns = 0;
  for (const name of names) {
    const vs = stack.vs(name);
    const tcp = vs.createServer({ noDelay: true }, (s) => {
      tcpConns++;
      s.on('error', () => { /* a reset by the peer ends the echo */ });
      s.pipe(s);
    });
    tcp.on('error', (e: Error) => console.error(`VS ${name}: TCP port ${port}: ${e.message}`));
    tcp.listen(port);
    const udp = vs.createSocket('udp4');
    udp.on('message', (msg: Buffer, r: { address: string; port: number }) => udp.send(msg, r.port, r.address));
    udp.on('error', (e: Error) => console.error(`VS ${name}: UDP port ${port}: ${e.message}`));
    udp.bind(port);
  }
  stack.start();
  console.log(`TCP + UDP echo on port ${port} in ${names.length} virtual server(s): ${names.join(', ')}`);

  const stop = () => {
    try { stack.close(); } catch (e) { console.error((e as Error).message); }
    console.log(`stopped after ${tcpConns} TCP connection(s)`);
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main();

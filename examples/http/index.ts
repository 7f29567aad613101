/**
 * Node `http` (or `https`) in every virtual server of a config, over xdpstack:
 *
 *   node dist/examples/http/index.js CONFIG [--https] [--port N] [--cert FILE --key FILE]
 *
 * Each VS answers `GET /` with `hello from VS <name>` (port 80, or 443 with --https). Without
 * --cert/--key, --https makes a self-signed certificate with openssl. Ctrl-C stops cleanly.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { createStack } from '../../stack/stack';
import { serveNode, selfSignedCert, CertFiles } from './serve';

function usage(msg?: string): never {
  if (msg) console.error(`http example: ${msg}`);
  console.error('usage: node dist/examples/http/index.js CONFIG [--https] [--port N] [--cert FILE --key FILE]');
  process.exit(2);
}

function main(): void {
  const args = process.argv.slice(2);
  let config: string | undefined;
  let tls = false;
  let port: number | undefined;
  let certFile: string | undefined;
  let keyFile: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--https') tls = true;
    else if (a === '--port') port = Number(args[++i]);
    else if (a === '--cert') certFile = args[++i];
    else if (a === '--key') keyFile = args[++i];
    else if (a === '-h' || a === '--help') usage();
    else if (a.startsWith('-')) usage(`unknown option ${a}`);
    else if (config === undefined) config = a;
    else usage(`unexpected argument ${a}`);
  }
  if (!config) usage('missing CONFIG');
  port ??= tls ? 443 : 80;
  if (!Number.isInteger(port) || port < 1 || port > 65535) usage('bad --port');
  if ((certFile === undefined) !== (keyFile === undefined)) usage('give both --cert and --key');

  let generated: CertFiles | null = null;
  let creds: { key: Buffer; cert: Buffer } | null = null;
  if (tls) {
    if (!certFile) { generated = selfSignedCert(); certFile = generated.cert; keyFile = generated.key; }
    creds = { key: fs.readFileSync(keyFile!), cert: fs.readFileSync(certFile) };
  }

  const stack = createStack(config);
  const vsNames = [...stack.engine.vsByName.keys()];
  for (const name of vsNames) {
    const handler: http.RequestListener = (req, res) => {
      const body = `hello from VS ${name}\n`;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const web = creds ? https.createServer(creds, handler) : http.createServer(handler);
    const srv = stack.vs(name).createServer({ noDelay: true });
    srv.on('error', (e: Error) => console.error(`VS ${name}: ${e.message}`));
    srv.listen(port);
    serveNode(srv, web);
  }
  stack.start();
  console.log(`${tls ? 'https' : 'http'} on port ${port} in ${vsNames.length} virtual server(s): ${vsNames.join(', ')}`);

  const stop = () => {
    try { stack.close(); } catch (e) { console.error((e as Error).message); }
    if (generated) fs.rmSync(generated.dir, { recursive: true, force: true });
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main();

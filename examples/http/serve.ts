/**
 * Node's own `http` and `https` servers running unchanged over xdpstack TCP: every connection an
 * xdpstack Server accepts is handed to the Node server as if its own listener had accepted it.
 * For https, Node's tls.Server wraps each of our sockets in a tls.TLSSocket (isServer) itself.
 *
 *   const web = http.createServer((req, res) => res.end('hi'));
 *   serveNode(stack.vs('a').createServer().listen(80), web);
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import type * as http from 'node:http';
import type * as https from 'node:https';
import type { Server, Socket } from '../../stack/api/net';

/**
 * Feeds every connection of `from` (an xdpstack Server) to `to` (a Node http/https server that
 * never listens itself). Returns a function that stops the handing over.
 */
export function serveNode(from: Server, to: http.Server | https.Server): () => void {
  const onConnection = (s: Socket) => {
    // The Node server handles socket errors (clientError); this keeps a late reset harmless.
    s.on('error', () => {});
    to.emit('connection', s);
  };
  from.on('connection', onConnection);
  return () => from.removeListener('connection', onConnection);
}

export interface CertFiles { key: string; cert: string; dir: string }

/**
 * Generates a self-signed certificate (RSA 2048, 1 day) for `cn` with `openssl req -x509` into a
 * new temporary directory. Remove `dir` when done.
 */
export function selfSignedCert(cn = 'localhost'): CertFiles {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xdpstack-cert-'));
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
      '-days', '1', '-subj', `/CN=${cn}`], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 30000 });
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    const err = e as { code?: string; stderr?: Buffer; message: string };
    if (err.code === 'ENOENT') throw new Error('openssl not found (run scripts/setup.sh)');
    throw new Error(`openssl req -x509 failed: ${err.stderr?.toString().trim() || err.message}`);
  }
  return { key, cert, dir };
}

/**
 * The iSCSI service: binds the sans-IO target (session.ts over scsi/) to a virtual server's TCP
 * port through the public sockets API. Each VS that runs it has its own targets and data: the same
 * IQN on the same address in two VLANs reaches two different disks.
 *
 * Received bytes come through the zero-copy reader: a chunk is a view into the received frame and
 * the session may keep views of Data-Out payloads (`hold`) until the backend has taken them, so a
 * written byte is copied once, from the frame into the LUN. Data-In goes out as views of the
 * backend's memory; the socket copies it once into the send buffer.
 */
import type { Server as NetServer, Socket as NetSocket } from '../../stack/net';
import type { ZeroCopyChunk } from '../../stack/transport/tcp';
import type { Service, ServiceConfig, ServiceVs } from '../../stack/services';
import type { Obj } from '../../stack/validate';
import { targetSpecs } from './config';
import { createScsiTarget } from './scsi/target';
import type { ScsiTarget, TargetSpec } from './scsi/types';
import { IscsiConnection, Portal, SessionTable } from './session';

/**
 * Unsent bytes above which the connection stops reading (its received chunks wait, held, so the
 * TCP receive window closes) until the socket drains: an initiator that sends requests but does
 * not read the answers cannot make the target queue answers without bound.
 */
export const OUTPUT_HIGH_WATER = 1 << 20;
/**
 * How long a connection the session ended may take to flush its last answers (a Logout Response)
 * before it is reset: a peer that stopped reading must not keep the socket and its queue.
 */
export const CLOSE_LINGER_MS = 3000;
const EMPTY = new Uint8Array(0);

export interface IscsiServiceOptions {
  log?: (msg: string) => void;
}

/** The address as a Node server shows it, without the IPv4-mapped prefix (SendTargets names it). */
function plainAddress(a: string | undefined): string {
  if (!a) return '0.0.0.0';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

export class IscsiService implements Service {
  readonly type = 'iscsi';
  readonly portal: Portal;
  private readonly server: NetServer;
  private readonly sockets = new Set<NetSocket>();
  private readonly scsi: ScsiTarget[] = [];
  private closed = false;
  /** Connections accepted since start. */
  connections = 0;

  constructor(readonly vs: ServiceVs, spec: ServiceConfig & { port: number }, private readonly opts: IscsiServiceOptions = {}) {
    const targets = new Map<string, { spec: TargetSpec; scsi: ScsiTarget }>();
    const log = opts.log ?? ((m: string) => console.warn(m));
    try {
      for (const t of targetSpecs(spec as unknown as Obj)) {
        const scsi = createScsiTarget(t, { log: (m) => log(`iscsi ${vs.name} ${t.iqn}: ${m}`) });
        this.scsi.push(scsi);
        targets.set(t.iqn, { spec: t, scsi });
      }
    } catch (e) {
      for (const s of this.scsi) try { s.close(); } catch { /* already failing */ }
      throw e;
    }
    this.portal = { targets, sessions: new SessionTable() };
    const nop = {
      ...(typeof spec['nopInterval'] === 'number' ? { nopInterval: spec['nopInterval'] * 1000 } : {}),
      ...(typeof spec['nopTimeout'] === 'number' ? { nopTimeout: spec['nopTimeout'] * 1000 } : {}),
    };
    this.server = vs.createServer({ noDelay: true }, (sock) => this.accept(sock, nop, log));
    this.server.on('error', (e: Error) => log(`iscsi ${vs.name}: port ${spec.port}: ${e.message}`));
    this.server.listen(spec.port, spec.address);
  }

  private accept(sock: NetSocket, nop: { nopInterval?: number; nopTimeout?: number }, log: (m: string) => void): void {
    if (this.closed) { sock.destroy(); return; }
    this.connections++;
    this.sockets.add(sock);
    const who = `iscsi ${this.vs.name} ${sock.remoteAddress}:${sock.remotePort}`;
    let timer: NodeJS.Timeout | null = null;
    let ended = false;
    const now = () => performance.now();
    // Chunks received while the output is backed up wait here, unreleased (their frames keep the
    // receive window closed), and are read in order once the socket drains.
    let waiting: ZeroCopyChunk[] = [];
    let paused = false;
    /** The session ended the connection (close()): what still arrives is dropped. */
    let over = false;
    const releaseWaiting = () => { const w = waiting; waiting = []; for (const c of w) c.release(); };
    const conn = new IscsiConnection(this.portal, {
      send: (bufs) => {
        if (sock.destroyed || sock.writableEnded) return;
        if (bufs.length === 1) { sock.write(bufs[0]!); return; }
        // One PDU is a header and its data: corked, they leave in as few segments as the MSS allows.
        sock.cork();
        for (const b of bufs) sock.write(b);
        sock.uncork();
      },
      close: () => {
        over = true;
        releaseWaiting(); // the session is over: nothing more is read
        if (sock.destroyed) return;
        sock.end();
        // Destroyed with an error, the socket is reset: a FIN would wait behind the unread data.
        const t = setTimeout(() => sock.destroy(new Error('iscsi: the initiator did not take the last answers')), CLOSE_LINGER_MS);
        t.unref?.();
        sock.once('close', () => clearTimeout(t));
      },
      log: (m) => log(`${who}: ${m}`),
      backlog: () => sock.writableLength,
    }, { address: plainAddress(sock.localAddress), port: sock.localPort ?? 0 }, now(), nop);

    const schedule = () => {
      if (ended) return;
      const due = conn.advance(now());
      if (timer) { clearTimeout(timer); timer = null; }
      if (Number.isFinite(due)) {
        timer = setTimeout(schedule, Math.max(1, Math.ceil(due - now())));
        timer.unref?.();
      }
    };
    const end = () => {
      if (ended) return;
      ended = true;
      if (timer) { clearTimeout(timer); timer = null; }
      this.sockets.delete(sock);
      releaseWaiting();
      conn.closed(now());
    };
    const consume = (chunk: ZeroCopyChunk) => {
      // The chunk goes back to the pool when the session and every Data-Out view it kept let go.
      let refs = 1;
      const release = () => { if (--refs === 0) chunk.release(); };
      const hold = () => {
        refs++;
        let once = false;
        return () => { if (!once) { once = true; release(); } };
      };
      try {
        conn.input(chunk.bytes, now(), hold);
      } finally {
        release();
      }
      if (!paused && sock.writableLength > OUTPUT_HIGH_WATER) {
        paused = true;
        this.portal.sessions.count('input-paused-output-backlog');
      }
    };
    const readWaiting = (force: boolean) => {
      while (waiting.length && (force || !paused) && !ended && !over) consume(waiting.shift()!);
      if (ended || over) releaseWaiting();
    };
    sock.setZeroCopyReader((chunk) => {
      if (ended || over) { chunk.release(); return; }
      if (paused || waiting.length) {
        waiting.push(chunk);
        conn.input(EMPTY, now()); // bytes arrived: the initiator is alive (NOP-In pings, RFC 7143 11.19)
        return;
      }
      consume(chunk);
      schedule();
    });
    sock.on('drain', () => {
      paused = false;
      readWaiting(false);
      schedule(); // tasks that waited for the output may start (conn.advance)
    });
    // The initiator's end comes after its last bytes: read what waits first.
    sock.on('end', () => { readWaiting(true); end(); if (!sock.destroyed) sock.end(); });
    sock.on('close', end);
    sock.on('error', () => { /* a reset ends the connection: 'close' follows */ });
    schedule();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.server.listening) this.server.close();
    for (const s of [...this.sockets]) s.destroy();
    this.sockets.clear();
    for (const s of this.scsi) {
      try { s.close(); } catch (e) { console.warn(`iscsi ${this.vs.name}: closing a target: ${(e as Error).message}`); }
    }
  }
}

/**
 * The iSCSI service: binds the sans-IO target (session.ts over scsi/) to a virtual server's TCP
 * port through the public sockets API. Each VS that runs it has its own targets and data: the same
 * IQN on the same address in two VLANs reaches two different disks.
 *
 * Received bytes come through the zero-copy reader: a chunk is a view into the received frame and
 * the session may keep views of Data-Out payloads (`hold`) until the backend has taken them, so a
 * written byte is copied once, from the frame into the LUN. Pinned frames are budgeted (hold.ts):
 * past the service's chunk limit or a connection's byte limit the session copies instead, so held
 * frames never starve the pool or shut a receive window on data a command still waits for. Data-In
 * goes out as views of the backend's memory; the socket copies it once into the send buffer.
 */
import type { Server as NetServer, Socket as NetSocket } from '../../stack/api/net';
import type { ZeroCopyChunk } from '../../stack/transport/tcp';
import type { Service, ServiceConfig, ServiceVs } from '../../stack/control/services';
import type { Obj } from '../../stack/control/validate';
import { targetSpecs } from './config';
import { createScsiTarget } from './scsi/target';
import type { ScsiTarget, TargetSpec } from './scsi/types';
import { IscsiConnection, Portal, SessionTable } from './session';
import { DEFAULT_MAX_HELD_CHUNKS, HoldBudget } from './hold';

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
  /**
   * Received chunks (UMEM frames) all connections of the service may keep pinned as Data-Out
   * views; past it Data-Out is copied. Default 512 (the frame pool's size is not visible here:
   * keep it well under the device's frameCount / 2). 0 copies always. Also the config key
   * `maxHeldChunks`.
   */
  maxHeldChunks?: number;
  /**
   * TCP receive buffer of the service's connections (bytes), default 256 KiB (the stack's
   * default). A connection pins at most half of it, so its window never closes on held data alone.
   */
  receiveBuffer?: number;
}

const DEFAULT_RECEIVE_BUFFER = 256 * 1024;

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
  /** Pinned receive chunks, service-wide (held now, peak, refused). */
  readonly holds: HoldBudget;
  private readonly live = new Set<IscsiConnection>();
  private readonly ended = { copiedBytes: 0, heldPieces: 0, refusedHolds: 0 };

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
    const maxHeld = opts.maxHeldChunks ?? (typeof spec['maxHeldChunks'] === 'number' ? spec['maxHeldChunks'] : DEFAULT_MAX_HELD_CHUNKS);
    const rcvBuf = opts.receiveBuffer ?? DEFAULT_RECEIVE_BUFFER;
    this.holds = new HoldBudget({ maxHeldChunks: maxHeld, maxHeldBytesPerConnection: rcvBuf >>> 1 });
    const nop = {
      ...(typeof spec['nopInterval'] === 'number' ? { nopInterval: spec['nopInterval'] * 1000 } : {}),
      ...(typeof spec['nopTimeout'] === 'number' ? { nopTimeout: spec['nopTimeout'] * 1000 } : {}),
    };
    // The receive buffer is set here, not inherited, so the per-connection hold limit is known to
    // be below it.
    this.server = vs.createServer({ noDelay: true, tcp: { rcvBuf } }, (sock) => this.accept(sock, nop, log));
    this.server.on('error', (e: Error) => log(`iscsi ${vs.name}: port ${spec.port}: ${e.message}`));
    this.server.listen(spec.port, spec.address);
  }

  /**
   * Data-Out of SCSI Command / Data-Out PDUs over all connections so far: bytes the readers copied
   * (over budget, or no hold), pieces kept as pinned views of received frames, holds refused.
   */
  get dataOut(): { copiedBytes: number; heldPieces: number; refusedHolds: number } {
    const t = { ...this.ended };
    for (const c of this.live) {
      const s = c.dataOutStats;
      t.copiedBytes += s.copiedBytes; t.heldPieces += s.heldPieces; t.refusedHolds += s.refusedHolds;
    }
    return t;
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
    const holds = this.holds.connection();
    // Chunks left unread while the output is backed up are frames of the shared pool too: they
    // count against the service's pin budget (a connection that would pass it is reset).
    const releaseWaiting = () => { const w = waiting; waiting = []; for (const c of w) { holds.unpark(); c.release(); } };
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
        // The initiator did not take the last answers: reset, as a FIN would wait behind the unread data.
        const t = setTimeout(() => sock.resetAndDestroy(), CLOSE_LINGER_MS);
        t.unref?.();
        sock.once('close', () => clearTimeout(t));
      },
      log: (m) => log(`${who}: ${m}`),
      backlog: () => sock.writableLength,
    }, { address: plainAddress(sock.localAddress), port: sock.localPort ?? 0 }, now(), nop);
    this.live.add(conn);

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
      this.live.delete(conn);
      const s = conn.dataOutStats;
      this.ended.copiedBytes += s.copiedBytes; this.ended.heldPieces += s.heldPieces; this.ended.refusedHolds += s.refusedHolds;
    };
    const consume = (chunk: ZeroCopyChunk) => {
      // The chunk goes back to the pool once input has returned and every Data-Out view the
      // session pinned is released (command done or aborted, connection closed); a refused hold
      // (over budget) makes the session copy.
      const c = holds.chunk(chunk.bytes.length, () => chunk.release());
      try {
        conn.input(chunk.bytes, now(), c.hold);
      } finally {
        c.end();
      }
      if (!paused && sock.writableLength > OUTPUT_HIGH_WATER) {
        paused = true;
        this.portal.sessions.count('input-paused-output-backlog');
      }
    };
    const readWaiting = (force: boolean) => {
      while (waiting.length && (force || !paused) && !ended && !over) { holds.unpark(); consume(waiting.shift()!); }
      if (ended || over) releaseWaiting();
    };
    sock.setZeroCopyReader((chunk) => {
      if (ended || over) { chunk.release(); return; }
      if (paused || waiting.length) {
        if (!holds.park()) {
          this.portal.sessions.count('reset-unread-output-over-budget');
          chunk.release();
          over = true;
          releaseWaiting();
          // The initiator sends but does not read, and the frame budget is spent: reset.
          sock.resetAndDestroy();
          return;
        }
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

/**
 * Control socket of a running stack: a unix stream socket speaking JSON lines. Each request is one
 * JSON object on one line; each answer is one line `{"ok":true,"data":...}` or
 * `{"ok":false,"error":"message"}`.
 *
 * Sessions (`trace`, `icmp.echo`) answer with events: `{"ok":true,"event":"started",...}` first,
 * `{"ok":true,"event":"done",...}` last. Closing the connection stops a session; half-closing it
 * (shutdown of the client's write side) stops it too and still gets the `done` answer, with the
 * counts so far (Ctrl-C in the CLI).
 *
 * A streamed trace (`"stream":true`, `xdpstack trace --out -`) carries the capture itself on the
 * connection, between the `started` line and the `done` line, as length-prefixed chunks:
 *
 *   {"ok":true,"event":"started","stream":"pcap"}\n
 *   u32 N (big-endian) + N bytes of pcap      (repeated; the first chunk begins with the
 *                                              24-byte global header, then whole records)
 *   u32 0                                     (end of the capture)
 *   {"ok":true,"event":"done","frames":N,"data":{"seen":S,"matched":M,"captured":N,"dropped":D}}\n
 *
 * so the JSON lines stay JSON lines and the bytes need no escaping. A reader that falls behind
 * makes the trace drop frames (counted in `dropped`) rather than the stack buffer without bound.
 *
 * Requests:
 *   {"cmd":"ping"}
 *   {"cmd":"show","kind":"vs|links|addresses|routes|rules|neighbors|counters|pool|limits|connections|config","vs":"a"}
 *   {"cmd":"show","kind":"connections","vs":"a","state":"established,time-wait","port":80}  (state: ss's filter names)
 *     kind 'config': the running configuration, a config file `xdpstack run` accepts (no "vs").
 *   {"cmd":"counters.clear","vs":"a"}     zeroes packet/byte/drop counters (all, or one VS's);
 *     answers {"devices":N,"vs":N,"links":N}, what was cleared
 *   {"cmd":"neighbor.flush","vs":"a","link":"xs0.10","address":"10.1.1.2"}   ("link", "address" optional)
 *     removes neighbor entries; answers {"flushed":[{"vs","link","address","state"}]}
 *   {"cmd":"vs.add","name":"c","links":[{"device":"xs0","vlan":30}],"limits":{"tcpConnections":1000}}     {"cmd":"vs.del","name":"c"}
 *   {"cmd":"link.add","vs":"c","device":"xs0","vlan":40,"mac":"02:..","mtu":1500,"name":"l2","addresses":["10.2.2.1/24"]}
 *   {"cmd":"link.del","vs":"c","link":"xs0.40"}
 * Every change is checked by the validator (stack/control/validate.ts) against the running state, with the
 * rules a config file is checked by. A field a request does not take is refused, as a config file's
 * unknown key is (REQUEST_FIELDS). A client that does not read its answers is not read either while
 * more than MAX_QUEUED_ANSWERS bytes of them wait.
 * Addresses, gateways and prefixes are IPv4 or IPv6 text ("fd00::1/64", "via":"fe80::1%xs0.10").
 *   {"cmd":"address.add","vs":"a","link":"xs0.10","cidr":"10.1.1.5/24"}  (and address.del)
 *   {"cmd":"route.add","vs":"a","dst":"10.9.0.0/16","via":"10.1.1.254","link":"...","table":100} (and route.del)
 *   {"cmd":"rule.add","vs":"a","priority":100,"from":"fd00:1::/64","fwmark":1,"table":100}  {"cmd":"rule.del","vs":"a","priority":100}
 *   {"cmd":"vip.add","vs":"a","addr":"198.51.100.10"}  {"cmd":"vip.del","vs":"a","addr":"198.51.100.10"}
 *   {"cmd":"decap.set","vs":"a","from":["10.1.1.100/32","fd00:1::100/128"],"overhead":20}
 *   {"cmd":"trace","vs":"a","count":100,"out":"/abs/path.pcap"}           (written by the stack)
 *   {"cmd":"trace","stream":true,"vlan":10,"host":"10.1.1.2","port":80,"proto":"tcp","count":10}
 *       filters (stack/trace.ts TraceFilter), all optional and ANDed; with `vs` or `out` as above
 *   {"cmd":"icmp.echo","vs":"a","target":"10.1.1.2","count":3,"interval":1,"size":56,"timeout":10}
 *       ping from a VS (stack/ping.ts); events: started {data: PingStart}, reply {data: PingReply}
 *       per reply, error {data: {seq, error}} per request not sent, unreachable {data: PingIcmpError}
 *       per ICMP error about a request, done {data: PingSummary}.
 *       (`ping` is the control socket's own liveness check.)
 *
 * Drops have one shape in every answer (show counters: devices, vs, links, driverDrops; show vs;
 * replay's counters; per-shard answers): `{"total":N,"reasons":{"udp-no-socket":2,...}}`, the
 * reasons that occurred only. A stack of shards runs `counters.clear` and `neighbor.flush` in every
 * shard; its `show config` is shard 0's (every change reaches every shard).
 */
import { VS_LIMIT_KEYS, VsLimits } from '../limits';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { PcapWriter } from '../../driver/pcap';
import type { Stack } from '../stack';
import { fileErrorText, type StackConfig } from './config';
import { TraceCounts, TraceFilter, TraceFilterError, TraceFilterSpec, TraceSink } from '../trace';
import type { PingEvents, PingOptions, PingStart } from '../ping';
import { DECAP_KEYS, LINK_KEYS, NAME_HINT, NAME_RE, RULE_KEYS, ValidationError } from './validate';
import { closest } from './suggest';

export const CONTROL_DIR = process.env.XDPSTACK_RUN_DIR ?? '/run/xdpstack';

export function defaultSocketPath(name: string): string {
  return path.join(CONTROL_DIR, `${name}.sock`);
}

/**
 * Where a stack's control socket goes (absolute): `control` true = the config's `control.socket`,
 * else the default path for the stack's name; a string = that path. `xdpstack run` and the
 * library's `control` option use the same rule.
 */
export function controlSocketPath(control: true | string, cfg: Pick<StackConfig, 'name' | 'control'>): string {
  if (typeof control === 'string') {
    if (control === '') throw new Error(`control: the socket path must not be empty`);
    return path.resolve(control);
  }
  return path.resolve((cfg.control ? cfg.control.socket : undefined) ?? defaultSocketPath(cfg.name ?? 'xdpstack'));
}

export type Request = Record<string, unknown> & { cmd: string };
export interface Response { ok: boolean; data?: unknown; error?: string; event?: string; frames?: number; stream?: string }

const MAX_LINE = 1 << 20;
/** The largest identity a virtual server may be given (`vs.add`'s `id`): it travels as a u32 between shards. */
const MAX_VS_ID = 0x7fffffff;
/**
 * Answers queued on a connection whose client does not read them: past this many bytes the
 * connection's requests are not read either until the client catches up (its answers drain), so a
 * client that writes requests and never reads holds this much of the stack's memory, not more.
 */
const MAX_QUEUED_ANSWERS = 4 << 20;

function str(req: Request, k: string, required = true): string | undefined {
  const v = req[k];
  if (v === undefined || v === null) {
    if (required) throw new Error(`request '${req.cmd}' needs '${k}'`);
    return undefined;
  }
  if (typeof v !== 'string' || v === '') throw new Error(`request '${req.cmd}': '${k}' must be a non-empty string`);
  return v;
}

function num(req: Request, k: string): number | undefined {
  const v = req[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new Error(`request '${req.cmd}': '${k}' must be a non-negative integer`);
  return v;
}

function optNumber(req: Request, k: string): number | undefined {
  const v = req[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`request '${req.cmd}': '${k}' must be a number`);
  return v;
}

/** A trace as the control socket sees it. */
export interface TraceLike {
  stop(): void;
  /** `frames`: written to the capture; `counts`: what the trace saw, matched, wrote and dropped. */
  onDone(cb: (frames: number, counts: TraceCounts) => void): void;
}

/** What to trace and where: a file (`out`, absolute) or a stream (`stream`). */
export interface TraceRequest {
  out?: string;
  stream?: TraceSink;
  vs?: string;
  count?: number;
  filter?: TraceFilterSpec;
}

/** A running ping as the control socket sees it. */
export interface PingLike {
  readonly start: PingStart;
  stop(): void;
}

/** The trace filter fields of a request (checked by TraceFilter.parse). */
export function traceFilterOf(req: Request): TraceFilterSpec {
  const f: TraceFilterSpec = {};
  if (req.vlan !== undefined && req.vlan !== null) f.vlan = req.vlan as number;
  if (req.host !== undefined && req.host !== null) f.host = req.host as string;
  if (req.port !== undefined && req.port !== null) f.port = req.port as number;
  if (req.proto !== undefined && req.proto !== null) f.proto = req.proto as string;
  return f;
}

/** A streamed capture's buffered records go to its reader at least this often (ms). */
const STREAM_FLUSH_MS = 100;
/** A streamed capture's reader this far behind (bytes queued on the connection) makes the trace drop frames. */
const STREAM_MAX_QUEUED = 8 << 20;

/**
 * What a control socket serves: a single stack, or a group of shards (stack/shard/threads.ts),
 * which answers the same requests by asking every shard.
 */
export interface ControlTarget {
  readonly name: string;
  /**
   * Executes one (non-trace) request: its answer, or a promise of it (a group asks its shards);
   * an Error thrown or rejected goes back to the client as its message.
   */
  request(req: Request): unknown;
  /** Starts a trace into the pcap file `out` (an absolute path) or the stream `stream`. */
  startTrace(opts: TraceRequest): Promise<TraceLike>;
  /** Starts a ping from virtual server `vs` (rejects when its first request cannot be sent). */
  startPing(vs: string, target: string, opts: PingOptions, events: PingEvents): Promise<PingLike>;
}

/**
 * The writer of a trace: the file `out`, or a stream to `sink` (`header` false: records only).
 * `started(done)` starts flushing a stream every STREAM_FLUSH_MS until `done` calls back.
 */
export function traceWriter(o: { out?: string; sink?: (chunk: Uint8Array) => void; header?: boolean }): { writer: PcapWriter; started(done: (cb: () => void) => void): void } {
  if (o.sink) {
    const writer = new PcapWriter(undefined, { sink: o.sink, header: o.header });
    return {
      writer,
      started: (done) => {
        const timer = setInterval(() => { if (!writer.isClosed) writer.flush(); }, STREAM_FLUSH_MS);
        done(() => clearInterval(timer));
      },
    };
  }
  try {
    return { writer: new PcapWriter(o.out), started: () => {} };
  } catch (e) {
    throw new Error(`trace: cannot write ${o.out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** A single stack as a control target. */
function stackTarget(stack: Stack): ControlTarget {
  return {
    name: stack.name,
    request: (req) => handleRequest(stack, req),
    startTrace: async ({ out, stream, vs, count, filter }) => {
      if (!stream && !out) throw new Error(`trace: give 'out' (a file) or a stream`);
      if (vs !== undefined) stack.engine.vs(vs); // throws a clear error for an unknown VS
      const f = TraceFilter.parse(filter);
      const { writer, started } = traceWriter({ out, sink: stream ? (c) => stream.write(c) : undefined });
      const t = stack.trace({ vs, count, writer, filter: f, full: stream ? () => stream.full() : undefined });
      started((end) => t.onDone(end));
      return t;
    },
    startPing: async (vs, target, opts, events) => stack.vs(vs).ping(target, opts, events),
  };
}

/** A request line that came while a capture streamed: refused after it (or handled, when the capture never started). */
interface HeldRequest { line: string; refusal: Response }

/** A connection's sessions (trace, ping) and answers still to come. */
interface ConnState {
  sessions: Set<{ stop(): void }>;
  pending: number;
  /** The client half-closed: no more requests. */
  readEnded: boolean;
  /** A streamed trace runs: the connection carries its bytes. */
  binary: boolean;
  /** Answers to requests that came while a capture streamed, sent after it. */
  deferred: (Response | HeldRequest)[];
}

export class ControlServer {
  private readonly server: net.Server;
  private readonly conns = new Set<net.Socket>();
  private closed: Promise<void> | null = null;
  readonly target: ControlTarget;

  private constructor(target: Stack | ControlTarget, readonly socketPath: string) {
    this.target = 'request' in target ? target : stackTarget(target);
    // Half-open: a client that shuts its write side down (Ctrl-C of a session) still gets the
    // session's last answer.
    this.server = net.createServer({ allowHalfOpen: true }, (c) => this.onConnection(c));
  }

  /** Listens on `socketPath`; a stale socket file (no one listening) is replaced. */
  static async listen(stack: Stack | ControlTarget, socketPath: string): Promise<ControlServer> {
    try {
      fs.mkdirSync(path.dirname(socketPath), { recursive: true });
    } catch (e) {
      throw new Error(`control socket ${socketPath}: cannot make its directory: ${fileErrorText(e)}`);
    }
    // Only a socket (left by a stack that died) is ever replaced: a file or a directory given as
    // the path (`--socket stack.json`) is someone's data.
    let st: fs.Stats | undefined;
    try { st = fs.lstatSync(socketPath); } catch { /* nothing there */ }
    if (st && !st.isSocket()) {
      throw new Error(`control socket ${socketPath}: ${st.isDirectory() ? 'a directory' : st.isSymbolicLink() ? 'a symbolic link' : 'a file that is not a socket'} is there (not replaced): give another path`);
    }
    if (st) {
      const alive = await new Promise<boolean>((resolve) => {
        const c = net.connect(socketPath);
        c.once('connect', () => { c.destroy(); resolve(true); });
        c.once('error', () => resolve(false));
      });
      if (alive) throw new Error(`control socket ${socketPath} is in use: another stack named '${stack.name}' is running`);
      fs.unlinkSync(socketPath);
    }
    const s = new ControlServer(stack, socketPath);
    await new Promise<void>((resolve, reject) => {
      s.server.once('error', reject);
      s.server.listen(socketPath, () => { s.server.off('error', reject); resolve(); });
    });
    fs.chmodSync(socketPath, 0o600);
    return s;
  }

  private onConnection(c: net.Socket): void {
    this.conns.add(c);
    let buf = '';
    const st: ConnState = { sessions: new Set(), pending: 0, readEnded: false, binary: false, deferred: [] };
    c.setEncoding('utf8');
    /** Handles the whole lines in `buf`; pauses the connection while its client does not read. */
    const take = (): void => {
      let nl: number;
      while (!st.readEnded && (nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) this.handleLine(c, line, st);
        // A client that does not read its answers: its requests are not read either until they
        // drain (the rest waits in `buf`). A streamed capture has its own limit (STREAM_MAX_QUEUED).
        if (!st.binary && c.writableLength > MAX_QUEUED_ANSWERS && !c.destroyed) {
          c.pause();
          c.once('drain', () => { if (!c.destroyed) { c.resume(); take(); } });
          return;
        }
      }
    };
    c.on('data', (chunk: string) => {
      if (st.readEnded) return;
      buf += chunk;
      if (buf.length > MAX_LINE) { this.send(c, { ok: false, error: 'request line too long' }); c.destroy(); return; }
      if (!c.isPaused()) take();
    });
    c.on('end', () => {
      // The client will send no more: sessions end with their last answer, then this side closes.
      st.readEnded = true;
      for (const s of [...st.sessions]) s.stop();
      this.maybeEnd(c, st);
    });
    c.on('error', () => { /* client went away */ });
    c.on('close', () => {
      this.conns.delete(c);
      for (const s of [...st.sessions]) s.stop();
      st.sessions.clear();
    });
  }

  /** After the client's half-close: this side ends once nothing is left to answer. */
  private maybeEnd(c: net.Socket, st: ConnState): void {
    if (st.readEnded && st.sessions.size === 0 && st.pending === 0 && !c.destroyed) c.end();
  }

  private send(c: net.Socket, r: Response): void {
    if (!c.destroyed && c.writable !== false) c.write(JSON.stringify(r) + '\n');
  }

  /** An answer or event line: sent now, or after the capture that streams on the connection (never amid its bytes). */
  private answer(c: net.Socket, st: ConnState, r: Response): void {
    if (st.binary) st.deferred.push(r);
    else this.send(c, r);
  }

  private handleLine(c: net.Socket, line: string, st: ConnState): void {
    let req: Request;
    try {
      const v = JSON.parse(line) as unknown;
      if (typeof v !== 'object' || v === null || typeof (v as Request).cmd !== 'string') throw new Error('a request is a JSON object with a "cmd" string');
      req = v as Request;
    } catch (e) {
      this.answer(c, st, { ok: false, error: `bad request: ${(e as Error).message}` });
      return;
    }
    const unknown = unknownField(req);
    if (unknown) {
      this.answer(c, st, { ok: false, error: unknown });
      return;
    }
    if (st.binary) {
      // The connection carries a capture: the answer waits until it ends (no line amid its bytes).
      st.deferred.push({ line, refusal: { ok: false, error: `request '${req.cmd}': this connection was streaming a trace; send requests on another connection` } });
      return;
    }
    const done = () => { st.pending--; this.maybeEnd(c, st); };
    const fail = (e: unknown) => { this.answer(c, st, { ok: false, error: (e as Error).message }); };
    st.pending++;
    try {
      if (req.cmd === 'trace') {
        // A streamed capture has the connection from now on: requests already behind it in the
        // same write (pipelined) wait for its end too. A trace that fails to start gives it back.
        const streamed = req.stream === true;
        if (streamed) st.binary = true;
        this.startTrace(c, req, st).catch((e: unknown) => {
          if (!streamed) { fail(e); return; }
          st.binary = false;
          fail(e);
          // No capture came: what waited behind the request is handled as if it had not.
          for (const r of st.deferred.splice(0)) {
            if ('line' in r) this.handleLine(c, r.line, st);
            else this.answer(c, st, r);
          }
        }).finally(done);
        return;
      }
      if (req.cmd === 'icmp.echo') { this.startPing(c, req, st).catch(fail).finally(done); return; }
      // A single stack answers at once (in order); a group of shards answers when they all have.
      const data = this.target.request(req);
      if (data instanceof Promise) { data.then((d) => this.answer(c, st, { ok: true, data: d }), fail).finally(done); return; }
      this.answer(c, st, { ok: true, data });
    } catch (e) {
      fail(e);
    }
    done();
  }

  private async startTrace(c: net.Socket, req: Request, st: ConnState): Promise<void> {
    const stream = req.stream === true;
    if (req.stream !== undefined && req.stream !== null && typeof req.stream !== 'boolean') throw new Error(`trace: 'stream' must be true or false`);
    let out: string | undefined;
    if (stream) {
      if (req.out !== undefined && req.out !== null) throw new Error(`trace: 'out' (a file) and 'stream' (the capture on this connection) exclude each other`);
    } else {
      out = str(req, 'out')!;
      if (!path.isAbsolute(out)) throw new Error(`trace: 'out' must be an absolute path, got '${out}'`);
    }
    let filter: TraceFilterSpec;
    try {
      filter = traceFilterOf(req);
      TraceFilter.parse(filter);
    } catch (e) {
      throw new Error(`trace: ${(e as Error).message}`, { cause: e instanceof TraceFilterError ? e : undefined });
    }
    const count = num(req, 'count');
    // Chunks of a stream wait until the 'started' line is out.
    let open = false;
    const early: Uint8Array[] = [];
    const chunk = (b: Uint8Array) => {
      if (c.destroyed || !c.writable) return;
      const h = Buffer.allocUnsafe(4);
      h.writeUInt32BE(b.length, 0);
      c.write(h);
      c.write(b);
    };
    const sink: TraceSink | undefined = stream ? {
      write: (b) => { if (b.length === 0) return; if (open) chunk(b); else early.push(b); },
      full: () => c.writableLength > STREAM_MAX_QUEUED,
    } : undefined;
    const t = await this.target.startTrace({ out, stream: sink, vs: str(req, 'vs', false), count, filter });
    const session = { stop: () => t.stop() };
    st.sessions.add(session);
    if (stream) st.binary = true;
    this.send(c, { ok: true, event: 'started', ...(stream ? { stream: 'pcap' } : {}) });
    open = true;
    for (const b of early.splice(0)) chunk(b);
    t.onDone((frames, counts) => {
      st.sessions.delete(session);
      if (stream && !c.destroyed && c.writable) c.write(Buffer.alloc(4)); // end of the capture
      st.binary = false;
      this.send(c, { ok: true, event: 'done', frames, data: counts });
      for (const r of st.deferred.splice(0)) this.send(c, 'line' in r ? r.refusal : r);
      this.maybeEnd(c, st);
    });
    if (c.destroyed || st.readEnded) t.stop();
  }

  private async startPing(c: net.Socket, req: Request, st: ConnState): Promise<void> {
    const vs = str(req, 'vs')!;
    const target = str(req, 'target')!;
    const opts: PingOptions = { count: num(req, 'count'), interval: optNumber(req, 'interval'), size: num(req, 'size'), timeout: optNumber(req, 'timeout') };
    // Events wait until the 'started' answer is out.
    let open = false;
    const queued: Response[] = [];
    const emit = (r: Response) => { if (open) this.answer(c, st, r); else queued.push(r); };
    const session = { stop: () => {} };
    const p = await this.target.startPing(vs, target, opts, {
      onReply: (r) => emit({ ok: true, event: 'reply', data: r }),
      onError: (seq, error) => emit({ ok: true, event: 'error', data: { seq, error } }),
      onUnreachable: (u) => emit({ ok: true, event: 'unreachable', data: u }),
      onDone: (sum) => {
        st.sessions.delete(session);
        emit({ ok: true, event: 'done', data: sum });
        if (open) this.maybeEnd(c, st);
      },
    });
    session.stop = () => p.stop();
    const ended = queued.some((r) => r.event === 'done');
    if (!ended) st.sessions.add(session);
    this.answer(c, st, { ok: true, event: 'started', data: p.start });
    open = true;
    for (const r of queued.splice(0)) this.answer(c, st, r);
    if (!ended && (c.destroyed || st.readEnded)) p.stop();
  }

  /**
   * Stops listening and drops the clients. The socket file is gone when this returns (a stack's
   * synchronous close() relies on it); the promise resolves once the server has closed.
   */
  close(): Promise<void> {
    if (this.closed) return this.closed;
    for (const c of this.conns) c.destroy();
    this.closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    try { fs.unlinkSync(this.socketPath); } catch { /* already gone */ }
    return this.closed;
  }
}

/** Requests that every shard of a group executes (in order with the changes), answers merged. */
export const ALL_SHARD_REQUESTS: ReadonlySet<string> = new Set(['counters.clear', 'neighbor.flush']);

/** createStack()'s option that opens the control socket. */
export interface ControlOption {
  /**
   * Opens the stack's control socket, so the `xdpstack` CLI sees a stack started from a program as
   * it sees one of `xdpstack run`: true = the config's `control.socket`, else the default path for
   * the stack's name (`XDPSTACK_RUN_DIR` or /run/xdpstack, then NAME.sock); a string = that path.
   * createStack() then returns a promise: resolved once the socket listens, rejected (the stack
   * closed again) when another running stack has it. stack.close() removes it.
   */
  control: true | string;
}

/** A stack that can own its control socket (Stack, ShardedStack): it closes the socket when it closes. */
export interface ControlHost {
  readonly name: string;
  readonly config: Pick<StackConfig, 'name' | 'control'>;
  /** Takes the open socket; throws when the stack is closed or has one already. */
  adoptControl(c: ControlServer): void;
}

/**
 * Opens `stack`'s control socket (`control` as in ControlOption) and gives it to the stack, which
 * closes it with itself. Resolves to the socket's path; rejects when another running stack listens
 * there (a stale socket file, left by a dead process, is replaced).
 */
export async function listenControl(stack: (Stack | ControlTarget) & ControlHost, control: true | string = true): Promise<string> {
  const server = await ControlServer.listen(stack, controlSocketPath(control, stack.config));
  try {
    stack.adoptControl(server);
  } catch (e) {
    await server.close();
    throw e;
  }
  return server.socketPath;
}

/** The requests that change the running configuration (shards apply each, in the same order). */
export const CHANGE_REQUESTS: ReadonlySet<string> = new Set(['vs.add', 'vs.del', 'link.add', 'link.del', 'address.add', 'address.del', 'route.add', 'route.del', 'rule.add', 'rule.del',
  'vip.add', 'vip.del', 'decap.set']);

/** Every request the control socket knows. */
export const REQUESTS: readonly string[] = ['ping', 'show', 'counters.clear', 'neighbor.flush', 'vs.add', 'vs.del', 'link.add', 'link.del',
  'address.add', 'address.del', 'route.add', 'route.del', 'rule.add', 'rule.del', 'vip.add', 'vip.del', 'decap.set', 'trace', 'icmp.echo'];

/**
 * The fields each request takes besides `cmd` (the file's comment lists them). A field a request
 * does not take is refused, as a config file's unknown key is: `{"cmd":"route.add","dst":...,"gw":...}`
 * would otherwise add a route without its gateway.
 */
const REQUEST_FIELDS: Readonly<Record<string, readonly string[]>> = {
  'ping': [],
  'show': ['kind', 'vs', 'state', 'port', 'perShard'],
  'counters.clear': ['vs'],
  'neighbor.flush': ['vs', 'link', 'address'],
  'vs.add': ['name', 'links', 'limits', 'id'],
  'vs.del': ['name'],
  'link.add': ['vs', ...LINK_KEYS],
  'link.del': ['vs', 'link'],
  'address.add': ['vs', 'link', 'cidr'],
  'address.del': ['vs', 'link', 'cidr'],
  'route.add': ['vs', 'dst', 'via', 'link', 'onlink', 'table', 'metric', 'src'],
  'route.del': ['vs', 'dst', 'via', 'link', 'onlink', 'table', 'metric', 'src'],
  'rule.add': ['vs', ...RULE_KEYS],
  'rule.del': ['vs', 'priority'],
  'vip.add': ['vs', 'addr'],
  'vip.del': ['vs', 'addr'],
  'decap.set': ['vs', ...DECAP_KEYS],
  'trace': ['vs', 'count', 'out', 'stream', 'vlan', 'host', 'port', 'proto'],
  'icmp.echo': ['vs', 'target', 'count', 'interval', 'size', 'timeout'],
};

/** Why `req` has a field its command does not take (null when it has none, or the command is unknown). */
export function unknownField(req: Request): string | null {
  const fields = Object.hasOwn(REQUEST_FIELDS, req.cmd) ? REQUEST_FIELDS[req.cmd]! : undefined;
  if (!fields) return null;
  for (const k of Object.keys(req)) {
    if (k === 'cmd' || fields.includes(k)) continue;
    const near = closest(k, fields);
    return `request '${req.cmd}': unknown field '${k}' (${fields.length ? `fields: ${fields.join(', ')}` : 'it takes none'})${near !== undefined ? `: did you mean '${near}'?` : ''}`;
  }
  return null;
}

/**
 * Executes one (non-trace) request on a stack; throws an Error whose message goes back to the
 * client. Requests are plain JSON: the same request applied to every shard of a group, in the same
 * order, changes each the same way (`vs.add` may carry the `id` the control plane issued).
 */
export function handleRequest(st: Stack, req: Request): unknown {
  switch (req.cmd) {
    case 'ping':
      return { name: st.name, pid: process.pid };
    case 'show':
      // A stack of shards takes `perShard` before its shards see the request; a single stack has none to list.
      if (req.perShard !== undefined && req.perShard !== false) throw new Error(`request 'show': 'perShard' lists the shards of a stack of shards; stack '${st.name}' runs without shards`);
      return st.show(str(req, 'kind')!, { vs: str(req, 'vs', false), state: str(req, 'state', false), port: num(req, 'port') });
    case 'counters.clear':
      return st.clearCounters(str(req, 'vs', false));
    case 'neighbor.flush':
      return { flushed: st.flushNeighbors(str(req, 'vs')!, { link: str(req, 'link', false), address: str(req, 'address', false) }) };
    case 'vs.add': {
      const links = req.links === undefined ? [] : req.links;
      if (!Array.isArray(links)) throw new Error(`request 'vs.add': 'links' must be an array`);
      const limits = req.limits;
      if (limits !== undefined && (typeof limits !== 'object' || limits === null || Array.isArray(limits))) {
        throw new Error(`request 'vs.add': 'limits' must be an object (its own limits: ${Object.keys(VS_LIMIT_KEYS).join(', ')})`);
      }
      // `id`: the identity a group's control plane issued (stack/shard); 32 bits on the wire between shards.
      const id = num(req, 'id');
      if (id !== undefined && (id < 1 || id > MAX_VS_ID)) throw new Error(`request 'vs.add': 'id' must be 1..${MAX_VS_ID}, got ${id}`);
      st.createVs(str(req, 'name')!, links as never, limits as VsLimits | undefined, id);
      return null;
    }
    case 'vs.del':
      st.destroyVs(str(req, 'name')!);
      return null;
    case 'link.add': {
      // The link's fields are checked by the validator, as in a config file's link.
      const vs = st.vs(str(req, 'vs')!);
      const spec: Record<string, unknown> = {};
      for (const k of LINK_KEYS) if (req[k] !== undefined && req[k] !== null) spec[k] = req[k];
      vs.addLink(spec as never);
      return null;
    }
    case 'link.del':
      st.vs(str(req, 'vs')!).removeLink(str(req, 'link')!);
      return null;
    case 'address.add':
    case 'address.del': {
      const vs = st.vs(str(req, 'vs')!);
      const cidr = str(req, 'cidr')!;
      const link = str(req, 'link', false);
      if (req.cmd === 'address.add') vs.addAddress(cidr, link);
      else vs.removeAddress(cidr, link);
      return null;
    }
    case 'route.add':
    case 'route.del': {
      const vs = st.vs(str(req, 'vs')!);
      const spec = {
        dst: str(req, 'dst')!, via: str(req, 'via', false), link: str(req, 'link', false), src: str(req, 'src', false),
        onlink: req.onlink as boolean | undefined,
        table: num(req, 'table'), metric: num(req, 'metric'),
      };
      if (req.cmd === 'route.add') vs.addRoute(spec);
      else return { removed: vs.removeRoute(spec) };
      return null;
    }
    case 'rule.add': {
      // Shape and values are the validator's (checkRule), as a config file's rules.
      const spec: Record<string, unknown> = {};
      for (const k of RULE_KEYS) if (req[k] !== undefined && req[k] !== null) spec[k] = req[k];
      st.vs(str(req, 'vs')!).addRule(spec as never);
      return null;
    }
    case 'rule.del': {
      const priority = num(req, 'priority');
      if (priority === undefined) throw new Error(`request 'rule.del' needs 'priority'`);
      return { removed: st.vs(str(req, 'vs')!).removeRule(priority) };
    }
    case 'vip.add':
    case 'vip.del': {
      const vs = st.vs(str(req, 'vs')!);
      const addr = str(req, 'addr')!;
      if (req.cmd === 'vip.add') vs.addVip(addr);
      else vs.removeVip(addr);
      return null;
    }
    case 'decap.set': {
      // Shape and values are the validator's (checkDecap), as a config file's `decap`.
      // Every field but the request's own goes to the validator: an unknown key is refused, as in a file.
      const spec: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(req)) if (k !== 'cmd' && k !== 'vs' && v !== undefined && v !== null) spec[k] = v;
      st.vs(str(req, 'vs')!).setDecap(spec as never);
      return null;
    }
    default:
      throw new Error(`unknown request '${req.cmd}' (${REQUESTS.join(', ')})`);
  }
}

/**
 * Sends one request and resolves with the first answer. With `onEvent`, keeps reading until an
 * answer with event 'done' (or an error) arrives, passing each one to onEvent; `signal` ends it:
 * at once (the connection is closed; the answer is `{event: 'aborted'}`), or with `endOnAbort`
 * by half-closing the connection so the session ends with its 'done' answer (within 5 s).
 * With `onData`, a streamed trace's chunks (see the file's comment) go there; a promise it returns
 * pauses the reading until it settles.
 */
export function controlRequest(socketPath: string, req: Request, opts: {
  onEvent?: (r: Response) => void; timeoutMs?: number; signal?: AbortSignal; endOnAbort?: boolean;
  onData?: (chunk: Buffer) => void | Promise<void>;
} = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const c = net.connect(socketPath);
    let buf: Buffer = Buffer.alloc(0);
    let settled = false;
    /** Between a streamed trace's 'started' line and its end-of-capture mark: length-prefixed chunks. */
    let streaming = false;
    let graceTimer: NodeJS.Timeout | null = null;
    const finish = (err: Error | null, r?: Response) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      if (graceTimer) clearTimeout(graceTimer);
      c.destroy();
      if (err) reject(err); else resolve(r!);
    };
    const timer = opts.timeoutMs ? setTimeout(() => finish(new Error(`no answer from ${socketPath} within ${opts.timeoutMs} ms`)), opts.timeoutMs) : null;
    const onAbort = () => {
      if (!opts.endOnAbort) { finish(null, { ok: true, event: 'aborted' }); return; }
      if (c.connecting) { finish(null, { ok: true, event: 'aborted' }); return; }
      c.end();
      graceTimer = setTimeout(() => finish(null, { ok: true, event: 'aborted' }), 5000);
    };
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
    c.on('connect', () => c.write(JSON.stringify(req) + '\n'));
    c.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') finish(new Error(`no stack is listening on ${socketPath} (is 'xdpstack run' running?)`));
      else if (e.code === 'EACCES') finish(new Error(`permission denied on ${socketPath} (run as root)`));
      else finish(e);
    });
    c.on('close', () => finish(new Error(`${socketPath} closed the connection without an answer`)));
    const take = (): void => {
      while (!settled) {
        if (streaming) {
          if (buf.length < 4) return;
          const n = buf.readUInt32BE(0);
          if (n === 0) { streaming = false; buf = buf.subarray(4); continue; }
          if (buf.length < 4 + n) return;
          const chunk = buf.subarray(4, 4 + n);
          buf = buf.subarray(4 + n);
          const p = opts.onData?.(chunk);
          if (p instanceof Promise) {
            c.pause();
            p.then(() => { c.resume(); take(); }, (e: Error) => finish(e));
            return;
          }
          continue;
        }
        const nl = buf.indexOf(10);
        if (nl < 0) return;
        const line = buf.subarray(0, nl).toString('utf8');
        buf = buf.subarray(nl + 1);
        let r: Response;
        try { r = JSON.parse(line) as Response; } catch { finish(new Error(`bad answer from ${socketPath}: ${line.slice(0, 200)}`)); return; }
        if (!opts.onEvent || !r.ok || r.event === 'done') { finish(null, r); return; }
        if (r.event === 'started' && r.stream) streaming = true;
        opts.onEvent(r);
      }
    };
    c.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      if (!c.isPaused()) take();
    });
  });
}

/** Finds the control socket: explicit path, a stack name, or the only socket in CONTROL_DIR. */
export function resolveSocket(opts: { socket?: string; name?: string }): string {
  if (opts.socket) return opts.socket;
  if (opts.name !== undefined) {
    // A stack's name names its socket file in CONTROL_DIR: '../x' or 'a/b' would be another path.
    if (!NAME_RE.test(opts.name)) throw new ValidationError(`stack name ${JSON.stringify(opts.name)} is not valid (${NAME_HINT}); give the socket's path with --socket`);
    return defaultSocketPath(opts.name);
  }
  let socks: string[] = [];
  try { socks = fs.readdirSync(CONTROL_DIR).filter((f) => f.endsWith('.sock')); } catch { /* none */ }
  if (socks.length === 1) return path.join(CONTROL_DIR, socks[0]!);
  if (socks.length === 0) throw new Error(`no running stack found in ${CONTROL_DIR} (start one with 'xdpstack run CONFIG', or give --socket PATH)`);
  throw new Error(`several stacks are running (${socks.map((s) => s.replace(/\.sock$/, '')).join(', ')}): choose one with --name NAME`);
}

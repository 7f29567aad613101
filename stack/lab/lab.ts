/**
 * The test lab: this machine's topology for xdpstack, built from network namespaces.
 *
 *   root ns                switch ns `${prefix}-sw`              peer ns `${prefix}-p${i}`
 *   ${prefix}0  <--veth-->  stk ─┐                                eth0 (kernel stack, tc VLAN BPF)
 *   (the stack's device,         br0 (no STP, fwd delay 0) ─ p${i} <--veth--> eth0
 *    no IPv4, IPv6 off)
 *
 * VLAN peers tag/untag with a tc clsact BPF program on their eth0 (this kernel has no 8021q), and
 * the bridge port toward the stack has `txvlan off` (802.1Q) and `tx-vlan-stag-hw-insert off` (802.1ad),
 * so tags reach the stack's device in-band.
 *
 * IPv6: a peer has it only when given an address (`ipv6: true` takes the lab's default
 * fd00:<vlan>::<2 + rank in its VLAN>/64, the stack side being fd00:<vlan>::1). Peers neither accept
 * nor solicit Router Advertisements, and hold their addresses without DAD (at once, for
 * deterministic timing) unless `dad: true`. The root side has IPv6 off, unless `hostIpv6` gives the
 * host an address of its own on the stack's device (to check that the host's IPv6 traffic passes
 * while the stack is attached): then its link-local address is random, so it never equals the
 * stack's EUI-64 one, and it neither sends nor accepts Router Advertisements or Solicitations.
 *
 * Every peer's switch port p${i} carries the impairment tc program (driver/bpf/impair_tc.bpf.c; this
 * kernel has no netem): random loss and bit corruption per direction, set at `lab up` and changed on
 * a running lab by a map update (`labImpair`, `xdpstack lab impair`), with counters of what it did
 * (`labImpairment`, `xdpstack lab status`). Directions are the peer's: `in` = frames toward the peer
 * (sent by the stack), `out` = frames from the peer.
 *
 * Multi-queue (`queues: n`): the stack's veth and the switch's port toward it (`stk`) get n rx and
 * n tx queues each (with XDP attached, a veth needs rx queues ≥ its peer's tx queues). On veth the
 * stack's rx queue is the tx queue the switch picks on `stk`: by default the kernel spreads flows by
 * their hash; `labSteer` forces a peer's frames onto one queue (or gives it back to the spreading)
 * through a tc program on `stk` egress (driver/bpf/steer_tc.bpf.c), a map update that takes effect
 * at the next frame, so a running flow can be moved. `labSteering` reports the steering and the
 * frames steered per queue; `labQueueFrames` the frames the stack's device received per queue
 * (counted by veth only while an XDP program is attached to it).
 *
 * Control-plane code: `ip`, `tc`, `ethtool`, `sysctl` through child_process, never on a packet path.
 */
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { deviceUser } from '../../driver/afxdp';
import { addrEq, addrToString, Ip6, maskAddr, parseCidr as parseAddrCidr } from '../../protocols/ip/addr';
import * as net from 'node:net';
import * as path from 'node:path';

export interface PeerSpec {
  vlan?: number /* 1..4094; absent/0 = untagged */;
  ipv4?: string /* CIDR '10.1.1.2/24' */;
  /** CIDR 'fd00:7::2/64', or true for the lab's default (see ipv6Default). Absent: IPv6 off. */
  ipv6?: string | true;
  /** Run Duplicate Address Detection (RFC 4862) on the peer's IPv6 address; default off (nodad). */
  dad?: boolean;
  mtu?: number;
  /** Impairment of this peer's path (overrides the lab's `impair`). */
  impair?: ImpairSpec;
}
export interface LabOptions {
  prefix?: string /* default 'xs', ≤ 4 chars */; peers: PeerSpec[]; mtu?: number;
  /** Impairment of every peer's path at start (default none; change it later with labImpair). */
  impair?: ImpairSpec;
  /** Replace the lab even when a running stack uses its device (the stack loses it until it is back). */
  force?: boolean;
  /** An IPv6 address (CIDR) of the host itself on the stack's device; absent: IPv6 off there. */
  hostIpv6?: string;
  /** Receive and transmit queues of the stack's veth and of the switch's port toward it (1..MAX_LAB_QUEUES, default 1). */
  queues?: number;
}
/** A direction of a peer's path: `in` = toward the peer (from the stack), `out` = from the peer. */
export type ImpairDir = 'in' | 'out';
/**
 * Random impairment as probabilities (fractions 0..1, e.g. 0.01 = 1 %): `loss` drops a frame,
 * `corrupt` flips one random bit of its TCP/UDP/ICMP segment. `dir` picks the direction(s)
 * (default both). Omitted probabilities keep their current value (0 for a new lab).
 */
export interface ImpairSpec { loss?: number; corrupt?: number; dir?: ImpairDir | 'both' }
/** One direction of one peer: the configured probabilities and what the program did. */
export interface ImpairState { loss: number; corrupt: number; frames: number; dropped: number; corrupted: number }
export interface PeerImpairment { peer: number; in: ImpairState; out: ImpairState }
export interface LabPeer {
  index: number; ns: string; ifname: string /* 'eth0' inside ns */; mac: string; vlan: number;
  ipv4?: string /* CIDR as given */; ipv6?: string /* CIDR as given, or the default chosen */;
  /** The address (CIDR) the stack side takes to reach this peer: prefix::1 of the peer's prefix (unset if that is the peer's own). */
  stackIpv6?: string;
  /** The peer runs DAD on its IPv6 address (see peerIpv6State). */
  dad?: boolean;
}
export interface Lab {
  prefix: string; stackDevice: string /* `${prefix}0`, in the root namespace */; stackMac: string;
  switchNs: string; peers: LabPeer[];
  /** The host's own IPv6 address on stackDevice (LabOptions.hostIpv6). */
  hostIpv6?: string;
  /** Queues of stackDevice (LabOptions.queues); absent in labs built before it existed = 1. */
  queues?: number;
}

/** Invalid lab options (bad prefix, VLAN id, address, MTU...). */
export class LabConfigError extends Error {
  constructor(message: string) { super(message); this.name = 'LabConfigError'; }
}

/** `labUp` refused: a running stack uses the lab's device. */
export class LabInUseError extends Error {
  constructor(message: string) { super(message); this.name = 'LabInUseError'; }
}

export const DEFAULT_PREFIX = 'xs';
export const MAX_PEERS = 1024;
/** Most queues a lab device gets (the XDP program's XSKMAP holds 64). */
export const MAX_LAB_QUEUES = 64;
/** Name of the switch-side veth end facing the stack's device, and of the bridge. */
export const SWITCH_STACK_PORT = 'stk';
export const SWITCH_BRIDGE = 'br0';
const STATE_ROOT = '/run/xdpstack/lab';
const BPFFS = '/sys/fs/bpf';

/** Where the compiled impairment tc program lives (override with XDPSTACK_IMPAIR_BPF). */
export function impairBpfObject(): string {
  return process.env.XDPSTACK_IMPAIR_BPF ?? path.resolve(__dirname, '..', '..', '..', 'driver', 'build', 'bpf', 'impair_tc.bpf.o');
}

/** Where the compiled queue-steering tc program lives (override with XDPSTACK_STEER_BPF). */
export function steerBpfObject(): string {
  return process.env.XDPSTACK_STEER_BPF ?? path.resolve(__dirname, '..', '..', '..', 'driver', 'build', 'bpf', 'steer_tc.bpf.o');
}

/** Where the compiled VLAN tc program lives (override with XDPSTACK_VLAN_BPF). */
export function vlanBpfObject(): string {
  return process.env.XDPSTACK_VLAN_BPF ?? path.resolve(__dirname, '..', '..', '..', 'driver', 'build', 'bpf', 'vlan_tc.bpf.o');
}

// ---------------------------------------------------------------------------------------------
// Validation

export function validatePrefix(prefix: string): string {
  if (typeof prefix !== 'string' || !/^[a-z][a-z0-9]{0,3}$/.test(prefix)) {
    throw new LabConfigError(`bad lab prefix ${JSON.stringify(prefix)}: 1-4 characters, a lowercase letter then letters/digits`);
  }
  return prefix;
}

function validateVlan(v: unknown, where: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 4094) {
    throw new LabConfigError(`${where}: bad VLAN id ${JSON.stringify(v)} (expected an integer 1..4094, or 0/absent for untagged)`);
  }
  return v;
}

function validateMtu(v: unknown, where: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 68 || v > 9000) {
    throw new LabConfigError(`${where}: bad MTU ${JSON.stringify(v)} (expected an integer 68..9000)`);
  }
  return v;
}

/** Parses 'a.b.c.d/len' or 'x::y/len'; throws LabConfigError with `where` on anything else. */
export function parseCidr(cidr: unknown, family: 4 | 6, where: string): { addr: string; len: number } {
  const bad = (why: string) => new LabConfigError(`${where}: bad IPv${family} CIDR ${JSON.stringify(cidr)} (${why})`);
  if (typeof cidr !== 'string') throw bad(family === 4 ? "expected a string like '10.1.1.2/24'" : "expected a string like 'fd00::2/64'");
  const m = /^([^/\s]+)\/(\d{1,3})$/.exec(cidr);
  if (!m) throw bad('expected address/prefix-length');
  const addr = m[1];
  const len = Number(m[2]);
  if (net.isIP(addr) !== family) throw bad(`not an IPv${family} address`);
  if (len > (family === 4 ? 32 : 128)) throw bad('prefix length out of range');
  return { addr, len };
}

const IMPAIR_KEYS = new Set(['loss', 'corrupt', 'dir']);

function checkProbability(v: unknown, what: string, where: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1) {
    throw new LabConfigError(`${where}: bad ${what} probability ${typeof v === 'number' ? String(v) : JSON.stringify(v)} (expected a fraction 0..1, e.g. 0.01 for 1 %)`);
  }
  return v;
}

/** Validates an impairment spec; throws LabConfigError naming `where` and the bad field. */
export function validateImpair(spec: unknown, where: string): ImpairSpec {
  if (!spec || typeof spec !== 'object' || Array.isArray(spec)) throw new LabConfigError(`${where}: impairment must be an object like { loss: 0.01, corrupt: 0.001 }`);
  for (const k of Object.keys(spec)) {
    if (!IMPAIR_KEYS.has(k)) throw new LabConfigError(`${where}: unknown impairment field '${k}' (expected loss, corrupt, dir)`);
  }
  const o = spec as Record<string, unknown>;
  const out: ImpairSpec = {};
  const loss = checkProbability(o.loss, 'loss', where);
  const corrupt = checkProbability(o.corrupt, 'corrupt', where);
  if (loss !== undefined) out.loss = loss;
  if (corrupt !== undefined) out.corrupt = corrupt;
  if (o.dir !== undefined) {
    if (o.dir !== 'in' && o.dir !== 'out' && o.dir !== 'both') throw new LabConfigError(`${where}: bad impairment direction ${JSON.stringify(o.dir)} (expected 'in', 'out' or 'both')`);
    out.dir = o.dir;
  }
  return out;
}

interface CheckedPeer { vlan: number; ipv4?: string; ipv6?: string; stackIpv6?: string; dad: boolean; mtu: number; impair?: ImpairSpec }

/**
 * The lab's default IPv6 addresses on a VLAN (0 = untagged): the peer of rank `rank` in its VLAN
 * (0, 1, ...) on fd00:<vlan>::<2 + rank>/64 and the stack side on fd00:<vlan>::1/64, the VLAN id
 * written with its decimal digits (VLAN 42 → fd00:42::/64, untagged → fd00::/64), in RFC 5952 form.
 */
export function ipv6Default(vlan: number, rank: number): { peer: string; stack: string } {
  const text = (host: number) => `${addrToString(parseAddrCidr(`fd00:${vlan}::${host.toString(16)}/64`).addr)}/64`;
  return { peer: text(rank + 2), stack: text(1) };
}

/** prefix::1 of an IPv6 CIDR with its length, or undefined when that is the address itself or no such host exists. */
function firstHost6(cidr: string): string | undefined {
  const c = parseAddrCidr(cidr);
  if (typeof c.addr === 'number' || c.prefixLen > 127) return undefined;
  const base = maskAddr(c.addr, c.prefixLen) as Ip6;
  const one = new Ip6(base.w0, base.w1, base.w2, (base.w3 | 1) >>> 0);
  if (addrEq(one, c.addr)) return undefined;
  return `${addrToString(one)}/${c.prefixLen}`;
}

function validateQueues(v: unknown, where: string): number {
  if (v === undefined) return 1;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_LAB_QUEUES) {
    throw new LabConfigError(`${where}: bad queue count ${JSON.stringify(v)} (expected an integer 1..${MAX_LAB_QUEUES})`);
  }
  return v;
}

function checkOptions(opts: LabOptions): { prefix: string; peers: CheckedPeer[]; mtu: number; hostIpv6?: string; queues: number } {
  if (!opts || typeof opts !== 'object') throw new LabConfigError('lab options must be an object with a peers array');
  const prefix = validatePrefix(opts.prefix ?? DEFAULT_PREFIX);
  if (!Array.isArray(opts.peers) || opts.peers.length === 0) throw new LabConfigError('lab needs at least one peer (options.peers)');
  if (opts.peers.length > MAX_PEERS) throw new LabConfigError(`too many peers: ${opts.peers.length} (at most ${MAX_PEERS})`);
  const mtu = validateMtu(opts.mtu, 'lab') ?? 1500;
  const queues = validateQueues(opts.queues, 'lab');
  const labImpair = opts.impair === undefined ? undefined : validateImpair(opts.impair, 'lab');
  if (opts.hostIpv6 !== undefined) parseCidr(opts.hostIpv6, 6, 'hostIpv6');
  const rank = new Map<number, number>();
  const peers = opts.peers.map((p, i): CheckedPeer => {
    const where = `peer ${i}`;
    if (!p || typeof p !== 'object') throw new LabConfigError(`${where}: expected an object`);
    const vlan = validateVlan(p.vlan, where);
    if (p.ipv4 !== undefined) parseCidr(p.ipv4, 4, where);
    let ipv6: string | undefined;
    let stackIpv6: string | undefined;
    if (p.ipv6 === true) {
      const r = rank.get(vlan) ?? 0;
      rank.set(vlan, r + 1);
      ({ peer: ipv6, stack: stackIpv6 } = ipv6Default(vlan, r));
    } else if (p.ipv6 !== undefined) {
      parseCidr(p.ipv6, 6, where);
      ipv6 = p.ipv6;
      stackIpv6 = firstHost6(p.ipv6);
    }
    if (p.dad !== undefined && typeof p.dad !== 'boolean') throw new LabConfigError(`${where}: dad must be true or false`);
    if (p.dad && !ipv6) throw new LabConfigError(`${where}: dad needs an IPv6 address (ipv6)`);
    const pm = validateMtu(p.mtu, where) ?? mtu;
    const impair = p.impair === undefined ? labImpair : validateImpair(p.impair, where);
    return { vlan, ipv4: p.ipv4, ipv6, stackIpv6, dad: p.dad === true, mtu: pm, impair };
  });
  return { prefix, peers, mtu, hostIpv6: opts.hostIpv6, queues };
}

function requireRoot(): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error('the xdpstack lab needs root (network namespaces, veth, tc BPF): run as root');
  }
}

// ---------------------------------------------------------------------------------------------
// Names and addresses

export function switchNsName(prefix: string): string { return `${prefix}-sw`; }
export function peerNsName(prefix: string, i: number): string { return `${prefix}-p${i}`; }

function prefixTag(prefix: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < prefix.length; i++) { h ^= prefix.charCodeAt(i); h = Math.imul(h, 0x01000193) >>> 0; }
  return (h ^ (h >>> 16)) & 0xffff;
}
function hex2(n: number): string { return (n & 0xff).toString(16).padStart(2, '0'); }
function mac(prefix: string, kind: number, index: number): string {
  const t = prefixTag(prefix);
  return ['02', hex2(t >> 8), hex2(t), hex2(kind), hex2(index >> 8), hex2(index)].join(':');
}
/** Deterministic, locally administered MACs: 02:TT:TT:00:00:01 for the stack, 02:TT:TT:01:ii:ii for peer ii. */
export function stackMacFor(prefix: string): string { return mac(prefix, 0, 1); }
export function peerMacFor(prefix: string, i: number): string { return mac(prefix, 1, i); }

// ---------------------------------------------------------------------------------------------
// Command helpers

function run(cmd: string, args: string[], input?: string): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', input, timeout: 60_000, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string; message: string; code?: string };
    if (err.code === 'ENOENT') throw new Error(`lab: '${cmd}' not found (run scripts/setup.sh)`);
    const detail = (err.stderr || err.stdout || err.message || '').toString().trim().split('\n').slice(-6).join('\n');
    const shown = input ? `${cmd} ${args.join(' ')} <<< ${JSON.stringify(input.length > 400 ? input.slice(0, 400) + '...' : input)}` : `${cmd} ${args.join(' ')}`;
    throw new Error(`lab: '${shown}' failed: ${detail}`);
  }
}

function tryRun(cmd: string, args: string[]): string | null {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch {
    return null;
  }
}

function shQuote(s: string): string { return `'${s.replace(/'/g, `'\\''`)}'`; }

function listNamespaces(): string[] {
  const out = tryRun('ip', ['netns', 'list']) ?? '';
  return out.split('\n').map((l) => l.trim().split(/\s+/)[0]).filter((n) => n);
}

function labNamespaces(prefix: string): string[] {
  const re = new RegExp(`^${prefix}-(sw|p\\d+)$`);
  return listNamespaces().filter((n) => re.test(n));
}

function linkExists(name: string, ns?: string): boolean {
  const args = ns ? ['-n', ns, 'link', 'show', 'dev', name] : ['link', 'show', 'dev', name];
  return tryRun('ip', args) !== null;
}

function ensureBpffs(): void {
  const mounts = fs.readFileSync('/proc/mounts', 'utf8');
  if (mounts.split('\n').some((l) => { const f = l.split(' '); return f[1] === BPFFS && f[2] === 'bpf'; })) return;
  fs.mkdirSync(BPFFS, { recursive: true });
  run('mount', ['-t', 'bpf', 'bpf', BPFFS]);
}

function stateDir(prefix: string): string { return path.join(STATE_ROOT, prefix); }

const LAB_CFG_MAGIC = Buffer.from([0xa6, 0xf1, 0xde, 0xc0]);

/**
 * One copy of the VLAN tc object per VLAN id, with the read-only `lab_cfg.vid` (the 4 bytes
 * after LAB_CFG_MAGIC in .rodata) set to `vid`. Also for tests that move a peer's egress onto
 * another VLAN (`tc filter del/add dev eth0 egress pref 1 bpf da obj FILE sec classifier/egress`).
 */
export function vlanObjectFor(prefix: string, vid: number): string {
  const src = vlanBpfObject();
  let obj: Buffer;
  try {
    obj = fs.readFileSync(src);
  } catch {
    throw new Error(`lab: VLAN tc BPF object ${src} is missing: build it with 'make -C driver' (or scripts/setup.sh)`);
  }
  const at = obj.indexOf(LAB_CFG_MAGIC);
  if (at < 0 || obj.indexOf(LAB_CFG_MAGIC, at + 1) >= 0) {
    throw new Error(`lab: ${src} does not hold exactly one lab_cfg marker; rebuild it with 'make -C driver'`);
  }
  const out = Buffer.from(obj);
  out.writeUInt32LE(vid, at + 4);
  const file = path.join(stateDir(prefix), `vlan${vid}.bpf.o`);
  fs.writeFileSync(file, out);
  return file;
}

// ---------------------------------------------------------------------------------------------
// Public API

/** Builds the lab (replacing an existing lab of the same prefix) and returns its description. */
export function labUp(opts: LabOptions): Lab {
  const { prefix, peers, mtu, hostIpv6, queues } = checkOptions(opts);
  requireRoot();
  // A running stack on the lab's device would be left deaf by the replacement: say so first.
  const user = deviceUser(`${prefix}0`);
  if (user !== null && !opts.force) {
    throw new LabInUseError(`lab ${prefix}: device ${prefix}0 is in use by a running stack (pid ${user}${user === process.pid ? ', this process' : ''}); ` +
      `stop it first, or replace the lab anyway with --force (the stack loses the device until the new one is up)`);
  }
  if (hostIpv6) checkHostPrefix(hostIpv6, `${prefix}0`);
  labDown(prefix);
  try {
    return build(prefix, peers, mtu, hostIpv6, queues);
  } catch (e) {
    try { labDown(prefix); } catch { /* keep the first error */ }
    throw e;
  }
}

/** The host's lab prefix must not be one it already routes elsewhere (its replies would leave there). */
function checkHostPrefix(cidr: string, dev: string): void {
  const c = parseAddrCidr(cidr);
  const net = `${addrToString(maskAddr(c.addr, c.prefixLen))}/${c.prefixLen}`;
  let routes: Array<{ dev?: string }> = [];
  try { routes = JSON.parse(tryRun('ip', ['-j', '-6', 'route', 'show', 'exact', net]) || '[]') as Array<{ dev?: string }>; } catch { /* no answer: nothing known */ }
  const other = routes.find((r) => r.dev && r.dev !== dev);
  if (other) throw new LabConfigError(`hostIpv6 ${cidr}: this host already routes ${net} via ${other.dev}; choose another prefix`);
}

function build(prefix: string, peers: CheckedPeer[], mtu: number, hostIpv6: string | undefined, queues: number): Lab {
  const sw = switchNsName(prefix);
  const dev = `${prefix}0`;
  const stackMac = stackMacFor(prefix);
  fs.mkdirSync(stateDir(prefix), { recursive: true });
  const anyTagged = peers.some((p) => p.vlan !== 0);
  if (anyTagged) ensureBpffs();

  // 1. namespaces and the stack's veth pair (root side down until IPv6 is off), with as many rx
  // as tx queues on each end (XDP on a veth needs rx queues ≥ the peer's tx queues).
  const nq = queues > 1 ? ` numtxqueues ${queues} numrxqueues ${queues}` : '';
  const rootBatch = [`netns add ${sw}`, ...peers.map((_, i) => `netns add ${peerNsName(prefix, i)}`),
    `link add ${dev} address ${stackMac} mtu ${mtu}${nq} type veth peer name ${SWITCH_STACK_PORT} mtu ${mtu}${nq} netns ${sw}`];
  run('ip', ['-batch', '-'], rootBatch.join('\n') + '\n');
  const conf = (k: string, v: string) => fs.writeFileSync(`/proc/sys/net/ipv6/conf/${dev}/${k}`, v);
  conf('disable_ipv6', '1');
  if (hostIpv6) {
    // The host's own IPv6 on the stack's device: a random link-local (never the stack's EUI-64
    // one), no router discovery either way, no forwarding (a host never sends RAs), no DAD delay.
    conf('addr_gen_mode', '3');
    for (const k of ['accept_ra', 'router_solicitations', 'forwarding', 'accept_dad']) conf(k, '0');
    conf('disable_ipv6', '0');
  }
  run('ip', ['link', 'set', 'dev', dev, 'up']);
  if (hostIpv6) run('ip', ['-6', 'addr', 'add', hostIpv6, 'dev', dev, 'nodad']);

  // 2. switch namespace: bridge, stack port (tags in-band toward the stack), one port per peer.
  run('ip', ['netns', 'exec', sw, 'sh', '-ec', [
    'sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1',
    `sysctl -q -w net.ipv6.conf.${SWITCH_STACK_PORT}.disable_ipv6=1`,
    `ethtool -K ${SWITCH_STACK_PORT} txvlan off tx-vlan-stag-hw-insert off`,
    // A switch forwards frames: keep the host's IP firewall off bridged traffic (br_netfilter).
    'for f in /proc/sys/net/bridge/bridge-nf-call-*; do [ -e "$f" ] && echo 0 > "$f"; done; true',
  ].join('\n')]);
  const swBatch = [
    `link set dev lo up`,
    `link add ${SWITCH_BRIDGE} type bridge stp_state 0 forward_delay 0 ageing_time 30000 mcast_snooping 0`,
    `link set dev ${SWITCH_STACK_PORT} master ${SWITCH_BRIDGE} up`,
  ];
  peers.forEach((p, i) => {
    swBatch.push(`link add p${i} mtu ${p.mtu} type veth peer name eth0 address ${peerMacFor(prefix, i)} mtu ${p.mtu} netns ${peerNsName(prefix, i)}`);
    swBatch.push(`link set dev p${i} master ${SWITCH_BRIDGE} up`);
  });
  swBatch.push(`link set dev ${SWITCH_BRIDGE} up`);
  run('ip', ['-n', sw, '-batch', '-'], swBatch.join('\n') + '\n');
  attachImpairment(prefix, peers);
  if (queues > 1) attachSteering(prefix);

  // 3. peers: kernel stack on eth0, full checksums, VLAN tagging by tc BPF.
  const objects = new Map<number, string>();
  const labPeers: LabPeer[] = peers.map((p, i) => {
    const ns = peerNsName(prefix, i);
    const v6off = p.ipv6 ? 0 : 1;
    const lines = [
      `sysctl -q -w net.ipv6.conf.all.disable_ipv6=${v6off} net.ipv6.conf.default.disable_ipv6=${v6off} net.ipv6.conf.eth0.disable_ipv6=${v6off}`,
      `sysctl -q -w net.core.txrehash=0 2>/dev/null || true`,
      'ethtool -K eth0 tx off',
      'ip link set dev lo up',
    ];
    if (p.ipv6) {
      // Statically configured peers: no router discovery (RFC 4861 6.3.7 / 6.3.4 off).
      for (const d of ['all', 'default', 'eth0']) lines.push(`sysctl -q -w net.ipv6.conf.${d}.accept_ra=0 net.ipv6.conf.${d}.router_solicitations=0`);
      lines.push(`sysctl -q -w net.ipv6.conf.eth0.accept_dad=${p.dad ? 1 : 0}`);
    }
    if (p.ipv4) lines.push(`ip addr add ${p.ipv4} dev eth0`);
    if (p.vlan !== 0 || anyTagged) {
      let obj = objects.get(p.vlan);
      if (!obj) { obj = vlanObjectFor(prefix, p.vlan); objects.set(p.vlan, obj); }
      lines.push('tc qdisc add dev eth0 clsact',
        `tc filter add dev eth0 egress pref 1 bpf da obj ${shQuote(obj)} sec classifier/egress`,
        `tc filter add dev eth0 ingress pref 1 bpf da obj ${shQuote(obj)} sec classifier/ingress`);
    }
    lines.push('ip link set dev eth0 up');
    if (p.ipv6) lines.push(`ip -6 addr add ${p.ipv6} dev eth0${p.dad ? '' : ' nodad'}`);
    run('ip', ['netns', 'exec', ns, 'sh', '-ec', lines.join('\n')]);
    const lp: LabPeer = { index: i, ns, ifname: 'eth0', mac: peerMacFor(prefix, i), vlan: p.vlan };
    if (p.ipv4) lp.ipv4 = p.ipv4;
    if (p.ipv6) lp.ipv6 = p.ipv6;
    if (p.stackIpv6) lp.stackIpv6 = p.stackIpv6;
    if (p.dad) lp.dad = true;
    return lp;
  });

  const lab: Lab = { prefix, stackDevice: dev, stackMac, switchNs: sw, peers: labPeers, queues };
  if (hostIpv6) lab.hostIpv6 = hostIpv6;
  fs.writeFileSync(path.join(stateDir(prefix), 'lab.json'), JSON.stringify(lab, null, 2) + '\n');
  return lab;
}

// ---------------------------------------------------------------------------------------------
// Impairment (tc BPF on the switch ports; maps found by id and written with bpftool)

interface ImpairMaps { cfg: number; cnt: number }
interface ImpairIds { peer: number; in: ImpairMaps; out: ImpairMaps }

const TWO32 = 2 ** 32;
const DIRS: ImpairDir[] = ['in', 'out'];
/** The switch port's tc hook of each peer direction: frames toward the peer leave p<i> (egress). */
const HOOK: Record<ImpairDir, 'egress' | 'ingress'> = { in: 'egress', out: 'ingress' };

function impairFile(prefix: string): string { return path.join(stateDir(prefix), 'impair.json'); }

/** Runs bpftool commands in one process (`batch file -`); returns each command's JSON output. */
function bpftoolBatch(cmds: string[]): unknown[] {
  if (cmds.length === 0) return [];
  let out: string;
  try {
    out = execFileSync('bpftool', ['-j', 'batch', 'file', '-'], { input: cmds.join('\n') + '\n', encoding: 'utf8', timeout: 60_000, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  } catch (e) {
    const err = e as { stdout?: string; code?: string; message: string };
    if (err.code === 'ENOENT') throw new Error(`lab: 'bpftool' not found (run scripts/setup.sh)`);
    out = err.stdout ?? '';
    if (!out.trim()) throw new Error(`lab: bpftool failed: ${err.message}`);
  }
  const res = JSON.parse(out) as Array<{ command: string[]; output: unknown }>;
  return res.map((r) => {
    const o = r.output as { error?: string } | null;
    if (o && typeof o === 'object' && typeof o.error === 'string') throw new Error(`lab: 'bpftool ${r.command.join(' ')}' failed: ${o.error}`);
    return r.output;
  });
}

function thresholdHex(p: number): string {
  const t = BigInt(Math.round(p * TWO32));
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(t);
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ');
}

/** A threshold back as a probability, rounded to 1e-8 (the thresholds have 2^-32 steps). */
function probabilityOf(t: bigint): number { return Math.round((Number(t) / TWO32) * 1e8) / 1e8; }

function valueBytes(out: unknown): Buffer {
  const v = (out as { value?: string[] } | null)?.value;
  if (!Array.isArray(v)) throw new Error(`lab: unexpected bpftool output ${JSON.stringify(out).slice(0, 200)}`);
  return Buffer.from(v.map((x) => parseInt(x, 16)));
}

/** Attaches the impairment program to both directions of every peer's switch port and records its maps. */
function attachImpairment(prefix: string, peers: CheckedPeer[]): void {
  const sw = switchNsName(prefix);
  const obj = impairBpfObject();
  if (!fs.existsSync(obj)) throw new Error(`lab: impairment tc BPF object ${obj} is missing: build it with 'make -C driver' (or scripts/setup.sh)`);
  const tcBatch: string[] = [];
  peers.forEach((_, i) => {
    tcBatch.push(`qdisc add dev p${i} clsact`);
    for (const d of DIRS) tcBatch.push(`filter add dev p${i} ${HOOK[d]} pref 1 bpf da obj ${obj} sec classifier/${HOOK[d]}`);
  });
  if (/\s/.test(obj)) throw new Error(`lab: the impairment object path must not contain spaces: ${obj}`);
  run('ip', ['netns', 'exec', sw, 'tc', '-batch', '-'], tcBatch.join('\n') + '\n');
  // The program ids, then their maps (each attached program has its own pair of maps).
  const shown = run('ip', ['netns', 'exec', sw, 'sh', '-ec',
    `i=0; while [ $i -lt ${peers.length} ]; do tc -j filter show dev p$i egress; echo; tc -j filter show dev p$i ingress; echo; i=$((i+1)); done`]);
  const progIds = shown.split('\n').filter((l) => l.trim()).map((l, k) => {
    const f = (JSON.parse(l) as Array<{ options?: { prog?: { id?: number; name?: string } } }>).find((x) => x.options?.prog?.id);
    if (!f) throw new Error(`lab: no impairment program found on p${k >> 1} (${l.slice(0, 200)})`);
    return f.options!.prog!.id!;
  });
  if (progIds.length !== peers.length * 2) throw new Error(`lab: expected ${peers.length * 2} impairment programs, found ${progIds.length}`);
  const progs = bpftoolBatch(progIds.map((id) => `prog show id ${id}`)) as Array<{ map_ids?: number[] }>;
  const names = new Map<number, string>();
  for (const m of bpftoolBatch(['map show'])[0] as Array<{ id: number; name: string }>) names.set(m.id, m.name);
  const mapsOf = (k: number): ImpairMaps => {
    const ids = progs[k]?.map_ids ?? [];
    const cfg = ids.find((id) => names.get(id) === 'impair_cfg');
    const cnt = ids.find((id) => names.get(id) === 'impair_cnt');
    if (cfg === undefined || cnt === undefined) throw new Error(`lab: the impairment program ${progIds[k]} has no impair_cfg/impair_cnt maps`);
    return { cfg, cnt };
  };
  const ids: ImpairIds[] = peers.map((_, i) => ({ peer: i, in: mapsOf(2 * i), out: mapsOf(2 * i + 1) }));
  fs.writeFileSync(impairFile(prefix), JSON.stringify(ids) + '\n');
  const cmds: string[] = [];
  peers.forEach((p, i) => { if (p.impair) cmds.push(...impairCommands(ids[i]!, p.impair, null)); });
  bpftoolBatch(cmds);
}

/** bpftool commands setting `spec` on a peer; `current` fills omitted probabilities (null = 0). */
function impairCommands(ids: ImpairIds, spec: ImpairSpec, current: PeerImpairment | null): string[] {
  const dirs: ImpairDir[] = spec.dir === 'in' ? ['in'] : spec.dir === 'out' ? ['out'] : DIRS;
  return dirs.map((d) => {
    const loss = spec.loss ?? current?.[d].loss ?? 0;
    const corrupt = spec.corrupt ?? current?.[d].corrupt ?? 0;
    return `map update id ${ids[d].cfg} key 0 0 0 0 value hex ${thresholdHex(loss)} ${thresholdHex(corrupt)}`;
  });
}

function loadImpairIds(prefix: string): ImpairIds[] {
  if (!labStatus(prefix)) throw new LabConfigError(`no lab with prefix ${prefix}`);
  try {
    return JSON.parse(fs.readFileSync(impairFile(prefix), 'utf8')) as ImpairIds[];
  } catch {
    throw new Error(`lab ${prefix} has no impairment programs (built by an older xdpstack): run 'xdpstack lab up' again`);
  }
}

function readImpair(ids: ImpairIds[]): PeerImpairment[] {
  const cmds: string[] = [];
  for (const p of ids) for (const d of DIRS) cmds.push(`map lookup id ${p[d].cfg} key 0 0 0 0`, `map lookup id ${p[d].cnt} key 0 0 0 0`);
  const outs = bpftoolBatch(cmds);
  let k = 0;
  return ids.map((p) => {
    const r = { peer: p.peer } as PeerImpairment;
    for (const d of DIRS) {
      const cfg = valueBytes(outs[k++]);
      const cnt = valueBytes(outs[k++]);
      r[d] = {
        loss: probabilityOf(cfg.readBigUInt64LE(0)), corrupt: probabilityOf(cfg.readBigUInt64LE(8)),
        frames: Number(cnt.readBigUInt64LE(0)), dropped: Number(cnt.readBigUInt64LE(8)), corrupted: Number(cnt.readBigUInt64LE(16)),
      };
    }
    return r;
  });
}

/** The impairment of every peer of a running lab: probabilities and counters per direction. */
export function labImpairment(prefix: string = DEFAULT_PREFIX): PeerImpairment[] {
  validatePrefix(prefix);
  requireRoot();
  return readImpair(loadImpairIds(prefix));
}

export interface ImpairChange extends ImpairSpec {
  /** Peer index; default every peer. */
  peer?: number;
  /** Zero the counters of the directions changed. */
  resetCounters?: boolean;
}

/**
 * Changes the impairment of a running lab (a map update: links and connections stay up). Omitted
 * probabilities keep their values. Returns the new state of the peers changed.
 */
export function labImpair(prefix: string, change: ImpairChange): PeerImpairment[] {
  validatePrefix(prefix);
  if (!change || typeof change !== 'object') throw new LabConfigError('impairment change must be an object like { loss: 0.01 }');
  const { peer, resetCounters, ...rest } = change;
  const spec = validateImpair(rest, 'impair');
  if (resetCounters !== undefined && typeof resetCounters !== 'boolean') throw new LabConfigError(`impair: resetCounters must be a boolean`);
  if (spec.loss === undefined && spec.corrupt === undefined && !resetCounters) throw new LabConfigError('impair: nothing to change (give loss, corrupt or resetCounters)');
  requireRoot();
  const ids = loadImpairIds(prefix);
  if (peer !== undefined && (typeof peer !== 'number' || !Number.isInteger(peer) || peer < 0 || peer >= ids.length)) {
    throw new LabConfigError(`impair: bad peer ${JSON.stringify(peer)} (lab ${prefix} has peers 0..${ids.length - 1})`);
  }
  const chosen = peer === undefined ? ids : [ids[peer]!];
  const current = readImpair(chosen);
  const cmds: string[] = [];
  const dirs: ImpairDir[] = spec.dir === 'in' ? ['in'] : spec.dir === 'out' ? ['out'] : DIRS;
  chosen.forEach((p, k) => {
    if (spec.loss !== undefined || spec.corrupt !== undefined) cmds.push(...impairCommands(p, spec, current[k]!));
    if (resetCounters) for (const d of dirs) cmds.push(`map update id ${p[d].cnt} key 0 0 0 0 value hex ${Array(24).fill('00').join(' ')}`);
  });
  bpftoolBatch(cmds);
  return readImpair(chosen);
}

// ---------------------------------------------------------------------------------------------
// Queue steering (tc BPF on the switch's port toward the stack; map written with bpftool)

interface SteerState { map: number; cnt: number; steered: Array<number | null> }

function steerFile(prefix: string): string { return path.join(stateDir(prefix), 'steer.json'); }

/** Attaches the steering program to `stk` egress and records its maps (no peer steered yet). */
function attachSteering(prefix: string): void {
  const sw = switchNsName(prefix);
  const obj = steerBpfObject();
  if (!fs.existsSync(obj)) throw new Error(`lab: queue-steering tc BPF object ${obj} is missing: build it with 'make -C driver' (or scripts/setup.sh)`);
  run('ip', ['netns', 'exec', sw, 'sh', '-ec', [
    `tc qdisc add dev ${SWITCH_STACK_PORT} clsact`,
    `tc filter add dev ${SWITCH_STACK_PORT} egress pref 1 bpf da obj ${shQuote(obj)} sec classifier/egress`,
  ].join('\n')]);
  const shown = JSON.parse(run('ip', ['netns', 'exec', sw, 'tc', '-j', 'filter', 'show', 'dev', SWITCH_STACK_PORT, 'egress'])) as
    Array<{ options?: { prog?: { id?: number } } }>;
  const id = shown.find((f) => f.options?.prog?.id)?.options?.prog?.id;
  if (!id) throw new Error(`lab: the queue-steering program is not on ${SWITCH_STACK_PORT} egress`);
  const [prog, maps] = bpftoolBatch([`prog show id ${id}`, 'map show']) as [{ map_ids?: number[] }, Array<{ id: number; name: string }>];
  const names = new Map(maps.map((m) => [m.id, m.name]));
  const map = (prog.map_ids ?? []).find((m) => names.get(m) === 'steer_map');
  const cnt = (prog.map_ids ?? []).find((m) => names.get(m) === 'steer_cnt');
  if (map === undefined || cnt === undefined) throw new Error(`lab: the queue-steering program ${id} has no steer_map/steer_cnt maps`);
  const st: SteerState = { map, cnt, steered: [] };
  fs.writeFileSync(steerFile(prefix), JSON.stringify(st) + '\n');
}

function loadSteer(prefix: string): { lab: Lab; st: SteerState } {
  const lab = labStatus(prefix);
  if (!lab) throw new LabConfigError(`no lab with prefix ${prefix}`);
  const queues = lab.queues ?? 1;
  if (queues < 2) throw new LabConfigError(`lab ${prefix} has one queue: build it with queues ≥ 2 to steer peers (labUp({ ..., queues: 2 }))`);
  let st: SteerState;
  try {
    st = JSON.parse(fs.readFileSync(steerFile(prefix), 'utf8')) as SteerState;
  } catch {
    throw new Error(`lab ${prefix} has no queue-steering program (built by an older xdpstack): run 'xdpstack lab up' again`);
  }
  return { lab, st };
}

/** bpftool's hex key of a MAC in steer_map (6 bytes and 2 bytes of padding). */
function steerKey(mac: string): string {
  return `${mac.split(':').join(' ')} 00 00`;
}

/**
 * Forces the frames of peer `peer` toward the stack onto the stack's receive queue `queue` (a map
 * update: the next frame goes there, a running flow included), or with `null` gives the peer back
 * to the kernel's spreading (flow hash). Returns the peer's steering before the change.
 */
export function labSteer(prefix: string, peer: number, queue: number | null): number | null {
  validatePrefix(prefix);
  requireRoot();
  const { lab, st } = loadSteer(prefix);
  const queues = lab.queues ?? 1;
  if (typeof peer !== 'number' || !Number.isInteger(peer) || peer < 0 || peer >= lab.peers.length) {
    throw new LabConfigError(`steer: bad peer ${JSON.stringify(peer)} (lab ${prefix} has peers 0..${lab.peers.length - 1})`);
  }
  if (queue !== null && (typeof queue !== 'number' || !Number.isInteger(queue) || queue < 0 || queue >= queues)) {
    throw new LabConfigError(`steer: bad queue ${JSON.stringify(queue)} (lab ${prefix} has queues 0..${queues - 1}; null = kernel spreading)`);
  }
  const before = st.steered[peer] ?? null;
  const key = steerKey(lab.peers[peer]!.mac);
  if (queue !== null) {
    const v = Buffer.alloc(4);
    v.writeUInt32LE(queue);
    bpftoolBatch([`map update id ${st.map} key hex ${key} value hex ${[...v].map((b) => b.toString(16).padStart(2, '0')).join(' ')}`]);
  } else if (before !== null) {
    bpftoolBatch([`map delete id ${st.map} key hex ${key}`]);
  }
  st.steered[peer] = queue;
  fs.writeFileSync(steerFile(prefix), JSON.stringify(st) + '\n');
  return before;
}

export interface LabSteering {
  queues: number;
  /** Per peer: the queue it is steered to, or null (kernel spreading). */
  steered: Array<number | null>;
  /** Frames the steering program forced onto each queue since the lab was built. */
  steeredFrames: number[];
}

/** The steering of a multi-queue lab and the frames steered per queue. */
export function labSteering(prefix: string): LabSteering {
  validatePrefix(prefix);
  requireRoot();
  const { lab, st } = loadSteer(prefix);
  const queues = lab.queues ?? 1;
  const outs = bpftoolBatch(Array.from({ length: queues }, (_, q) => `map lookup id ${st.cnt} key ${q} 0 0 0`));
  const steeredFrames = outs.map((o) => {
    // Per-CPU array: one value per CPU, summed.
    const vals = (o as { values?: Array<{ value: string[] }> } | null)?.values;
    if (!Array.isArray(vals)) throw new Error(`lab: unexpected bpftool output ${JSON.stringify(o).slice(0, 200)}`);
    return vals.reduce((sum, v) => sum + Number(Buffer.from(v.value.map((x) => parseInt(x, 16))).readBigUInt64LE(0)), 0);
  });
  return { queues, steered: lab.peers.map((_, i) => st.steered[i] ?? null), steeredFrames };
}

/**
 * Frames the stack's device received per rx queue (veth's rx_queue_<n>_xdp_packets: counted only
 * while an XDP program is attached to the device, as the stack's is).
 */
export function labQueueFrames(prefix: string): number[] {
  validatePrefix(prefix);
  const lab = labStatus(prefix);
  if (!lab) throw new LabConfigError(`no lab with prefix ${prefix}`);
  const out = run('ethtool', ['-S', lab.stackDevice]);
  const counts: number[] = Array.from({ length: lab.queues ?? 1 }, () => 0);
  for (const m of out.matchAll(/^\s*rx_queue_(\d+)_xdp_packets:\s*(\d+)/gm)) {
    const q = Number(m[1]);
    if (q < counts.length) counts[q] = Number(m[2]);
  }
  return counts;
}

/**
 * Removes the lab of that prefix: processes left inside its namespaces, the namespaces, the
 * stack's device, and the lab's state files. Quiet when there is no such lab.
 */
export function labDown(prefix: string = DEFAULT_PREFIX): void {
  validatePrefix(prefix);
  requireRoot();
  const dev = `${prefix}0`;
  const nss = labNamespaces(prefix);
  for (const ns of nss) {
    const pids = (tryRun('ip', ['netns', 'pids', ns]) ?? '').split('\n').map((s) => Number(s.trim())).filter((n) => n > 0);
    for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ } }
  }
  if (linkExists(dev)) run('ip', ['link', 'del', 'dev', dev]);
  if (nss.length) {
    // -force: keep going if one namespace vanished meanwhile.
    execBatchForce(nss.map((n) => `netns del ${n}`));
  }
  const left = labNamespaces(prefix);
  if (left.length) throw new Error(`lab: could not remove namespaces ${left.join(', ')}`);
  if (linkExists(dev)) throw new Error(`lab: could not remove ${dev}`);
  fs.rmSync(stateDir(prefix), { recursive: true, force: true });
}

function execBatchForce(lines: string[]): void {
  try {
    execFileSync('ip', ['-force', '-batch', '-'], { input: lines.join('\n') + '\n', stdio: ['pipe', 'pipe', 'pipe'], timeout: 60_000 });
  } catch { /* checked by the caller */ }
}

/** The running lab of that prefix, or null when there is none (or only a broken remainder). */
export function labStatus(prefix: string = DEFAULT_PREFIX): Lab | null {
  validatePrefix(prefix);
  let lab: Lab;
  try {
    lab = JSON.parse(fs.readFileSync(path.join(stateDir(prefix), 'lab.json'), 'utf8')) as Lab;
  } catch {
    return null;
  }
  const nss = new Set(listNamespaces());
  if (!nss.has(lab.switchNs) || !linkExists(lab.stackDevice)) return null;
  if (!lab.peers.every((p) => nss.has(p.ns))) return null;
  return lab;
}

// ---------------------------------------------------------------------------------------------
// IPv6 helpers for tests (asynchronous: a stack running in this process keeps being served)

/** State of a peer's IPv6 address: usable, still in DAD, found duplicate by DAD, or not there. */
export type PeerIpv6State = 'ready' | 'tentative' | 'dadfailed' | 'absent';

/** The state of peer `i`'s IPv6 address (LabPeer.ipv6) as its kernel reports it. Never throws. */
export function peerIpv6State(lab: Lab, i: number): Promise<PeerIpv6State> {
  const p = lab.peers[i];
  if (!p?.ipv6) return Promise.resolve('absent');
  const want = parseAddrCidr(p.ipv6).addr;
  return new Promise((resolve) => {
    execFile('ip', ['-n', p.ns, '-j', '-6', 'addr', 'show', 'dev', p.ifname], { encoding: 'utf8', timeout: 10_000 }, (err, out) => {
      if (err) { resolve('absent'); return; }
      try {
        const ifs = JSON.parse(out) as Array<{ addr_info?: Array<{ local?: string; tentative?: boolean; dadfailed?: boolean }> }>;
        for (const a of ifs[0]?.addr_info ?? []) {
          if (!a.local || !addrEq(parseAddrCidr(`${a.local}/128`).addr, want)) continue;
          resolve(a.dadfailed ? 'dadfailed' : a.tentative ? 'tentative' : 'ready');
          return;
        }
      } catch { /* not JSON: treated as absent */ }
      resolve('absent');
    });
  });
}

/** Waits (at most `timeoutMs`) until peer `i`'s IPv6 address leaves DAD; returns its state then. */
export async function waitPeerIpv6(lab: Lab, i: number, timeoutMs = 5000): Promise<PeerIpv6State> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const st = await peerIpv6State(lab, i);
    if (st !== 'tentative' || Date.now() >= until) return st;
    await new Promise((r) => setTimeout(r, 100));
  }
}

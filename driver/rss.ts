/**
 * The RSS configuration of a device, read through ethtool in the control plane (main thread,
 * never on a packet path): the hash key, the indirection table and the hash function
 * (`ethtool -x DEV`), and which fields TCP is hashed on (`ethtool -n DEV rx-flow-hash tcp4|tcp6`).
 *
 * `ethtool -x` prints (ethtool common.c print_indir_table / print_rss_hkey, netlink/rss.c):
 *   RX flow hash indirection table for eth0 with 8 RX ring(s):
 *       0:      0     1     2     3     4     5     6     7        ("%5u: " then " %5u" per entry)
 *   RSS hash key:
 *   6d:5a:...:01:fa                                               (or "Operation not supported")
 *   RSS hash function:
 *       toeplitz: on                                              (one line per function the kernel
 *       xor: off                                                   names; or "Operation not supported")
 *   RSS input transformation:                                     (newer ethtool)
 *       symmetric-xor: off
 * A device without RSS makes ethtool fail ("Cannot get RX ring count: Operation not supported",
 * as veth does) or print "Operation not supported" for the table or key (virtio_net without RSS).
 * Only a Toeplitz hash over the plain input with a power-of-two table can be predicted; anything
 * else is reported unsupported with the reason, never thrown.
 */
import { spawnSync } from 'node:child_process';
import type { RssFields } from '../protocols/rss/select';

/** What `ethtool -x` printed, parsed (no judgement on whether it is usable). */
export interface EthtoolRss {
  ifname: string;
  /** RX rings (ETHTOOL_GRXRINGS). */
  rings: number;
  /** RSS context (0: the default one). */
  context: number;
  /** Indirection table, or null when the device does not report one. */
  indir: number[] | null;
  /** Hash key, or null when the device does not report one. */
  key: Uint8Array | null;
  /** The hash function that is on (`toeplitz`, `xor`, `crc32`, ...), or null when none is named. */
  hfunc: string | null;
  /** Input transformations that are on (e.g. `symmetric-xor`). */
  xfrm: string[];
}

/** A device whose RSS the stack can predict. */
export interface RssConfig {
  ifname: string;
  rings: number;
  key: Uint8Array;
  indir: number[];
  hfunc: 'toeplitz';
  /** Fields hashed for TCP over IPv4 / IPv6 (see protocols/rss/select.ts). */
  tcp4: RssFields;
  tcp6: RssFields;
}

const HEADER = /^RX flow hash indirection table for (\S+) with (\d+) RX ring\(s\)(?:, context (\d+))?:$/;
const ROW = /^(\d+):((?:\s+\d+)+)$/;
const NOT_SUPPORTED = 'Operation not supported';

/** Parses `ethtool -x` output; a string is the reason it could not be read. */
export function parseEthtoolRss(text: string): EthtoolRss | string {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const h = lines.length ? HEADER.exec(lines[0]!) : null;
  if (!h) return `unexpected ethtool -x output (no "RX flow hash indirection table" line): ${JSON.stringify(text.slice(0, 120))}`;
  const out: EthtoolRss = { ifname: h[1]!, rings: Number(h[2]), context: h[3] ? Number(h[3]) : 0, indir: null, key: null, hfunc: null, xfrm: [] };
  let i = 1;
  // Indirection table rows: each starts with the index of its first entry, so a gap is an error.
  if (lines[i] === NOT_SUPPORTED) i++;
  else {
    const indir: number[] = [];
    for (; i < lines.length; i++) {
      const r = ROW.exec(lines[i]!);
      if (!r) break;
      if (Number(r[1]) !== indir.length) return `ethtool -x: indirection table row at ${r[1]} follows ${indir.length} entries (output cut?)`;
      for (const v of r[2]!.trim().split(/\s+/)) indir.push(Number(v));
    }
    if (indir.length) out.indir = indir;
  }
  if (lines[i] !== 'RSS hash key:') return `ethtool -x: expected "RSS hash key:" after the table, got ${JSON.stringify(lines[i] ?? '(end)')}`;
  i++;
  if (lines[i] === NOT_SUPPORTED) i++;
  else if (i < lines.length && /^[0-9a-f]{2}(:[0-9a-f]{2})*$/i.test(lines[i]!)) {
    out.key = Uint8Array.from(lines[i]!.split(':').map((x) => parseInt(x, 16)));
    i++;
  } else if (i < lines.length && lines[i] !== 'RSS hash function:') {
    return `ethtool -x: unreadable hash key ${JSON.stringify(lines[i])}`;
  }
  // Sections "RSS hash function:" and "RSS input transformation:" list "name: on|off" lines.
  let section = '';
  for (; i < lines.length; i++) {
    const l = lines[i]!;
    if (l === 'RSS hash function:') { section = 'hfunc'; continue; }
    if (l === 'RSS input transformation:') { section = 'xfrm'; continue; }
    const m = /^(\S+)\s*:\s*(on|off)$/.exec(l);
    if (!m || !section) continue; // "Operation not supported", "Unknown hash function: 0x..": nothing on
    if (m[2] !== 'on') continue;
    // Two functions on at once is not a state a kernel reports; joined, it can never read as toeplitz.
    if (section === 'hfunc') out.hfunc = out.hfunc ? `${out.hfunc}+${m[1]}` : m[1]!;
    else out.xfrm.push(m[1]!);
  }
  return out;
}

/**
 * Parses `ethtool -n DEV rx-flow-hash tcp4|tcp6`: `sdfn` when both addresses and both ports are
 * hashed, `sd` for the addresses alone, `none` otherwise (another set, "None", or unreadable).
 */
export function parseFlowHashFields(text: string): RssFields {
  if (!/flows use these fields for computing Hash flow key:/.test(text)) return 'none';
  const has = (s: string) => text.includes(s);
  const sd = has('IP SA') && has('IP DA');
  const f = has('L4 bytes 0 & 1'), n = has('L4 bytes 2 & 3');
  const others = /VLAN tag|L2DA|L3 proto|GTP TEID|IPSEC SPI/.test(text);
  if (!sd || others) return 'none';
  if (f && n) return 'sdfn';
  return f || n ? 'none' : 'sd';
}

/** Whether parsed ethtool output describes RSS the stack can predict; a string says why not. */
export function usableRss(x: EthtoolRss, tcp4: RssFields, tcp6: RssFields): RssConfig | string {
  const dev = x.ifname;
  if (!x.indir) return `${dev}: the device reports no RSS indirection table`;
  if (!x.key) return `${dev}: the device reports no RSS hash key`;
  if (x.hfunc !== 'toeplitz') return `${dev}: RSS hash function is ${x.hfunc ?? 'not reported'}, only toeplitz can be predicted`;
  if (x.xfrm.length) return `${dev}: RSS input transformation ${x.xfrm.join(', ')} is on; only the plain Toeplitz input can be predicted`;
  if (x.context !== 0) return `${dev}: RSS context ${x.context}, only the default context steers ordinary traffic`;
  const n = x.indir.length;
  if ((n & (n - 1)) !== 0 || n > 65536) return `${dev}: RSS indirection table of ${n} entries is not a power of two; its indexing cannot be predicted`;
  if (x.key.length < 16) return `${dev}: RSS hash key of ${x.key.length} bytes is too short for IPv4 with ports`;
  const bad = x.indir.findIndex((q) => q >= x.rings);
  if (bad >= 0) return `${dev}: RSS indirection entry ${bad} names queue ${x.indir[bad]} of ${x.rings} RX rings`;
  // ena reported an all-zero key where the key is not readable (fixed upstream to "Operation not supported").
  if (x.key.every((b) => b === 0)) return `${dev}: RSS hash key is all zeros (not set up by the driver)`;
  if (tcp4 === 'none' && tcp6 === 'none') return `${dev}: the fields hashed for TCP are not known (ethtool -n ${dev} rx-flow-hash tcp4)`;
  return { ifname: dev, rings: x.rings, key: x.key, indir: x.indir, hfunc: 'toeplitz', tcp4, tcp6: x.key.length >= 40 ? tcp6 : 'none' };
}

/** Runs ethtool: stdout, or the error text (stderr / spawn error) with a null stdout. */
export type EthtoolRunner = (args: string[]) => { stdout: string | null; error: string };

const IFNAME = /^[^\s/:]{1,15}$/;

function runEthtool(args: string[]): { stdout: string | null; error: string } {
  const r = spawnSync('ethtool', args, { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    return { stdout: null, error: code === 'ENOENT' ? 'ethtool is not installed (scripts/setup.sh installs it)' : r.error.message };
  }
  if (r.status !== 0) return { stdout: null, error: (r.stderr || r.stdout || `exit status ${r.status}`).trim() };
  return { stdout: r.stdout, error: '' };
}

/**
 * The RSS configuration of `ifname`, or null when it cannot be predicted (no RSS, not Toeplitz,
 * ethtool missing, ...); `why.reason` then says why. Throws only on a malformed interface name.
 */
export function readRss(ifname: string, why?: { reason: string }, run: EthtoolRunner = runEthtool): RssConfig | null {
  if (typeof ifname !== 'string' || !IFNAME.test(ifname)) throw new TypeError(`readRss: invalid interface name ${JSON.stringify(ifname)}`);
  const fail = (reason: string): null => {
    if (why) why.reason = reason;
    return null;
  };
  const x = run(['-x', ifname]);
  if (x.stdout === null) return fail(`ethtool -x ${ifname}: ${x.error}`);
  const parsed = parseEthtoolRss(x.stdout);
  if (typeof parsed === 'string') return fail(parsed);
  const fields = (flow: string): RssFields => {
    const r = run(['-n', ifname, 'rx-flow-hash', flow]);
    return r.stdout === null ? 'none' : parseFlowHashFields(r.stdout);
  };
  const cfg = usableRss(parsed, fields('tcp4'), fields('tcp6'));
  return typeof cfg === 'string' ? fail(cfg) : cfg;
}

/**
 * The `iscsi` service's part of the config, checked by the same validator as the rest of the
 * config file, the control socket and the API (stack/control/validate.ts Checker):
 *
 *   { "type": "iscsi", "vs": "a", "port": 3260,
 *     "targets": [{ "iqn": "iqn.2026-12.org.example:disk1",
 *                   "luns": [{ "lun": 0, "size": "64MiB", "blockSize": 512, "file": "/var/lib/disk1.img" }],
 *                   "chap": { "user": "alice", "secret": "twelve-chars-min" } }],
 *     "nopInterval": 30, "nopTimeout": 15, "maxHeldChunks": 512 }
 *
 * `maxHeldChunks`: received frames the service may keep pinned as Data-Out views (hold.ts); beyond
 * it Data-Out is copied. Keep it well below the device's frameCount / 2.
 */
import { Checker, join, Obj } from '../../stack/control/validate';
import type { LunSpec, TargetSpec } from './scsi/types';

export const ISCSI_KEYS = ['targets', 'nopInterval', 'nopTimeout', 'maxHeldChunks'] as const;

/** RFC 7143 4.2.7.2: iqn.yyyy-mm.reversed-domain[:anything], eui.16 hex, naa.16 or 32 hex. */
export const IQN_RE = /^(iqn\.\d{4}-(0[1-9]|1[0-2])\.[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[a-z0-9.:\-]+)?|eui\.[0-9a-f]{16}|naa\.([0-9a-f]{16}|[0-9a-f]{32}))$/;
const IQN_HINT = 'iqn.YYYY-MM.reversed.domain[:name], eui.<16 hex> or naa.<16|32 hex>, lower case, at most 223 bytes';

/** Largest RAM LUN (a Node Buffer) and file LUN (SBC-3 64-bit LBAs, but keep to what fs offsets hold exactly). */
export const MAX_RAM_LUN = 4 * 2 ** 30;
export const MAX_FILE_LUN = 2 ** 50;

const UNITS: Record<string, number> = { '': 1, B: 1, K: 1024, KB: 1024, KIB: 1024, M: 2 ** 20, MB: 2 ** 20, MIB: 2 ** 20, G: 2 ** 30, GB: 2 ** 30, GIB: 2 ** 30, T: 2 ** 40, TB: 2 ** 40, TIB: 2 ** 40 };

/** "64MiB", "1 GiB", "4096" or a number of bytes; undefined when not a size. */
export function parseSize(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v > 0 ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^\s*(\d+)\s*([a-zA-Z]*)\s*$/.exec(v);
  if (!m) return undefined;
  const unit = UNITS[m[2]!.toUpperCase()];
  if (unit === undefined) return undefined;
  const n = Number(m[1]) * unit;
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/** Checks the iscsi keys of a service entry at `path`; problems go to `c`. */
export function checkIscsi(c: Checker, spec: Obj, path: string): void {
  c.int(spec, 'nopInterval', path, false, 1, 3600);
  c.int(spec, 'nopTimeout', path, false, 1, 3600);
  c.int(spec, 'maxHeldChunks', path, false, 0, 1 << 20);
  const targets = c.array(spec, 'targets', path, true);
  if (!targets) return;
  if (targets.length === 0) c.fail(join(path, 'targets'), 'must name at least one target');
  const iqns = new Map<string, string>();
  targets.forEach((t, i) => {
    const tp = join(join(path, 'targets'), i);
    if (!c.isObject(t, tp)) return;
    c.keys(t, tp, ['iqn', 'alias', 'luns', 'chap']);
    const iqn = c.string(t, 'iqn', tp, true, IQN_RE, IQN_HINT);
    if (iqn !== undefined) {
      if (Buffer.byteLength(iqn) > 223) c.fail(`${tp}.iqn`, `is ${Buffer.byteLength(iqn)} bytes long (at most 223, RFC 7143 4.2.7.1)`);
      const prev = iqns.get(iqn);
      if (prev) c.fail(`${tp}.iqn`, `${iqn} is already the name of ${prev}`);
      else iqns.set(iqn, tp);
    }
    c.string(t, 'alias', tp, false, /^[\x20-\x7e]{1,255}$/, 'printable ASCII, 1..255 characters');
    const chap = t['chap'];
    if (chap !== undefined && c.isObject(chap, `${tp}.chap`)) {
      c.keys(chap, `${tp}.chap`, ['user', 'secret']);
      c.string(chap, 'user', `${tp}.chap`, true, /^[\x21-\x7e]{1,255}$/, 'printable ASCII without spaces');
      // RFC 7143 12.1.3: the secret SHOULD be at least 12 bytes (96 bits); 16 is the most libiscsi takes.
      c.string(chap, 'secret', `${tp}.chap`, true, /^[\x20-\x7e]{12,255}$/, 'printable ASCII, at least 12 characters (RFC 7143 12.1.3)');
    }
    const luns = c.array(t, 'luns', tp, true);
    if (!luns) return;
    if (luns.length === 0) c.fail(`${tp}.luns`, 'must name at least one LUN');
    if (luns.length > 256) c.fail(`${tp}.luns`, `has ${luns.length} LUNs (at most 256)`);
    const nums = new Set<number>();
    const files = new Set<string>();
    luns.forEach((l, j) => {
      const lp = `${tp}.luns[${j}]`;
      if (!c.isObject(l, lp)) return;
      c.keys(l, lp, ['lun', 'size', 'blockSize', 'file', 'serial']);
      const lun = c.int(l, 'lun', lp, true, 0, 255);
      if (lun !== undefined) {
        if (nums.has(lun)) c.fail(`${lp}.lun`, `LUN ${lun} is already defined in this target`);
        nums.add(lun);
      }
      const bs = c.oneOf(l, 'blockSize', lp, false, [512, 4096]) ?? 512;
      const file = c.string(l, 'file', lp, false, /^\/.+/, 'an absolute path');
      if (file !== undefined) {
        if (files.has(file)) c.fail(`${lp}.file`, `${file} already backs another LUN`);
        files.add(file);
      }
      c.string(l, 'serial', lp, false, /^[\x21-\x7e]{1,32}$/, 'printable ASCII without spaces, at most 32 characters');
      if (l['size'] === undefined) { c.fail(`${lp}.size`, 'is required (bytes, or a string like "64MiB")'); return; }
      const size = parseSize(l['size']);
      const max = file !== undefined ? MAX_FILE_LUN : MAX_RAM_LUN;
      if (size === undefined) c.fail(`${lp}.size`, `${JSON.stringify(l['size'])} is not a size (bytes, or a number with K/M/G/T, KiB/MiB/GiB/TiB)`);
      else if (size % bs !== 0) c.fail(`${lp}.size`, `${size} is not a multiple of the block size ${bs}`);
      else if (size < 16 * bs) c.fail(`${lp}.size`, `${size} bytes is less than 16 blocks`);
      else if (size > max) c.fail(`${lp}.size`, `${size} bytes is more than a ${file !== undefined ? 'file' : 'RAM'} LUN can hold (${max})`);
    });
  });
}

/** The targets of a validated service entry, with sizes in bytes. */
export function targetSpecs(spec: Obj): TargetSpec[] {
  return (spec['targets'] as Obj[]).map((t) => ({
    iqn: t['iqn'] as string,
    ...(t['chap'] ? { chap: { ...(t['chap'] as { user: string; secret: string }) } } : {}),
    luns: (t['luns'] as Obj[]).map((l): LunSpec => ({
      lun: l['lun'] as number,
      size: parseSize(l['size'])!,
      blockSize: (l['blockSize'] as number | undefined) ?? 512,
      ...(l['file'] !== undefined ? { file: l['file'] as string } : {}),
      ...(l['serial'] !== undefined ? { serial: l['serial'] as string } : {}),
    })),
  }));
}

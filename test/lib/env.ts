/** Helpers for tests that need root, network namespaces or the native addon. */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

/** The sample captures kept in the repository (test/pcaps; tests run from dist/test). */
export const SAMPLE_PCAPS = path.join(__dirname, '..', '..', '..', 'test', 'pcaps');

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
export const inCI = process.env.CI === 'true' || process.env.CI === '1';

/**
 * Whether root-only tests can run. In CI they must: a missing privilege there is a failure,
 * never a skip.
 */
export function canRunPrivileged(): boolean {
  if (isRoot) return true;
  if (inCI) throw new Error('CI=true but not running as root: privileged tests cannot be skipped in CI');
  console.log('# skipping privileged tests: not root (run as root to include them)');
  return false;
}

export function sh(cmd: string, args: string[], opts: { ns?: string; input?: string; timeout?: number } = {}): string {
  const full = opts.ns ? ['netns', 'exec', opts.ns, cmd, ...args] : args;
  const bin = opts.ns ? 'ip' : cmd;
  return execFileSync(bin, full, { encoding: 'utf8', input: opts.input, timeout: opts.timeout ?? 30000, stdio: ['pipe', 'pipe', 'pipe'] });
}

/**
 * A lab prefix for one test process: the file's two-letter base plus two characters from the
 * process id, so two test runs on one machine (two checkouts, or CI beside a developer) build
 * separate labs instead of replacing each other's. `XDPSTACK_LAB_TAG` pins the tag.
 */
export function labPrefix(base: string): string {
  if (!/^[a-z][a-z0-9]$/.test(base)) throw new Error(`lab prefix base must be 2 characters: ${base}`);
  const pinned = process.env.XDPSTACK_LAB_TAG;
  const tag = pinned && /^[a-z0-9]{2}$/.test(pinned) ? pinned : (process.pid % 1296).toString(36).padStart(2, '0');
  return base + tag;
}

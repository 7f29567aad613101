/**
 * Errors shaped as Node's `net` makes them (lib/internal/errors.js): the same `code`, negative
 * `errno`, `syscall`, `address`/`port` and message format, so code written against Node's docs
 * (switch on err.code, log err.message) reads ours the same way.
 */
import { constants as osConstants } from 'node:os';
import { getSystemErrorMap } from 'node:util';

export interface NetError extends Error {
  code: string;
  errno?: number;
  syscall?: string;
  address?: string;
  port?: number;
  localAddress?: string;
  localPort?: number;
  hostname?: string;
}

/** The negative errno Node reports for a system error code (e.g. ECONNREFUSED → -111), if it is one. */
export function errnoOf(code: string): number | undefined {
  const n = (osConstants.errno as Record<string, number | undefined>)[code];
  return n === undefined ? undefined : -n;
}

/** libuv's text for an errno ('address already in use'), as in Node's listen errors. */
function uvMessage(errno: number | undefined): string {
  return (errno !== undefined && getSystemErrorMap().get(errno)?.[1]) || 'unknown error';
}

function make(message: string, props: Partial<NetError> & { code: string }): NetError {
  const e = new Error(message) as NetError;
  for (const [k, v] of Object.entries(props)) if (v !== undefined) (e as unknown as Record<string, unknown>)[k] = v;
  return e;
}

/** ErrnoException: 'read ECONNRESET', 'write EPIPE' (errno, code, syscall). */
export function errnoException(code: string, syscall: string): NetError {
  return make(`${syscall} ${code}`, { errno: errnoOf(code), code, syscall });
}

/**
 * ExceptionWithHostPort: 'connect ECONNREFUSED 10.1.1.2:80', with ' - Local (a:p)' when the local
 * end was given; 'bind EADDRNOTAVAIL 10.9.9.9' (no port when it is 0).
 */
export function exceptionWithHostPort(code: string, syscall: string, address: string, port?: number,
  local?: { address: string; port: number }): NetError {
  let details = port && port > 0 ? ` ${address}:${port}` : address ? ` ${address}` : '';
  if (local) details += ` - Local (${local.address}:${local.port})`;
  return make(`${syscall} ${code}${details}`, {
    errno: errnoOf(code), code, syscall, address, port: port || undefined,
    localAddress: local?.address, localPort: local?.port,
  });
}

/** UVExceptionWithHostPort: 'listen EADDRINUSE: address already in use 0.0.0.0:80'. */
export function uvExceptionWithHostPort(code: string, syscall: string, address: string, port: number): NetError {
  const errno = errnoOf(code);
  const details = port > 0 ? ` ${address}:${port}` : address ? ` ${address}` : '';
  return make(`${syscall} ${code}: ${uvMessage(errno)}${details}`, { errno, code, syscall, address, port: port || undefined });
}

/** A Node error with only a code (ERR_SOCKET_CLOSED, ERR_SERVER_NOT_RUNNING, ...). */
export function codeError(code: string, message: string, Kind: ErrorConstructor | RangeErrorConstructor | TypeErrorConstructor = Error): NetError {
  const e = new Kind(message) as NetError;
  e.code = code;
  return e;
}

/**
 * A Node feature this stack does not offer (IPC paths, file descriptors, handles): thrown at the
 * call, with Node's code for a feature the platform lacks, so nothing is silently ignored.
 */
export function notSupported(what: string, why: string): NetError {
  return codeError('ERR_FEATURE_UNAVAILABLE_ON_PLATFORM', `${what} is not supported by xdpstack: ${why}`, TypeError);
}

/** How Node's messages describe a received value: "type number (70000)", "type string ('x')". */
export function specificType(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'function') return `function ${v.name}`;
  if (typeof v === 'object') return `an instance of ${(v as object).constructor?.name ?? 'Object'}`;
  if (typeof v === 'string') return `type string ('${v.length > 28 ? `${v.slice(0, 25)}...` : v}')`;
  return `type ${typeof v} (${String(v)})`;
}

/** ERR_INVALID_ARG_TYPE as Node words it ("The "options.port" property must be ..."). */
export function invalidArgType(name: string, expected: string, actual: unknown): NetError {
  return codeError('ERR_INVALID_ARG_TYPE', `The "${name}" ${name.includes('.') ? 'property' : 'argument'} must be ${expected}. Received ${specificType(actual)}`, TypeError);
}

/** Node's validatePort: a number or numeric string, integer, 0..65535; ERR_SOCKET_BAD_PORT. */
export function validatePort(port: unknown, name = 'Port'): number {
  const ok = (typeof port === 'number' || (typeof port === 'string' && port.trim().length > 0))
    && Number(port) === Number(port) >>> 0 && Number(port) <= 0xffff;
  if (!ok) throw codeError('ERR_SOCKET_BAD_PORT', `${name} should be >= 0 and < 65536. Received ${specificType(port)}.`, RangeError);
  return Number(port);
}

/**
 * Errors of the socket APIs (`net` and `dgram`), shaped as Node's (lib/internal/errors.js): system
 * errors carry `code` ('EADDRINUSE'), the negative `errno` Node reports on Linux, `syscall`, and
 * `address`/`port` where Node sets them, with Node's message formats; API misuse carries an `ERR_*`
 * code on the error class Node uses (TypeError, RangeError, Error). Code written against Node's
 * docs (switch on err.code, log err.message) reads ours the same way.
 */
import { constants as osConstants } from 'node:os';
import { getSystemErrorMap, inspect } from 'node:util';

export interface SocketError extends Error {
  code: string;
  errno?: number;
  syscall?: string;
  address?: string;
  port?: number;
  localAddress?: string;
  localPort?: number;
  /** The name a failed lookup was for (ENOTFOUND). */
  hostname?: string;
  /** Why, in the stack's words (the API layer puts it after Node's message). */
  reason?: string;
  /** SystemError's details (ERR_SOCKET_BUFFER_SIZE). */
  info?: { errno: number; code: string; message: string; syscall: string };
}

/** The errors of the `net`-shaped API: the same shape. */
export type NetError = SocketError;

/** The errno values Node reports on Linux (negative, as libuv's): code → errno. */
export const ERRNO: Readonly<Record<string, number>> = {
  EBADF: -9, EACCES: -13, EINVAL: -22, EPIPE: -32, ENONET: -64, EPROTO: -71, EMSGSIZE: -90, ENOPROTOOPT: -92,
  EAFNOSUPPORT: -97, EADDRINUSE: -98, EADDRNOTAVAIL: -99, ENETUNREACH: -101, ECONNRESET: -104, ENOBUFS: -105,
  ENOTCONN: -107, ETIMEDOUT: -110, ECONNREFUSED: -111, EHOSTDOWN: -112, EHOSTUNREACH: -113,
  // getaddrinfo's EAI_NONAME as libuv maps it (UV_EAI_NONAME), which Node reports as ENOTFOUND.
  ENOTFOUND: -3008,
};

/** The negative errno Node reports for a system error code (e.g. ECONNREFUSED → -111), if it is one. */
export function errnoOf(code: string): number | undefined {
  const known = ERRNO[code];
  if (known !== undefined) return known;
  const n = (osConstants.errno as Record<string, number | undefined>)[code];
  return n === undefined ? undefined : -n;
}

/** libuv's text for an errno ('address already in use'), as in Node's listen errors. */
function uvMessage(errno: number | undefined): string {
  return (errno !== undefined && getSystemErrorMap().get(errno)?.[1]) || 'unknown error';
}

/** A system error (`code` an errno name); `errno` is filled from the code when not given; undefined fields are left out. */
export function sockError(code: string, message: string, extra: Partial<SocketError> = {}): SocketError {
  const e = new Error(message) as SocketError;
  e.code = code;
  const errno = errnoOf(code);
  if (errno !== undefined) e.errno = errno;
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) (e as unknown as Record<string, unknown>)[k] = v;
  return e;
}

/**
 * Node's ExceptionWithHostPort as `dgram` reports it: message `${syscall} ${code} ${address}:${port}`
 * (the port left out when 0 or absent, as Node does), with `detail` appended in parentheses when the
 * stack knows why.
 */
export function hostPortError(code: string, syscall: string, address: string | undefined, port: number | undefined, detail = ''): SocketError {
  let msg = `${syscall} ${code}`;
  if (address !== undefined && address !== '') msg += port ? ` ${address}:${port}` : ` ${address}`;
  if (detail) msg += ` (${detail})`;
  const e = sockError(code, msg, { syscall });
  if (address !== undefined && address !== '') e.address = address;
  if (port) e.port = port;
  return e;
}

/**
 * ExceptionWithHostPort as `net` reports it: 'connect ECONNREFUSED 10.1.1.2:80', with
 * ' - Local (a:p)' when the local end was given; 'bind EADDRNOTAVAIL 10.9.9.9' (no port when it is 0).
 */
export function exceptionWithHostPort(code: string, syscall: string, address: string, port?: number,
  local?: { address: string; port: number }): SocketError {
  let details = port && port > 0 ? ` ${address}:${port}` : address ? ` ${address}` : '';
  if (local) details += ` - Local (${local.address}:${local.port})`;
  return sockError(code, `${syscall} ${code}${details}`, {
    syscall, address, port: port || undefined, localAddress: local?.address, localPort: local?.port,
  });
}

/** UVExceptionWithHostPort: 'listen EADDRINUSE: address already in use 0.0.0.0:80'. */
export function uvExceptionWithHostPort(code: string, syscall: string, address: string, port: number): SocketError {
  const details = port > 0 ? ` ${address}:${port}` : address ? ` ${address}` : '';
  return sockError(code, `${syscall} ${code}: ${uvMessage(errnoOf(code))}${details}`, { syscall, address, port: port || undefined });
}

/** Node's ErrnoException: message `${syscall} ${code}` ('read ECONNRESET', 'write EPIPE'). */
export function errnoError(code: string, syscall: string): SocketError {
  return sockError(code, `${syscall} ${code}`, { syscall });
}

/** An `ERR_*` error of Node's kind: `cls` is the class Node throws for that code. */
export function codeError(cls: ErrorConstructor | TypeErrorConstructor | RangeErrorConstructor, code: string, message: string): SocketError {
  const e = new cls(message) as SocketError;
  e.code = code;
  return e;
}

/**
 * A Node feature this stack does not offer (IPC paths, file descriptors, handles, multicast): thrown
 * at once, never ignored. Node's own code for a feature a platform lacks
 * (ERR_FEATURE_UNAVAILABLE_ON_PLATFORM, a TypeError), with the reason.
 */
export function notSupported(what: string, why: string): SocketError {
  return codeError(TypeError, 'ERR_FEATURE_UNAVAILABLE_ON_PLATFORM', `${what} is not supported by xdpstack: ${why}`);
}

/**
 * How Node's messages describe a received value (lib/internal/errors.js determineSpecificType):
 * "type number (70000)", "type string ('x')", "type bigint (1n)", "function f", "an instance of X".
 */
export function received(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  switch (typeof v) {
    case 'bigint': return `type bigint (${v}n)`;
    case 'number': return `type number (${Object.is(v, -0) ? '-0' : String(v)})`;
    case 'boolean': return `type boolean (${v})`;
    case 'symbol': return `type symbol (${String(v)})`;
    case 'function': return `function ${(v as { name: string }).name}`;
    case 'object': {
      const c = (v as { constructor?: unknown }).constructor;
      if ((typeof c === 'function' || (typeof c === 'object' && c !== null)) && 'name' in c) return `an instance of ${(c as { name: string }).name}`;
      return inspect(v, { depth: -1 });
    }
    default: {
      // A string longer than 28 characters is cut to 25 and '...'; double quotes when it holds a single one.
      let s = v as string;
      if (s.length > 28) s = `${s.slice(0, 25)}...`;
      return s.includes("'") ? `type string (${JSON.stringify(s)})` : `type string ('${s}')`;
    }
  }
}

/** ERR_INVALID_ARG_TYPE as Node words it ("The "options.port" property must be ..."). */
export function invalidArgType(name: string, expected: string, actual: unknown): SocketError {
  return codeError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "${name}" ${name.includes('.') ? 'property' : 'argument'} must be ${expected}. Received ${received(actual)}`);
}

/** Node's validatePort: a number or numeric string, integer, 0..65535; ERR_SOCKET_BAD_PORT. */
export function validatePort(port: unknown, name = 'Port'): number {
  const ok = (typeof port === 'number' || (typeof port === 'string' && port.trim().length > 0))
    && Number(port) === Number(port) >>> 0 && Number(port) <= 0xffff;
  if (!ok) throw codeError(RangeError, 'ERR_SOCKET_BAD_PORT', `${name} should be >= 0 and < 65536. Received ${received(port)}.`);
  return Number(port);
}

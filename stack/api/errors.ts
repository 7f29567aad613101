/**
 * Errors of the socket APIs, shaped as Node's: system errors carry `code` ('EADDRINUSE'), the
 * negative `errno` Node reports on Linux, `syscall`, and `address`/`port` where Node sets them;
 * API misuse carries an `ERR_*` code on the error class Node uses (TypeError, RangeError, Error).
 */

export interface SocketError extends Error {
  code: string;
  errno?: number;
  syscall?: string;
  address?: string;
  port?: number;
  /** The name a failed lookup was for (ENOTFOUND). */
  hostname?: string;
  /** Why, in the stack's words (the API layer puts it after Node's message). */
  reason?: string;
  /** SystemError's details (ERR_SOCKET_BUFFER_SIZE). */
  info?: { errno: number; code: string; message: string; syscall: string };
}

/** The errno values Node reports on Linux (negative, as libuv's): code → errno. */
export const ERRNO: Readonly<Record<string, number>> = {
  EBADF: -9, EACCES: -13, EINVAL: -22, EPIPE: -32, ENONET: -64, EPROTO: -71, EMSGSIZE: -90, ENOPROTOOPT: -92,
  EAFNOSUPPORT: -97, EADDRINUSE: -98, EADDRNOTAVAIL: -99, ENETUNREACH: -101, ECONNRESET: -104, ENOBUFS: -105,
  ENOTCONN: -107, ETIMEDOUT: -110, ECONNREFUSED: -111, EHOSTDOWN: -112, EHOSTUNREACH: -113,
  // getaddrinfo's EAI_NONAME as libuv maps it (UV_EAI_NONAME), which Node reports as ENOTFOUND.
  ENOTFOUND: -3008,
};

/** A system error (`code` an errno name); `errno` is filled from the code when not given. */
export function sockError(code: string, message: string, extra: Partial<SocketError> = {}): SocketError {
  const e = new Error(message) as SocketError;
  e.code = code;
  const errno = ERRNO[code];
  if (errno !== undefined) e.errno = errno;
  Object.assign(e, extra);
  return e;
}

/**
 * Node's ExceptionWithHostPort: message `${syscall} ${code} ${address}:${port}` (the port left out
 * when 0 or absent, as Node does), with `detail` appended in parentheses when the stack knows why.
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

/** Node's ErrnoException: message `${syscall} ${code}`. */
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
 * A Node feature this stack does not offer: thrown at once, never ignored. Node's own code for a
 * feature a platform lacks (ERR_FEATURE_UNAVAILABLE_ON_PLATFORM, a TypeError), with the reason.
 */
export function notSupported(what: string, why: string): SocketError {
  return codeError(TypeError, 'ERR_FEATURE_UNAVAILABLE_ON_PLATFORM', `${what} is not supported by xdpstack: ${why}`);
}

/** How Node's messages show a received value ("type number (0)", "undefined", "type string ('x')"). */
export function received(v: unknown): string {
  if (v === undefined || v === null) return String(v);
  if (typeof v === 'function') return `function ${(v as { name?: string }).name || '<anonymous>'}`;
  if (typeof v === 'object') return `an instance of ${(v as object).constructor?.name ?? 'Object'}`;
  const shown = typeof v === 'string' ? `'${v.length > 25 ? `${v.slice(0, 25)}...` : v}'` : String(v);
  return `type ${typeof v} (${shown})`;
}

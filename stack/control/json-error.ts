/**
 * Where a JSON text stops being JSON (RFC 8259), and why, in words an operator can act on: the
 * config loader reports it as "not valid JSON at line L, column C: REASON". V8's own messages name
 * no position for several mistakes (`Unexpected token ']', ..."x", ]" is not valid JSON`, a
 * trailing comma) and quote the text around it across lines, so the loader finds the place itself.
 * Iterative (a stack of open containers): deep nesting cannot overflow the call stack.
 */

export interface JsonSyntaxError {
  /** UTF-16 offset of the first character that cannot be JSON (the text's length at its end). */
  offset: number;
  reason: string;
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const ESCAPES = '"\\/bfnrt';

function isWs(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

/** The character at `k` as a message shows it. */
function what(t: string, k: number): string {
  if (k >= t.length) return 'the end of the file';
  const ch = t[k]!;
  const code = ch.charCodeAt(0);
  if (code < 0x20 || code === 0x7f) return `a control character (U+${code.toString(16).padStart(4, '0').toUpperCase()})`;
  if (code > 0x7e) return `'${ch}' (U+${code.toString(16).padStart(4, '0').toUpperCase()})`;
  return `'${ch}'`;
}

/** The first syntax error of `t`, or null when `t` is one valid JSON value. */
export function findJsonError(t: string): JsonSyntaxError | null {
  const n = t.length;
  let i = 0;
  const open: ('[' | '{')[] = [];
  /** 'value' and 'key' expect one; 'after' follows a value; `comma` marks a value or key expected after ','. */
  let expect: 'value' | 'key' | 'after' = 'value';
  let comma = false;
  const fail = (reason: string, at = i): JsonSyntaxError => ({ offset: at, reason });

  /** Reads a string at t[i] === '"'; null when it is whole (i past its closing quote). */
  const string = (): JsonSyntaxError | null => {
    const start = i;
    i++;
    for (;;) {
      if (i >= n) return fail('a string is not closed (no ending ")', start);
      const c = t.charCodeAt(i);
      if (c === 0x22) { i++; return null; }
      if (c === 0x5c) {
        const e = t[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(t.slice(i + 2, i + 6))) return fail('a \\u escape needs four hex digits');
          i += 6;
          continue;
        }
        if (e === undefined || !ESCAPES.includes(e)) return fail(`bad escape \\${e ?? ''} in a string (JSON has \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)`);
        i += 2;
        continue;
      }
      if (c < 0x20) return fail(`${what(t, i)} inside a string (write it as an escape such as \\n or \\t)`);
      i++;
    }
  };

  for (;;) {
    while (i < n && isWs(t.charCodeAt(i))) i++;
    if (expect === 'key') {
      if (t[i] === '"') {
        const e = string();
        if (e) return e;
        while (i < n && isWs(t.charCodeAt(i))) i++;
        if (t[i] !== ':') return fail(`expected ':' after a property name, found ${what(t, i)}`);
        i++;
        expect = 'value';
        comma = false;
        continue;
      }
      if (comma && t[i] === '}') return fail("a comma before '}' (JSON allows no trailing comma)");
      return fail(`expected a property name in double quotes, found ${what(t, i)}`);
    }
    if (expect === 'value') {
      const ch = t[i];
      if (ch === '{' || ch === '[') {
        const close = ch === '{' ? '}' : ']';
        i++;
        while (i < n && isWs(t.charCodeAt(i))) i++;
        if (t[i] === close) { i++; expect = 'after'; continue; }
        open.push(ch);
        expect = ch === '{' ? 'key' : 'value';
        comma = false;
        continue;
      }
      if (ch === '"') {
        const e = string();
        if (e) return e;
        expect = 'after';
        continue;
      }
      if (ch === '-' || (ch !== undefined && ch >= '0' && ch <= '9')) {
        NUMBER.lastIndex = i;
        const m = NUMBER.exec(t);
        if (!m) return fail(`not a number: ${what(t, i + 1)} after '-'`);
        i += m[0].length;
        expect = 'after';
        continue;
      }
      const lit = ['true', 'false', 'null'].find((w) => t.startsWith(w, i));
      if (lit) { i += lit.length; expect = 'after'; continue; }
      if (comma && ch === ']') return fail("a comma before ']' (JSON allows no trailing comma)");
      if (ch === "'") return fail("expected a value, found ''': JSON strings take double quotes");
      return fail(`expected a value, found ${what(t, i)}`);
    }
    // After a value.
    const top = open[open.length - 1];
    if (top === undefined) {
      if (i < n) return fail(`${what(t, i)} after the end of the JSON value`);
      return null;
    }
    const close = top === '{' ? '}' : ']';
    const ch = t[i];
    if (ch === ',') { i++; expect = top === '{' ? 'key' : 'value'; comma = true; continue; }
    if (ch === close) { i++; open.pop(); continue; }
    return fail(`expected ',' or '${close}', found ${what(t, i)}`);
  }
}

/** `offset` as a 1-based line and column. */
export function lineColumn(t: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let k = 0; k < offset && k < t.length; k++) {
    if (t.charCodeAt(k) === 0x0a) { line++; lineStart = k + 1; }
  }
  return { line, column: offset - lineStart + 1 };
}

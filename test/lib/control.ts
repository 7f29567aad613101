/**
 * A stack on the memory driver behind a control socket, and the CLI run against that socket, as the
 * validator tests use them to compare the verdicts of every entry point.
 */
import * as fs from 'node:fs';
import { main } from '../../stack/cli/cli';
import { createStack, Stack } from '../../stack/stack';
import { ControlServer } from '../../stack/control/control';
import type { StackConfig } from '../../stack/control/config';

export interface CliResult { code: number; out: string; err: string }

/** Runs the CLI with `args` against the control socket `sock`; its exit code and output lines. */
export async function cliAt(sock: string, args: string[]): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main([...args, '--socket', sock], { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

export interface ControlledStack { stack: Stack; server: ControlServer }

/** Creates the stack of `config` and serves its control socket at `sock`. */
export async function startControlled(config: StackConfig, sock: string): Promise<ControlledStack> {
  const stack = createStack(config);
  const server = await ControlServer.listen(stack, sock);
  return { stack, server };
}

/** Closes the control socket and the stack, then removes `tmp` (the socket's folder). */
export async function stopControlled(c: ControlledStack, tmp: string): Promise<void> {
  await c.server.close();
  c.stack.close();
  fs.rmSync(tmp, { recursive: true, force: true });
}

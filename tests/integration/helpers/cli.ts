import { execa, type ResultPromise } from "execa";
import { CLI } from "./stack.js";

/** Run the compiled CLI (dist-js) as a user would, never throwing on a non-zero exit. */
export function runCli(args: string[], env: Record<string, string> = {}): ResultPromise<{ reject: false; all: true }> {
  return execa("node", [CLI, ...args], { reject: false, all: true, env: { ...env, CI: "true" } });
}

import { BuildError } from "../errors.js";
import type { BuildContainer } from "./build-container.js";

/**
 * Runs one of the factory's own helper commands in a build container (writing a secret through stdin, making a CA
 * bundle, removing a key) and fails, naming `what` and quoting its stderr, when it exits non-zero. The helpers'
 * own words name no secret: they never echo what they were given.
 */
export async function execChecked(
  container: BuildContainer,
  what: string,
  argv: string[],
  options: { stdin?: Buffer; signal?: AbortSignal } = {},
): Promise<void> {
  const stderr: Buffer[] = [];
  const { exitCode } = await container.exec(argv, {
    ...(options.stdin === undefined ? {} : { stdin: options.stdin }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    onStderr: (c) => stderr.push(c),
  });
  if (exitCode !== 0)
    throw new BuildError(
      `${what} in the build container failed with exit code ${exitCode}: ${Buffer.concat(stderr).toString("utf8").trim()}`,
    );
}

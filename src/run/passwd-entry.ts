import type { BuildContainer } from "../docker/index.js";
import { BuildError } from "../errors.js";
import { CONTAINER } from "../plan/paths.js";

/**
 * Spack needs a passwd entry for the uid it runs as (`getpwuid()` in its installer and stage code), whatever
 * `USER` says. Build containers run as the invoking user's uid, which the image does not know: give it an entry
 * (and its gid a group) before any step runs. Run as root in the container; the ids are numbers, passed as
 * arguments of a fixed script, never spliced into it.
 */
const SCRIPT = [
  'uid="$1"; gid="$2"; home="$3"',
  'getent group "$gid" >/dev/null || groupadd --gid "$gid" stack-factory',
  'getent passwd "$uid" >/dev/null || useradd --uid "$uid" --gid "$gid" --no-create-home --home-dir "$home" --shell /bin/sh stack-factory',
  'getent passwd "$uid" >/dev/null',
].join("\n");

export function passwdEntryArgv(user: { uid: number; gid: number }): string[] {
  if (!Number.isSafeInteger(user.uid) || !Number.isSafeInteger(user.gid) || user.uid < 0 || user.gid < 0) {
    throw new BuildError(`not a numeric uid:gid: ${String(user.uid)}:${String(user.gid)}`);
  }
  return ["sh", "-ec", SCRIPT, "sh", String(user.uid), String(user.gid), CONTAINER.home];
}

export async function ensurePasswdEntry(
  container: BuildContainer,
  user: { uid: number; gid: number },
  signal: AbortSignal,
): Promise<void> {
  const output: Buffer[] = [];
  const { exitCode } = await container.exec(passwdEntryArgv(user), {
    user: "0:0",
    signal,
    onStdout: (c) => output.push(c),
    onStderr: (c) => output.push(c),
  });
  if (exitCode !== 0) {
    throw new BuildError(
      `cannot give uid ${user.uid} a passwd entry in the build container (exit code ${exitCode}): ${Buffer.concat(output).toString().trim()}`,
      { hint: "the builder image needs useradd and groupadd (package passwd)" },
    );
  }
}

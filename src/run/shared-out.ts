/**
 * Packing straight into the output directory, for an engine of this machine: a directory of the run beside the
 * tarballs (`<out>/.stack-factory-<run>-<target>/`, given to the build user) is mounted into the build container,
 * the packer writes the tarball there, and it is renamed into `<out>` (one file system: no copy, nothing through
 * the engine API). Engines of other hosts keep the copy through the engine.
 */
import { chown, mkdir, rename, rm, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { CONTAINER } from "../plan/paths.js";
import type { Mount } from "../plan/types.js";
import { containerUser } from "./host-caches.js";

/** Where the staging directory is mounted in the build container. */
export const SHARED_OUT_CONTAINER = CONTAINER.output;

export interface SharedOut {
  /** The staging directory on this host. */
  host: string;
  /** Its path in the build container. */
  container: string;
}

/** Makes the staging directory (owned by the build user) and the mount that carries it. */
export async function prepareSharedOut(
  outDir: string,
  runId: string,
  target: string,
): Promise<{ shared: SharedOut; mount: Mount }> {
  const host = join(outDir, `.stack-factory-${runId}-${target}`);
  await rm(host, { recursive: true, force: true });
  await mkdir(host, { recursive: true });
  const user = containerUser();
  if (process.getuid?.() === 0) await chown(host, user.uid, user.gid);
  return {
    shared: { host, container: SHARED_OUT_CONTAINER },
    mount: { kind: "output", host, hostIsAbsolute: true, container: SHARED_OUT_CONTAINER, readOnly: false },
  };
}

/**
 * Moves a tarball packed into the staging directory (and its .sha256) into the output directory, owned by whoever
 * runs the factory; returns its new path.
 */
export async function bringHome(packed: string, outDir: string): Promise<string> {
  const final = join(outDir, basename(packed));
  const uid = process.getuid?.();
  const gid = process.getgid?.();
  // The sidecar of an earlier tarball of the same name must not sit beside the new one, even for a moment.
  await rm(`${final}.sha256`, { force: true });
  for (const [from, to] of [
    [packed, final],
    [`${packed}.sha256`, `${final}.sha256`],
  ] as const) {
    if (uid !== undefined && gid !== undefined && (await stat(from)).uid !== uid) await chown(from, uid, gid);
    await rename(from, to);
  }
  return final;
}

/** Removes the staging directory (whatever a failed pack left in it). */
export async function removeSharedOut(shared: SharedOut): Promise<void> {
  await rm(shared.host, { recursive: true, force: true });
}

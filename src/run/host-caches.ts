import { chown, mkdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { BUILDER_USER } from "../plan/paths.js";
import type { Mount } from "../plan/types.js";

/** The uid:gid build containers run as: the invoking user, or the builder image's user when that is root. */
export function containerUser(): { uid: number; gid: number } {
  const uid = process.getuid?.() ?? BUILDER_USER.uid;
  const gid = process.getgid?.() ?? BUILDER_USER.uid;
  return uid === 0 ? { uid: BUILDER_USER.uid, gid: BUILDER_USER.uid } : { uid, gid };
}

/** Host path of a mount: cache mounts live under the cache root. */
export function hostPathOf(mount: Pick<Mount, "host" | "hostIsAbsolute">, cacheRoot: string): string {
  return mount.hostIsAbsolute ? mount.host : join(cacheRoot, mount.host);
}

/**
 * Create the writable cache directories of a plan's mounts and give them to the container user, so builds never
 * need root. Existing directories already owned by that user are left alone (no recursive walk of a large cache).
 */
export async function prepareCacheDirs(mounts: readonly Mount[], cacheRoot: string): Promise<void> {
  const user = containerUser();
  const asRoot = process.getuid?.() === 0;
  for (const mount of mounts) {
    if (mount.readOnly || mount.hostIsAbsolute) continue;
    const dir = hostPathOf(mount, cacheRoot);
    await mkdir(dir, { recursive: true });
    if (asRoot) {
      const info = await stat(dir);
      if (info.uid !== user.uid) await chown(dir, user.uid, user.gid);
    }
  }
}

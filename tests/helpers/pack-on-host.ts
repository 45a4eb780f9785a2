/**
 * Packs a tarball from a directory of this machine the way the factory packs one in its build container: the same
 * packInContainer (templates/pack-tree.py, GNU tar, the compressor), run here through LocalContainer, writing
 * straight into the output directory. Tests and benchmarks make their tarballs with it: there is one packer.
 */
import { mkdtemp, realpath, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { packInContainer, type ContainerPackOptions } from "../../src/package/container-pack.js";
import type { PackResult } from "../../src/package/pack-rules.js";
import { LocalContainer } from "./local-container.js";

export type HostPackOptions = Omit<ContainerPackOptions, "container" | "workDir" | "sharedOutDir"> & {
  /** The runner of the packer's commands (default a new LocalContainer). */
  container?: LocalContainer;
};

export async function packOnHost(options: HostPackOptions): Promise<PackResult> {
  const work = await mkdtemp(join(tmpdir(), "sf-pack-on-host-"));
  try {
    const outDir = resolve(options.outDir);
    return await packInContainer({
      ...options,
      container: options.container ?? new LocalContainer(),
      // The view's real path: the packer refuses a symlink, as it refuses one in the container.
      view: await realpath(options.view),
      outDir,
      workDir: join(work, "pack"),
      sharedOutDir: outDir,
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** A target's build container made ready: started as the build user, with its files, registry files and gpg home. */
import { posix } from "node:path";
import { LABEL, startContainer, type BuildContainer } from "../docker/index.js";
import { BuildError } from "../errors.js";
import { CONTAINER } from "../plan/paths.js";
import type { TargetPlan } from "../plan/types.js";
import { hostPathOf } from "./host-caches.js";
import { ensurePasswdEntry } from "./passwd-entry.js";
import { putRegistryFiles } from "./registry-files.js";
import type { TargetRunOptions } from "./run-target.js";
import { prepareGnupgHome } from "../sign/container-key.js";

/** The build user (uid and gid) every step runs as. */
export interface ContainerUser {
  uid: number;
  gid: number;
}

/** Starts the container; `started` gets it at once, so that a failure while preparing it still removes it. */
export async function startTargetContainer(
  plan: TargetPlan,
  options: TargetRunOptions,
  user: ContainerUser,
  started: (container: BuildContainer) => void,
): Promise<BuildContainer> {
  const { signal } = options;
  const target = plan.target;
  const container = await startContainer(options.engine, {
    image: options.image,
    env: { ...plan.env, ...options.extraEnv },
    mounts: plan.mounts.map((m) => ({
      host: hostPathOf(m, options.cacheRoot),
      container: m.container,
      readOnly: m.readOnly,
    })),
    user: `${user.uid}:${user.gid}`,
    labels: { "stack-factory.target": target, ...(options.keepContainer === true ? { [LABEL.keep]: "1" } : {}) },
    workingDir: CONTAINER.workRoot,
    ...(options.cpus === undefined ? {} : { cpus: options.cpus }),
    ...(options.memory === undefined ? {} : { memory: options.memory }),
    tmpfs: [
      ...(plan.signing === undefined ? [] : [plan.signing.tmpfs]),
      ...(plan.registryFiles === undefined ? [] : [plan.registryFiles.tmpfs]),
    ],
    signal,
  });
  started(container);
  await ensurePasswdEntry(container, user, signal);
  // One call per directory, so that each directory is made by the build user and the files are theirs.
  for (const [dir, files] of byDirectory(plan.files)) await container.putFiles(dir, files, user);
  if (plan.registryFiles !== undefined) await putRegistryFiles(container, plan.registryFiles, signal);
  if (plan.signing !== undefined) {
    if (options.signingKey === undefined)
      throw new BuildError(
        `target ${target}: the plan signs with ${plan.signing.fingerprint}, but no signing key was given`,
      );
    await prepareGnupgHome(container, plan.signing, signal);
  }
  return container;
}

function byDirectory(files: Record<string, string>): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  for (const [path, content] of Object.entries(files)) {
    const dir = posix.dirname(path);
    out.set(dir, { ...out.get(dir), [posix.basename(path)]: content });
  }
  return out;
}

import { stringify } from "yaml";
import type { Stack } from "../config/types.js";
import { environmentConfig, repoMountPath, type RepoConfig, type SpackPaths } from "../spack/contract.js";
import { CONTAINER, INSTALL_PADDED_LENGTH } from "./paths.js";

/**
 * Where Spack keeps everything in a target's build container; `gnupgHome` (a tmpfs of the container) only for a
 * signed buildcache.
 */
export function targetSpackPaths(viewRoot: string, gnupgHome: string | undefined): SpackPaths {
  return {
    spack: `${CONTAINER.spack}/bin/spack`,
    envDir: CONTAINER.envDir,
    installRoot: CONTAINER.installRoot,
    paddedLength: INSTALL_PADDED_LENGTH,
    viewRoot,
    sourceCache: CONTAINER.sourceCache,
    userCache: CONTAINER.userCache,
    buildcache: CONTAINER.buildcache,
    ccache: CONTAINER.ccache,
    ...(gnupgHome === undefined ? {} : { gnupgHome }),
  };
}

/** The environment of a compiler Spack builds: the same install tree and caches, its own directory and view. */
export function compilerSpackPaths(paths: SpackPaths): SpackPaths {
  return { ...paths, envDir: CONTAINER.compilerEnvDir, viewRoot: CONTAINER.compilerView };
}

/** The spack.yaml files of one target: the stack's environment and, when Spack builds the compiler, the compiler's. */
export interface TargetEnvironments {
  spackYaml: string;
  compilerYaml?: string;
}

export function targetEnvironments(
  stack: Stack,
  target: { name: string; family: string },
  paths: { stack: SpackPaths; compiler: SpackPaths },
  signed: boolean,
): TargetEnvironments {
  const shared = {
    packages: stack.packages,
    repos: reposOf(stack),
    mirrors: mirrorsOf(stack),
    ...(signed ? { signed: true } : {}),
  };
  const compilerSpec = stack.compiler.kind === "spack" ? stack.compiler.spec : undefined;
  const spackYaml = yaml(
    environmentConfig(paths.stack, { ...shared, specs: stack.specs, target: target.name, compilerSpec }),
  );
  if (compilerSpec === undefined) return { spackYaml };
  const compilerYaml = yaml(
    environmentConfig(paths.compiler, {
      ...shared,
      packages: {},
      specs: [compilerSpec],
      target: target.family,
      compilerSpec: undefined,
      viewLinkType: "symlink",
    }),
  );
  return { spackYaml, compilerYaml };
}

function yaml(config: unknown): string {
  return stringify(config, { lineWidth: 0 });
}

/** Extra mirrors by name: a local directory is mounted under the container's mirrors, a URL is used as it is. */
function mirrorsOf(stack: Stack): Record<string, string> {
  const mirrors: Record<string, string> = {};
  for (const name of Object.keys(stack.spack.mirrors).sort()) {
    const url = stack.spack.mirrors[name] as string;
    mirrors[name] = url.startsWith("/") ? `${CONTAINER.mirrors}/${name}` : url;
  }
  return mirrors;
}

function reposOf(stack: Stack): RepoConfig {
  return {
    generation: stack.spack.generation,
    ...(stack.spack.builtin === undefined ? {} : { builtin: CONTAINER.builtinRepo }),
    extra: stack.spack.repos.map(({ namespace }) => ({ namespace, path: repoMountPath(CONTAINER.repos, namespace) })),
  };
}

/**
 * The factory's whole contract with Spack: every command line and every configuration key it relies on.
 *
 * Written against current Spack (v1.x) and kept working with v0.22+. Only documented commands and flags:
 *   spack -e DIR compiler find [PATH...]
 *   spack -e DIR external find --not-buildable PKG...
 *   spack -e DIR concretize --force
 *   spack -e DIR fetch
 *   spack -e DIR install --fail-fast --use-buildcache auto -j N
 *   spack -e DIR buildcache push --unsigned --update-index MIRROR
 *   spack -e DIR env view regenerate
 *   spack -e DIR find --json
 * Environments are always driven with `-e DIR` (never `spack env activate`, which exits 0 when it fails without
 * shell support). Nothing prompts: no command here asks a question on stdin.
 * The test stand-in (tests/fixtures/spack-standin/bin/spack) implements exactly this surface.
 */

/** Where things live inside a build container. */
export interface SpackPaths {
  /** The Spack executable (`<checkout>/bin/spack`). */
  spack: string;
  /** The environment directory holding spack.yaml. */
  envDir: string;
  installRoot: string;
  /** Padded length of install prefixes (`config:install_tree:padded_length`). */
  paddedLength: number;
  viewRoot: string;
  sourceCache: string;
  /** `SPACK_USER_CACHE_PATH`: Spack's misc cache (`cache/`) and bootstrap store (`bootstrap/`) live under it. */
  userCache: string;
  /** The factory's buildcache (a filesystem mirror). */
  buildcache: string;
  ccache: string;
}

/**
 * A view's `root` is a symlink to `<dir>/._<name>/<hash>`, where Spack builds it (atomic regeneration); a copy view's
 * files name that real path. This is the length of `<hash>`.
 */
export const VIEW_HASH_LENGTH = 32;

/** Build log files worth keeping from a failed package's stage directory. */
export const STAGE_LOG_FILES =
  /^(spack-build-out\.txt|spack-build-env\.txt|spack-configure-args\.txt|spack-build-\d+-[\w-]+-out\.txt|config\.log|CMakeError\.log|CMakeOutput\.log)$/;

/** Name of the factory's own buildcache mirror in every environment. */
export const BUILDCACHE_MIRROR = "stack-factory";

const env = (p: SpackPaths, ...args: string[]): string[] => [p.spack, "-e", p.envDir, ...args];

export const spackCommands = {
  /** Register the OS compiler (no paths) or a bootstrapped compiler found under `paths`. */
  compilerFind: (p: SpackPaths, paths: string[] = []): string[] => env(p, "compiler", "find", ...paths),
  externalFind: (p: SpackPaths, packages: string[]): string[] =>
    env(p, "external", "find", "--not-buildable", ...packages),
  concretize: (p: SpackPaths): string[] => env(p, "concretize", "--force"),
  /** Fetch the sources of every spec of the environment into the source cache. */
  fetch: (p: SpackPaths): string[] => env(p, "fetch"),
  install: (p: SpackPaths, jobs: number): string[] =>
    env(p, "install", "--fail-fast", "--use-buildcache", "auto", "-j", String(jobs)),
  push: (p: SpackPaths): string[] => env(p, "buildcache", "push", "--unsigned", "--update-index", BUILDCACHE_MIRROR),
  viewRegenerate: (p: SpackPaths): string[] => env(p, "env", "view", "regenerate"),
  findJson: (p: SpackPaths): string[] => env(p, "find", "--json"),
} as const;

/** Environment variables of every build container. */
export function spackEnvironment(p: SpackPaths): Record<string, string> {
  return {
    SPACK_USER_CACHE_PATH: p.userCache,
    // Keep ~/.spack of whoever runs the container out of the build.
    SPACK_DISABLE_LOCAL_CONFIG: "1",
    CCACHE_DIR: p.ccache,
  };
}

export interface EnvironmentInput {
  specs: string[];
  target: string;
  /** Spec of a bootstrapped compiler to prefer (`gcc@13.3.0`), or undefined for the OS compiler. */
  compilerSpec: string | undefined;
  /** The stack's own `packages:` section. */
  packages: Record<string, unknown>;
  /** Extra package repositories (container paths). */
  repos: string[];
  /** Extra mirrors (name → container path or URL). */
  mirrors: Record<string, string>;
  jobs: number;
  /** `copy` (default) for the shipped view; `symlink` for views used only inside the build (the compiler's). */
  viewLinkType?: "copy" | "symlink";
}

/** The environment's spack.yaml, as an object ready for `yaml.stringify`. Key order is fixed for stable output. */
export function environmentConfig(p: SpackPaths, input: EnvironmentInput): { spack: Record<string, unknown> } {
  const packages = structuredClone(input.packages) as Record<string, Record<string, unknown>>;
  const all = { ...(packages["all"] ?? {}) };
  // A requirement, not the `target:` preference: the concretizer may not fall back to the host's microarchitecture.
  all["require"] = [...toList(all["require"]), `target=${input.target}`];
  if (input.compilerSpec !== undefined) all["prefer"] = [...toList(all["prefer"]), `%${input.compilerSpec}`];
  packages["all"] = all;

  const mirrors: Record<string, unknown> = {
    [BUILDCACHE_MIRROR]: { url: `file://${p.buildcache}`, signed: false },
  };
  for (const [name, url] of Object.entries(input.mirrors)) {
    mirrors[name] = { url: url.startsWith("/") ? `file://${url}` : url, signed: false };
  }

  const spack: Record<string, unknown> = {
    specs: [...input.specs],
    concretizer: { unify: true, reuse: true },
    config: {
      install_tree: { root: p.installRoot, padded_length: p.paddedLength },
      source_cache: p.sourceCache,
      misc_cache: `${p.userCache}/cache`,
      build_jobs: input.jobs,
      ccache: true,
    },
    packages,
    mirrors,
    view: { default: { root: p.viewRoot, link_type: input.viewLinkType ?? "copy" } },
  };
  if (input.repos.length > 0) spack["repos"] = [...input.repos];
  return { spack };
}

function toList(value: unknown): unknown[] {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}

/**
 * What `spack install` says about each package, as printed to its log: a package built from source ends with
 * "Successfully installed <name>-<version>-<hash>", one taken from a buildcache with
 * "Extracting <name>-<version>-<hash> from binary cache".
 */
export const installLogPatterns = {
  built: /Successfully installed (\S+)/g,
  fromCache: /Extracting (\S+) from binary cache/g,
} as const;

/** Packages built and packages installed from a buildcache, from an install log (each listed once). */
export function summariseInstallLog(log: string): { built: string[]; fromCache: string[] } {
  const collect = (pattern: RegExp): string[] => [...new Set([...log.matchAll(pattern)].map((m) => m[1] as string))];
  return { built: collect(installLogPatterns.built), fromCache: collect(installLogPatterns.fromCache) };
}

/**
 * Where a failed build's logs are: Spack ends a build failure with "See build log for details:" and the path of
 * `spack-build-out.txt` in the package's stage directory (inside the container unless mounted).
 */
export function failedStageDirs(log: string): string[] {
  const dirs = [...log.matchAll(/(\/\S*\/spack-stage-[^/\s]+)\/spack-build-out\.txt/g)].map((m) => m[1] as string);
  return [...new Set(dirs)];
}

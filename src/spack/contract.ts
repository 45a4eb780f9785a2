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
 *   spack -e DIR buildcache push --key FINGERPRINT --update-index MIRROR   (signed builds: the mirror is `signed: true`)
 *   spack gpg trust KEYFILE   (signed builds: the public key, into $SPACK_GNUPGHOME, never the read-only checkout's)
 *   spack -e DIR env view regenerate
 *   spack -e DIR find --json
 *   spack -e DIR mirror create -d DIR --all          (kit create: a source mirror of the environment's specs)
 *   spack bootstrap mirror --binary-packages DIR     (kit create: clingo, gnupg, patchelf for offline hosts)
 *   spack.yaml `bootstrap: {sources, trusted}`       (builds from a kit: what `spack bootstrap add --trust` records)
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
  /** `SPACK_GNUPGHOME` of signed builds: the gpg home Spack signs pushes and checks buildcache signatures with. */
  gnupgHome?: string;
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

/** An `install` command of spackCommands with another job count (`-j` on the command line wins over build_jobs). */
export function withInstallJobs(argv: readonly string[], jobs: number): string[] {
  const at = argv.indexOf("-j");
  if (at < 0 || argv[at + 1] === undefined) throw new Error(`withInstallJobs: no -j in ${JSON.stringify(argv)}`);
  return [...argv.slice(0, at + 1), String(jobs), ...argv.slice(at + 2)];
}

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
  /** Push to the factory's buildcache: unsigned, or signed with the key of this fingerprint. */
  push: (p: SpackPaths, key?: string): string[] =>
    env(
      p,
      "buildcache",
      "push",
      ...(key === undefined ? ["--unsigned"] : ["--key", key]),
      "--update-index",
      BUILDCACHE_MIRROR,
    ),
  /** Trust a public key for buildcache signatures (imported into `$SPACK_GNUPGHOME`). Not an environment command. */
  gpgTrust: (p: SpackPaths, keyFile: string): string[] => [p.spack, "gpg", "trust", keyFile],
  viewRegenerate: (p: SpackPaths): string[] => env(p, "env", "view", "regenerate"),
  findJson: (p: SpackPaths): string[] => env(p, "find", "--json"),
  /** A source mirror of every concrete spec of the environment (`_source-cache/archive/…`), for a kit. */
  mirrorCreate: (p: Pick<SpackPaths, "spack" | "envDir">, dir: string): string[] => [
    p.spack,
    "-e",
    p.envDir,
    ...["mirror", "create", "-d", dir, "--all"],
  ],
  /** Spack's bootstrap mirror with pre-built clingo, gnupg and patchelf, for a kit. Not an environment command. */
  bootstrapMirror: (p: Pick<SpackPaths, "spack">, dir: string): string[] => [
    p.spack,
    ...["bootstrap", "mirror", "--binary-packages", dir],
  ],
} as const;

/**
 * The `bootstrap:` section that `spack bootstrap add --trust NAME METADATA_DIR` records: Spack bootstraps clingo
 * (and gnupg, patchelf) from that source, trusted, before its defaults on the network.
 */
export function bootstrapSourceConfig(name: string, metadataDir: string): Record<string, unknown> {
  return { sources: [{ name, metadata: metadataDir }], trusted: { [name]: true } };
}

/** Environment variables of every build container. */
export function spackEnvironment(p: SpackPaths): Record<string, string> {
  return {
    SPACK_USER_CACHE_PATH: p.userCache,
    // Keep ~/.spack of whoever runs the container out of the build.
    SPACK_DISABLE_LOCAL_CONFIG: "1",
    CCACHE_DIR: p.ccache,
    ...(p.gnupgHome === undefined ? {} : { SPACK_GNUPGHOME: p.gnupgHome }),
  };
}

export interface EnvironmentInput {
  specs: string[];
  target: string;
  /** Spec of a bootstrapped compiler to prefer (`gcc@13.3.0`), or undefined for the OS compiler. */
  compilerSpec: string | undefined;
  /** The stack's own `packages:` section. */
  packages: Record<string, unknown>;
  /** Package repositories as configured (see `reposConfig`). */
  repos: RepoConfig;
  /** Extra mirrors (name → container path or URL). */
  mirrors: Record<string, string>;
  /** `copy` (default) for the shipped view; `symlink` for views used only inside the build (the compiler's). */
  viewLinkType?: "copy" | "symlink";
  /** The factory's buildcache is signed: pushes sign, installs check signatures (`signed: true`). */
  signed?: boolean;
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
    [BUILDCACHE_MIRROR]: { url: `file://${p.buildcache}`, signed: input.signed === true },
  };
  for (const [name, url] of Object.entries(input.mirrors)) {
    mirrors[name] = { url: url.startsWith("/") ? `file://${url}` : url, signed: false };
  }

  const spack: Record<string, unknown> = {
    specs: [...input.specs],
    // Spack's default `host_compatible: true` allows only targets the build host can run: a factory builds for
    // other CPUs than its own.
    concretizer: { unify: true, reuse: true, targets: { host_compatible: false } },
    config: {
      install_tree: { root: p.installRoot, padded_length: p.paddedLength },
      source_cache: p.sourceCache,
      misc_cache: `${p.userCache}/cache`,
      // Never dirty, whatever a site or user scope says: a dirty build skips Spack's clean_environment(), and package
      // builds would inherit the install process's environment, the registry credentials (`*_ROOT`) with it.
      dirty: false,
      // No build_jobs: the install steps give `-j`, and spack.yaml feeds the concretization key, which build
      // parallelism (cores / containers at once) must not change.
      ccache: true,
    },
    packages,
    mirrors,
    view: { default: { root: p.viewRoot, link_type: input.viewLinkType ?? "copy" } },
  };
  const repos = reposConfig(input.repos);
  if (repos !== undefined) spack["repos"] = repos;
  return { spack };
}

export interface RepoConfig {
  generation: "v0" | "v1";
  /** Container path of the builtin repository (the directory holding its repo.yaml); v1 only. */
  builtin?: string;
  /** Extra repositories: namespace and container path (ending `spack_repo/<namespace>`). */
  extra: { namespace: string; path: string }[];
}

/**
 * The `repos:` section. Spack takes a package from the first repository of the merged `repos:` configuration that
 * has it (highest scope first, top to bottom within a scope), so the stack's repositories come first, in the order
 * the stack lists them, and builtin last: a site's recipe under a builtin name overrides builtin's.
 * Spack v1.x: a map, with `builtin` naming a local path, so that Spack never clones spack-packages during a build (a
 * list merged with the defaults leaves builtin to be cloned from GitHub); the environment's keys come before the
 * defaults' when Spack merges them, so builtin stays last. Package API v2 repositories must sit at
 * `…/spack_repo/<namespace>`. Spack 0.2x: the list form, builtin is in the checkout and its defaults' list
 * (`$spack/var/spack/repos/builtin`) is appended after the environment's.
 */
export function reposConfig(repos: RepoConfig): Record<string, string> | string[] | undefined {
  if (repos.generation === "v0") return repos.extra.length > 0 ? repos.extra.map((r) => r.path) : undefined;
  const out: Record<string, string> = {};
  for (const r of repos.extra) out[r.namespace] = r.path;
  if (repos.builtin !== undefined) out["builtin"] = repos.builtin;
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Container path where a repository of this namespace is mounted: Package API v2 needs `…/spack_repo/<ns>`. */
export function repoMountPath(root: string, namespace: string): string {
  return `${root}/spack_repo/${namespace}`;
}

function toList(value: unknown): unknown[] {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}

/**
 * What `spack install` says about each package, as printed to its log. Every package it installs ends with
 * "<name>: Successfully installed <name>-<version>-<hash>", whether built from source or taken from a buildcache;
 * one taken from a buildcache is first announced with "Extracting <name>-<version>-<hash> from binary cache"
 * (both lines, in v0.23 and v1.x). So "Successfully installed" alone does not mean "built".
 */
export const installLogPatterns = {
  installed: /Successfully installed (\S+)/g,
  fromCache: /Extracting (\S+) from binary cache/g,
} as const;

/** Packages built from source and packages installed from a buildcache, from an install log (each listed once). */
export function summariseInstallLog(log: string): { built: string[]; fromCache: string[] } {
  const collect = (pattern: RegExp): string[] => [...new Set([...log.matchAll(pattern)].map((m) => m[1] as string))];
  const fromCache = collect(installLogPatterns.fromCache);
  const cached = new Set(fromCache);
  return { built: collect(installLogPatterns.installed).filter((p) => !cached.has(p)), fromCache };
}

/**
 * What `buildcache push` says it uploaded, one line per package: "[i/n] Pushed <name>@<version>/<hash:7>" (v0.23 and
 * v1.x; an OCI push adds ": sha256:… (…)"). Packages already in the buildcache get no such line.
 */
export const pushLogPattern = /Pushed ([^\s@]+)@(\S+?)\/([a-z0-9]{7})(?![a-z0-9])/g;

/** The packages (`name@version/hash7`) a push log says were uploaded, each once. */
export function pushedPackages(log: string): string[] {
  return [...new Set([...log.matchAll(pushLogPattern)].map((m) => `${m[1]}@${m[2]}/${m[3]}`))];
}

/**
 * Of the packages built (`name-version-hash`, as summariseInstallLog lists them), those a push in the log uploaded:
 * what a failed build kept in the buildcache.
 */
export function keptPackages(built: readonly string[], log: string): string[] {
  // `zlib@1.3.1/abcdefg` is `zlib-1.3.1-abcdefg` and 25 more characters of the 32 of the hash.
  const prefixes = pushedPackages(log).map((p) => p.replace(/^([^@]+)@(.+)\/([a-z0-9]{7})$/, "$1-$2-$3"));
  return built.filter((b) => prefixes.some((p) => b.startsWith(p) && b.length === p.length + 25));
}

/**
 * Where a failed build's logs are: Spack ends a build failure with "See build log for details:" and the path of
 * `spack-build-out.txt` in the package's stage directory (inside the container unless mounted).
 */
export function failedStageDirs(log: string): string[] {
  const dirs = [...log.matchAll(/(\/\S*\/spack-stage-[^/\s]+)\/spack-build-out\.txt/g)].map((m) => m[1] as string);
  return [...new Set(dirs)];
}

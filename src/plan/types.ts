import type { BuildcacheLocation } from "../config/factory.js";
import type { Origin } from "../config/types.js";

/**
 * A build plan is pure data: everything a run needs, computed from a stack and its targets without I/O.
 * `planBuild(stack, targets)` makes it; the build engine (src/build) carries it out.
 */
export interface BuildPlan {
  /** Version of the plan's shape (plan.json): bumped when a field changes meaning or goes. */
  format_version: number;
  stack: { name: string; version: string; file: string; description: string };
  builder: ImagePlan;
  /** Where Spack comes from: cloned into the cache at a pinned ref, or a local checkout mounted read-only. */
  spack: Origin;
  /** Spack v1.x's builtin packages (spack-packages): cloned into the cache at a pinned ref, or a local checkout. */
  builtin?: Origin;
  /** What packing needs beside the build (absent in warm plans). */
  package?: PackagePlan;
  targets: TargetPlan[];
  /** Where it runs: each target as it runs on each engine that may build it (see PlanPlacement). */
  placement?: PlanPlacement;
}

/**
 * A plan placed on the engines it runs on, made when it is planned: per target and engine the final argument
 * vectors, mounts, locks, files and `spack.yaml`. What only the run can know is named, not guessed: the secrets'
 * values (by name: `registry-credentials`), where trees sent to engines of other hosts land (`Mount.sent`), and the
 * run's own staging directory in the output directory.
 */
export interface PlanPlacement {
  /** The factory that placed it: a plan runs only on the same (`version` and a digest of its code and templates). */
  factory: { version: string; digest: string };
  /** The factory's own cache root (locks, logs, run records), on this host. */
  cacheRoot: string;
  /** Build jobs per container the plan was made with (engines sized by their own cores say theirs). */
  jobs: number;
  engines: PlannedEngine[];
  /** The buildcache every engine shares (absent: under each engine's cache root). */
  buildcache?: BuildcacheLocation;
  /** The CA (PEM) the registry's certificate is signed by, trusted by the build containers (not a secret). */
  registryCa?: string;
  /** Names of the secrets the run reads (from the factory settings) as its targets start. */
  secrets: string[];
  /** Target name → engine name → the target as it runs on that engine. */
  targets: Record<string, Record<string, TargetPlan>>;
}

/** An engine a plan was placed on, as it answered when the plan was made. */
export interface PlannedEngine {
  name: string;
  /** Its address (`unix:///var/run/docker.sock`, `ssh://builder@host`, ...). */
  where: string;
  /** As the engine reports it (amd64, arm64), or `any` for the one engine of a run without settings. */
  arch: string;
  /** Its cache root, on its host. */
  cacheRoot: string;
  concurrency: number;
  /** Build jobs per container there, when sized by its own cores. */
  jobs?: number;
  /** An engine of this host (it can pack straight into the output directory). */
  local: boolean;
  /** How its concurrency and jobs were chosen, for the run's messages. */
  sizing?: string;
}

export interface PackagePlan {
  /** Lmod module name (`modules/<moduleName>/<version>.lua`). */
  moduleName: string;
  /** The stack's own module environment variables. */
  moduleEnv: Record<string, string>;
  /** Default install prefix on the cluster. */
  prefix: string;
  /** Host paths of stack-supplied files, shipped under data/<name>_assets/. */
  assets: string[];
  /** Compiler, as a string for the manifest (`os (gcc, g++)` or `gcc@13.3.0`). */
  compiler: string;
  baseImage: string;
  specs: string[];
  /** Container path of the relocation preparation script. */
  prepareScript: string;
}

/** The builder image: a Dockerfile plus the other files of its build context, tagged by their content hash. */
export interface ImagePlan {
  /** `stack-factory/builder:<sha256 of the context, 16 hex>`: an unchanged recipe reuses the image. */
  tag: string;
  baseImage: string;
  /** Build context: relative path → file content. Always contains `Dockerfile`. */
  files: Record<string, string>;
}

/**
 * What a mount carries: a cache directory of the cache root (`cache/layout.ts` CacheKind names those) or a tree
 * of this host the builds read (checkouts, repositories, mirrors).
 */
export type MountKind =
  | "buildcache"
  | "source"
  | "spack-user"
  | "ccache"
  | "spack"
  | "spack-packages"
  | "repo"
  | "mirror"
  /** The run's staging directory in the output directory (packing straight into it, engines of this host). */
  | "output";

export interface Mount {
  kind: MountKind;
  /**
   * Host side. For caches: a path relative to the cache root (`buildcache/<key>`). For user-supplied
   * checkouts, repos and mirrors: an absolute host path.
   */
  host: string;
  hostIsAbsolute: boolean;
  container: string;
  readOnly: boolean;
  /**
   * A tree of this host that an engine of another host mounts from the copy sent under its cache root: `host` names
   * the tree here; the copy's path (a digest of what it holds) is known when it is sent.
   */
  sent?: boolean;
}

/** One command run in the target's build container, as an argument vector (never a shell string). */
export interface Step {
  id: StepId;
  title: string;
  argv: string[];
  /** When set, the step's stdout is saved to this file name under the target's output directory. */
  captureStdout?: string;
  /**
   * A host lock (name under the cache root's `locks/`) held while the step runs: serialises steps of concurrent
   * targets and factory processes that would race on a shared cache.
   */
  lock?: string;
  /** A failure of this step is logged and the build goes on (the next step reports the real problem). */
  optional?: boolean;
  /**
   * The step signs with the secret key (signed buildcache pushes): the key is put into the target's gpg home on its
   * tmpfs just before the step and removed right after it. Only the key's fingerprint is in the plan.
   */
  secretKey?: boolean;
  /**
   * Runs only when that step failed, right after it, and never otherwise: keeps what the failed step finished (a
   * push of the packages installed before an install failed). Its own exit code is recorded and logged; the target
   * fails with the first failure either way.
   */
  afterFailureOf?: StepId;
}

export type StepId =
  | "trust"
  | "compiler-install"
  | "compiler-keep"
  | "compiler-push"
  | "compiler-view"
  | "compiler"
  | "externals"
  | "concretize"
  | "fetch"
  | "install"
  | "keep"
  | "push"
  | "view"
  | "find"
  | "mirror"
  | "bootstrap-mirror";

export interface TargetPlan {
  target: string;
  family: string;
  /** Directory of the Spack environment inside the container. */
  envDir: string;
  /** Files written into the container before the steps run: container path → content. */
  files: Record<string, string>;
  /** The environment's spack.yaml (also in `files`). */
  spackYaml: string;
  /** Environment variables of the build container. */
  env: Record<string, string>;
  steps: Step[];
  mounts: Mount[];
  /** Cache key of the buildcache this target reads and writes (base image, compiler, padded length). */
  buildcacheKey: string;
  /** Container paths the engine reads back. */
  paths: { installRoot: string; viewRoot: string; buildPrefix: string };
  outputs: {
    /** `<name>-<version>-<target>`: the tarball's top directory and file name (before its extension). */
    dirName: string;
  };
  /** The tarball's files that depend on the plan alone (absent in warm plans), rendered at plan time. */
  packageFiles?: PackageFiles;
  /** A signed buildcache: the signing key's fingerprint and where its gpg home lives (on a tmpfs of its own). */
  signing?: TargetSigning;
  /** What the build container needs to talk to the registry (placement adds it; secrets by name only). */
  registryFiles?: TargetRegistryFiles;
}

/**
 * Files written on a tmpfs of the build container before its first step (mode 0600, owned by the build user,
 * through the exec's stdin): never in the container's file system, an image layer or `docker diff`.
 */
export interface TargetRegistryFiles {
  /** Container path of the tmpfs mount. */
  tmpfs: string;
  /** Container path → content. */
  files: Record<string, string>;
  /** Container path → the name of a secret whose value is written there when the target runs (never in a plan). */
  secrets?: Record<string, string>;
  /** When set, the image's system CAs and the site's CA (one of `files`) are joined at `path` (SSL_CERT_FILE). */
  caBundle?: { path: string; siteCa: string };
}

export interface TargetSigning {
  fingerprint: string;
  /** Container path of the tmpfs mount (nothing on it outlives the container or reaches an image layer). */
  tmpfs: string;
  /** `SPACK_GNUPGHOME`, on that tmpfs. */
  gnupgHome: string;
}

/** install.sh and the modules of one target (Lmod, Tcl: those the stack asks for); the packer places them. */
export interface PackageFiles {
  installScript: string;
  modules: Partial<Record<"lmod" | "tcl", string>>;
}

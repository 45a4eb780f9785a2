import { createHash } from "node:crypto";
import { CACHE_LAYOUT, LOCKS } from "../cache/layout.js";
import { DEFAULT_OS_COMPILER_PACKAGES } from "../config/schema.js";
import type { Origin, Stack } from "../config/types.js";
import { InputError } from "../errors.js";
import { renderInstallScript } from "../render/install-script.js";
import { renderModule } from "../render/module.js";
import { render, type Templates } from "../render/templates.js";
import { repoMountPath, spackEnvironment, VIEW_HASH_LENGTH } from "../spack/contract.js";
import { compilerCanTarget, getMicroarch, osCompiler } from "../targets/index.js";
import { planSteps } from "./build-steps.js";
import { BUILD_PREFIX_MIN_LENGTH, BUILDER_USER, CONTAINER, INSTALL_PADDED_LENGTH } from "./paths.js";
import {
  compilerSpackPaths,
  targetEnvironments,
  targetSpackPaths,
  type TargetEnvironments,
} from "./spack-environments.js";
import type { BuildPlan, ImagePlan, Mount, PackageFiles, PackagePlan, TargetPlan } from "./types.js";

export interface PlanOptions {
  templates: Templates;
  /** Parallel build jobs inside each container (`spack install -j`). */
  jobs: number;
  /** "warm" only fills the buildcache: no view, nothing recorded for packing. Default "build". */
  mode?: "build" | "warm";
  /**
   * A signed buildcache: pushes are signed with this key, installs check signatures with its public part, and the
   * buildcache key names the fingerprint (signed and unsigned entries never share a buildcache). Public data only.
   */
  signing?: { fingerprint: string; publicKey: string };
}

/** Where a signed build keeps its gpg home: a tmpfs of the container, never its file system or an image layer. */
export const SIGNING_PATHS = {
  tmpfs: "/sf/keys",
  gnupgHome: "/sf/keys/gnupg",
  /** The public key that `spack gpg trust` reads (public: an ordinary file). */
  publicKey: "/sf/signing/public.asc",
} as const;

/** What every builder image installs besides the compiler: Spack's own needs and the factory's tools. */
export const BUILDER_PACKAGES = [
  "binutils",
  "bzip2",
  "ca-certificates",
  "ccache",
  "file",
  "git",
  // gpg: signed buildcaches (Spack signs and checks with it).
  "gnupg",
  "libc6-dev",
  "gzip",
  "make",
  "patch",
  "patchelf",
  "pigz",
  "python3",
  "tar",
  "unzip",
  "xz-utils",
  "zstd",
] as const;

/**
 * Turn a stack and the chosen targets into a build plan. Pure: the same input gives the same plan, byte for byte.
 * `targets` defaults to every target of the stack; each must be one of them.
 */
export function planBuild(stack: Stack, targets: readonly string[] | undefined, options: PlanOptions): BuildPlan {
  const chosen = selectTargets(stack, targets);
  const builder = planImage(stack, options.templates);
  return {
    format_version: PLAN_FORMAT_VERSION,
    stack: { name: stack.name, version: stack.version, file: stack.file, description: stack.description },
    builder,
    spack: { ...stack.spack.origin },
    ...(stack.spack.builtin === undefined ? {} : { builtin: { ...stack.spack.builtin } }),
    ...(options.mode === "warm" ? {} : { package: planPackage(stack) }),
    targets: chosen.map((target) => planTarget(stack, target, options)),
  };
}

function selectTargets(stack: Stack, requested: readonly string[] | undefined): string[] {
  const chosen = requested === undefined || requested.length === 0 ? [...stack.targets] : [...new Set(requested)];
  const problems: string[] = [];
  const compiler =
    stack.compiler.kind === "spack"
      ? { name: stack.compiler.name, version: stack.compiler.version }
      : osCompiler(stack.base_image);
  for (const target of chosen) {
    if (!stack.targets.includes(target)) {
      problems.push(`target "${target}" is not in ${stack.file} (targets: ${stack.targets.join(", ")})`);
      continue;
    }
    if (getMicroarch(target) === undefined) {
      problems.push(`unknown microarchitecture "${target}"`);
      continue;
    }
    if (compiler !== undefined) {
      const verdict = compilerCanTarget(target, compiler);
      if (!verdict.ok) problems.push(`target ${target} refused: ${verdict.reason}`);
    }
  }
  if (problems.length > 0) {
    throw new InputError(problems.join("\n"), {
      hint: "choose a compiler that can produce these targets (stack file field `compiler`) or drop the targets",
    });
  }
  return chosen;
}

const PREPARE_SCRIPT = `${CONTAINER.tools}/prepare-relocation.py`;

/** Version of the plan's shape (plan.json). */
export const PLAN_FORMAT_VERSION = 3;

/** install.sh and the module of one target: pure functions of the stack and the target. */
function packageFiles(stack: Stack, target: string, templates: Templates): PackageFiles {
  const moduleInput = {
    stackName: stack.name,
    version: stack.version,
    moduleName: stack.modules.name,
    target,
    defaultPrefix: stack.prefix,
    envVars: { ...stack.modules.env },
    description: stack.description,
    specs: [...stack.specs],
  };
  const systems = stack.modules.systems;
  const modules = {
    ...(systems.includes("lmod") ? { lmod: renderModule(moduleInput, templates.module, "lmod") } : {}),
    ...(systems.includes("tcl") ? { tcl: renderModule(moduleInput, templates.tclModule, "tcl") } : {}),
  };
  const install = renderInstallScript(
    {
      stackName: stack.name,
      version: stack.version,
      target,
      defaultPrefix: stack.prefix,
      moduleName: stack.modules.name,
      moduleSystems: [...systems],
      baseImage: stack.base_image,
    },
    templates.installScript,
  );
  return { installScript: install, modules };
}

function planPackage(stack: Stack): PackagePlan {
  return {
    moduleName: stack.modules.name,
    moduleEnv: { ...stack.modules.env },
    prefix: stack.prefix,
    assets: [...stack.assets],
    compiler: stack.compiler.kind === "spack" ? stack.compiler.spec : `os (${stack.compiler.packages.join(", ")})`,
    baseImage: stack.base_image,
    specs: [...stack.specs],
    prepareScript: PREPARE_SCRIPT,
  };
}

export function planImage(stack: Stack, templates: Templates): ImagePlan {
  const compilerPackages = stack.compiler.kind === "os" ? stack.compiler.packages : DEFAULT_OS_COMPILER_PACKAGES;
  const packages = [...new Set([...BUILDER_PACKAGES, ...compilerPackages])].sort();
  const dockerfile = render(templates.dockerfile, {
    baseImage: stack.base_image,
    packages,
    uid: BUILDER_USER.uid,
    user: BUILDER_USER.name,
    workRoot: CONTAINER.workRoot,
    home: CONTAINER.home,
  });
  const files = { Dockerfile: dockerfile };
  return { tag: `stack-factory/builder:${contentHash(files)}`, baseImage: stack.base_image, files };
}

function planTarget(stack: Stack, target: string, options: PlanOptions): TargetPlan {
  const arch = getMicroarch(target);
  if (arch === undefined) throw new InputError(`unknown microarchitecture "${target}"`);
  const dirName = `${stack.name}-${stack.version}-${target}`;
  const viewRoot = buildViewRoot(dirName);
  const signing = options.signing;
  const paths = targetSpackPaths(viewRoot, signing === undefined ? undefined : SIGNING_PATHS.gnupgHome);
  const compilerPaths = compilerSpackPaths(paths);
  const environments = targetEnvironments(
    stack,
    { name: target, family: arch.family },
    { stack: paths, compiler: compilerPaths },
    signing !== undefined,
  );
  const buildcacheKey = buildcacheKeyOf(stack, signing);
  const warm = options.mode === "warm";
  const steps = planSteps({
    stack,
    paths,
    compilerPaths,
    jobs: options.jobs,
    warm,
    pushLock: LOCKS.buildcache(buildcacheKey),
    ...(signing === undefined
      ? {}
      : { signing: { fingerprint: signing.fingerprint, publicKeyPath: SIGNING_PATHS.publicKey } }),
  });
  return {
    target,
    family: arch.family,
    envDir: CONTAINER.envDir,
    files: targetFiles(environments, options),
    spackYaml: environments.spackYaml,
    env: { ...spackEnvironment(paths), HOME: CONTAINER.home },
    steps,
    mounts: planMounts(stack, buildcacheKey),
    buildcacheKey,
    paths: { installRoot: CONTAINER.installRoot, viewRoot, buildPrefix: viewRoot },
    outputs: { dirName },
    ...(warm ? {} : { packageFiles: packageFiles(stack, target, options.templates) }),
    ...(signing === undefined
      ? {}
      : {
          signing: { fingerprint: signing.fingerprint, tmpfs: SIGNING_PATHS.tmpfs, gnupgHome: SIGNING_PATHS.gnupgHome },
        }),
  };
}

/**
 * The files put into a target's container before its steps: the spack.yaml files, the public key a signed buildcache
 * trusts, and (not when warming) the script that prepares the view for packing.
 */
function targetFiles(environments: TargetEnvironments, options: PlanOptions): Record<string, string> {
  const { spackYaml, compilerYaml } = environments;
  return {
    [`${CONTAINER.envDir}/spack.yaml`]: spackYaml,
    ...(options.signing === undefined ? {} : { [SIGNING_PATHS.publicKey]: options.signing.publicKey }),
    ...(compilerYaml === undefined ? {} : { [`${CONTAINER.compilerEnvDir}/spack.yaml`]: compilerYaml }),
    ...(options.mode === "warm" ? {} : { [PREPARE_SCRIPT]: options.templates.prepareRelocation }),
  };
}

/**
 * The view root: one long, distinctive path. Spack builds a view at `<dir>/._<name>/<hash>` and points the root at
 * it; that real path is the build prefix baked into shipped files, so `<dir>` is padded until the real path is at
 * least BUILD_PREFIX_MIN_LENGTH characters: longer than any install prefix it will be replaced with, and impossible
 * to mistake for anything else.
 */
function buildViewRoot(dirName: string): string {
  const head = `${CONTAINER.workRoot}/view/stack-factory-build-prefix`;
  const realTail = `/._${dirName}/${"h".repeat(VIEW_HASH_LENGTH)}`;
  const padding = Math.max(0, BUILD_PREFIX_MIN_LENGTH - head.length - realTail.length);
  return `${head}${"_".repeat(padding)}/${dirName}`;
}

/** Spack does not put padding, base image or OS compiler into its hashes: the buildcache is keyed by them here. */
export function buildcacheKeyOf(stack: Stack, signing?: { fingerprint: string }): string {
  const compiler = stack.compiler.kind === "spack" ? stack.compiler.spec : `os-${stack.compiler.packages.join("+")}`;
  const readable = `${slug(stack.base_image)}_${slug(compiler)}_pad${INSTALL_PADDED_LENGTH}`;
  const key = `${readable}_${contentHash({ base: stack.base_image, compiler, pad: String(INSTALL_PADDED_LENGTH) }).slice(0, 8)}`;
  // A signed buildcache is one key's: its entries never mix with unsigned ones or another key's.
  return signing === undefined ? key : `${key}_signed-${signing.fingerprint.slice(-16)}`;
}

export function spackCheckoutKey(stack: Stack): string | undefined {
  return cloneKey(stack.spack.origin);
}

/** Cache key of a git clone (`<ref>_<hash of url and ref>`); undefined for a local checkout. */
export function cloneKey(origin: Origin | undefined): string | undefined {
  if (origin?.kind !== "git") return undefined;
  return `${slug(origin.ref)}_${contentHash({ url: origin.url, ref: origin.ref }).slice(0, 12)}`;
}

function planMounts(stack: Stack, buildcacheKey: string): Mount[] {
  const origin = stack.spack.origin;
  const checkoutKey = spackCheckoutKey(stack);
  const userCacheKey = checkoutKey ?? contentHash({ path: origin.kind === "local" ? origin.path : "" }).slice(0, 12);
  const cache = (kind: Mount["kind"], host: string, container: string): Mount => ({
    kind,
    host,
    hostIsAbsolute: false,
    container,
    readOnly: false,
  });
  const mounts: Mount[] = [
    origin.kind === "local"
      ? { kind: "spack", host: origin.path, hostIsAbsolute: true, container: CONTAINER.spack, readOnly: true }
      : {
          kind: "spack",
          host: CACHE_LAYOUT.spack(checkoutKey as string),
          hostIsAbsolute: false,
          container: CONTAINER.spack,
          readOnly: true,
        },
    cache("buildcache", CACHE_LAYOUT.buildcache(buildcacheKey), CONTAINER.buildcache),
    cache("source", CACHE_LAYOUT.source, CONTAINER.sourceCache),
    cache("spack-user", CACHE_LAYOUT.spackUser(userCacheKey), CONTAINER.userCache),
    cache("ccache", CACHE_LAYOUT.ccache, CONTAINER.ccache),
  ];
  const builtin = stack.spack.builtin;
  if (builtin?.kind === "local") {
    // The directory holding builtin's repo.yaml, at a path ending spack_repo/builtin.
    mounts.push({
      kind: "spack-packages",
      host: builtin.path,
      hostIsAbsolute: true,
      container: CONTAINER.builtinRepo,
      readOnly: true,
    });
  } else if (builtin?.kind === "git") {
    const key = cloneKey(builtin) as string;
    mounts.push({
      kind: "spack-packages",
      host: CACHE_LAYOUT.spackPackages(key),
      hostIsAbsolute: false,
      container: CONTAINER.spackPackages,
      readOnly: true,
    });
  }
  for (const repo of stack.spack.repos) {
    mounts.push({
      kind: "repo",
      host: repo.path,
      hostIsAbsolute: true,
      container: repoMountPath(CONTAINER.repos, repo.namespace),
      readOnly: true,
    });
  }
  for (const name of Object.keys(stack.spack.mirrors).sort()) {
    const url = stack.spack.mirrors[name] as string;
    if (url.startsWith("/")) {
      mounts.push({
        kind: "mirror",
        host: url,
        hostIsAbsolute: true,
        container: `${CONTAINER.mirrors}/${name}`,
        readOnly: true,
      });
    }
  }
  return mounts;
}

function slug(text: string): string {
  return (
    text
      .replace(/[^A-Za-z0-9._-]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 48) || "x"
  );
}

/** sha256 of a record of files/fields, order-independent, 16 hex characters. */
export function contentHash(record: Record<string, string>): string {
  const hash = createHash("sha256");
  for (const key of Object.keys(record).sort()) {
    hash
      .update(key)
      .update("\0")
      .update(record[key] as string)
      .update("\0");
  }
  return hash.digest("hex").slice(0, 16);
}

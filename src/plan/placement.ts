/**
 * A target's plan as it runs on one engine, made when the run is planned: its cache mounts under that engine's cache root (a path of the engine's
 * host), the buildcache where the factory settings put it (a registry every engine pushes to and installs from, or
 * a path every engine's host sees), and the registry's credentials and CA, when it needs them, in files on a tmpfs
 * of the build container; only the steps talking to the registry read the credentials, which the plan names and
 * `withRunValues` fills in as the target starts. Pure: the plan is not changed, a new one is returned.
 */
import { join, posix } from "node:path";
import { parse, stringify } from "yaml";
import { LOCKS } from "../cache/layout.js";
import type { BuildcacheLocation } from "../config/factory.js";
import { BUILDCACHE_MIRROR, withInstallJobs } from "../spack/contract.js";
import { FactoryError } from "../errors.js";
import { CONTAINER } from "./paths.js";
import type { FactoryIdentity } from "../factory-identity.js";
import { ANY_ARCH, familyOfEngineArch } from "./dispatch.js";
import type {
  BuildPlan,
  Mount,
  PlannedEngine,
  PlanPlacement,
  Step,
  StepId,
  TargetPlan,
  TargetRegistryFiles,
} from "./types.js";

/**
 * Names of the variables Spack reads the registry's credentials from (`access_pair` of the mirror). They end in
 * `_ROOT` on purpose: Spack's `build_environment.clean_environment()` unsets every `*_ROOT` variable (but
 * SPACK_ROOT) in the process a package builds in, so the `spack` process that pulls and pushes has them, and no
 * package build (configure, make, tests, its recorded `spack-build-env.txt`) inherits them.
 */
export const REGISTRY_USERNAME_VARIABLE = "STACK_FACTORY_REGISTRY_USERNAME_ROOT";
export const REGISTRY_PASSWORD_VARIABLE = "STACK_FACTORY_REGISTRY_PASSWORD_ROOT";
/**
 * Where a build container keeps what it needs to talk to the registry: a tmpfs of its own (memory, gone with the
 * container, never in its file system, an image or `docker diff`), files mode 0600 owned by the build user.
 */
export const REGISTRY_PATHS = {
  tmpfs: `${CONTAINER.workRoot}/registry`,
  credentials: `${CONTAINER.workRoot}/registry/registry.env`,
  siteCa: `${CONTAINER.workRoot}/registry/site-ca.pem`,
  /** The image's system CAs and the site's registry CA: the build's `SSL_CERT_FILE`. */
  caBundle: `${CONTAINER.workRoot}/registry/ca-bundle.pem`,
} as const;
/** The name a plan gives the registry's credentials (its value is read from the settings when the target runs). */
export const REGISTRY_CREDENTIALS_SECRET = "registry-credentials";
/** Kept for callers that name the credentials file alone. */
export const REGISTRY_CREDENTIALS_FILE = REGISTRY_PATHS.credentials;

/** Steps that may talk to the buildcache: concretization reuses from it, installs read it, pushes write it. */
const REGISTRY_STEPS: ReadonlySet<StepId> = new Set([
  "compiler-install",
  "compiler-keep",
  "compiler-push",
  "concretize",
  "fetch",
  "install",
  "keep",
  "push",
]);

export interface RegistryCredentials {
  username: string;
  password: string;
}

export interface Placement {
  /** The engine's name (per-engine lock names). */
  engine: string;
  /** Cache root on the engine's host. */
  cacheRoot: string;
  /** The factory's own cache root (locks, logs). A different engine cache root gets its own source-cache lock. */
  factoryCacheRoot: string;
  /** Where the shared buildcache is; undefined: under the engine's cache root, as without settings. */
  buildcache?: BuildcacheLocation;
  /**
   * The settings give the registry's credentials: the plan names them (`registry-credentials`), never their value;
   * `withRunValues` puts them in when the target runs.
   */
  credentials?: boolean;
  /** The CA (PEM) the registry's certificate is signed by, when it is not one the image trusts already. */
  registryCa?: string;
  /**
   * An engine of another host: its content mounts (Spack, spack-packages, repositories, mirrors) are the copies sent
   * under its cache root (see remoteRootNeeds), named by a digest of what they hold when they are sent: the plan
   * marks them `sent` and `withRunValues` names the copy. Absent: the engine sees this host's paths.
   */
  remote?: boolean;
  /** Build jobs per container on this engine (from its own cores); undefined: the plan's. */
  jobs?: number;
}

/** Steps whose `-j` follows the engine's cores. */
const JOB_STEPS: ReadonlySet<StepId> = new Set(["compiler-install", "install"]);

/** What an engine of another host needs under its cache root before a target runs there. */
export interface RemoteRootNeeds {
  /** Writable cache directories, relative to the cache root, that the build user must own. */
  dirs: string[];
  /** Of those, Spack user caches (poisoned package-repository clones are cleared from them). */
  userCaches: string[];
  /** Read-only trees of this host to send there, by the plan's mount host (relative to the factory's cache root, or absolute). */
  contents: { host: string; hostIsAbsolute: boolean; kind: Mount["kind"] }[];
}

/**
 * Pure: what the targets need on an engine of another host. A buildcache at a shared path or in a registry is not
 * the engine's own, and is left out.
 */
export function remoteRootNeeds(targets: readonly TargetPlan[], buildcache?: BuildcacheLocation): RemoteRootNeeds {
  const dirs = new Set<string>();
  const userCaches = new Set<string>();
  const contents = new Map<string, RemoteRootNeeds["contents"][number]>();
  for (const t of targets) {
    for (const m of t.mounts) {
      if (m.kind === "buildcache" && buildcache !== undefined) continue;
      if (m.readOnly) contents.set(m.host, { host: m.host, hostIsAbsolute: m.hostIsAbsolute, kind: m.kind });
      else if (!m.hostIsAbsolute) {
        dirs.add(m.host);
        if (m.kind === "spack-user") userCaches.add(m.host);
      }
    }
  }
  return { dirs: [...dirs].sort(), userCaches: [...userCaches].sort(), contents: [...contents.values()] };
}

/** The registry repository of a buildcache key: the key in the lowercase form OCI names allow. */
export function ociRepositoryOf(location: Extract<BuildcacheLocation, { kind: "oci" }>, key: string): string {
  const component =
    key
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "") || "default";
  return `${location.url}/${component}`;
}

/** What placing a plan takes besides the plan: the engines, what they share, who places it. */
export interface PlanPlacementInputs {
  factory: FactoryIdentity;
  /** The factory's own cache root. */
  cacheRoot: string;
  /** Build jobs per container of the plan. */
  jobs: number;
  engines: readonly PlannedEngine[];
  buildcache?: BuildcacheLocation;
  /** The settings give registry credentials (named in the plan, read when the run starts). */
  credentials: boolean;
  registryCa?: string;
}

/** Whether an engine of that architecture builds targets of the family (the one engine of a plain run builds any). */
export function engineServes(arch: string, family: string): boolean {
  return arch === ANY_ARCH || familyOfEngineArch(arch) === family;
}

/** Pure: each target placed on every engine that may build it; the run picks one when a slot frees. */
export function placePlan(plan: BuildPlan, inputs: PlanPlacementInputs): BuildPlan {
  const { buildcache, registryCa } = inputs;
  const targets: PlanPlacement["targets"] = {};
  for (const t of plan.targets) {
    const on: Record<string, TargetPlan> = {};
    for (const e of inputs.engines) {
      if (!engineServes(e.arch, t.family)) continue;
      on[e.name] = placeTarget(t, {
        engine: e.name,
        cacheRoot: e.cacheRoot,
        factoryCacheRoot: inputs.cacheRoot,
        ...(buildcache === undefined ? {} : { buildcache }),
        ...(inputs.credentials ? { credentials: true } : {}),
        ...(registryCa === undefined ? {} : { registryCa }),
        ...(e.local ? {} : { remote: true }),
        ...(e.jobs === undefined ? {} : { jobs: e.jobs }),
      });
    }
    targets[t.target] = on;
  }
  const needsSecret = inputs.credentials && buildcache?.kind === "oci";
  const placement: PlanPlacement = {
    factory: { ...inputs.factory },
    cacheRoot: inputs.cacheRoot,
    jobs: inputs.jobs,
    engines: inputs.engines.map((e) => ({ ...e })),
    ...(buildcache === undefined ? {} : { buildcache }),
    ...(registryCa === undefined ? {} : { registryCa }),
    secrets: needsSecret ? [REGISTRY_CREDENTIALS_SECRET] : [],
    targets,
  };
  return { ...plan, placement };
}

export function placeTarget(target: TargetPlan, placement: Placement): TargetPlan {
  const location = placement.buildcache;
  const mounts: Mount[] = [];
  for (const m of target.mounts) {
    if (m.kind === "buildcache" && location !== undefined) {
      // A registry needs no mount; a shared path keeps the key as the directory under it.
      if (location.kind === "path")
        mounts.push({ ...m, host: join(location.path, target.buildcacheKey), hostIsAbsolute: true });
      continue;
    }
    if (m.readOnly && placement.remote === true) mounts.push({ ...m, sent: true });
    else
      mounts.push(
        m.hostIsAbsolute ? { ...m } : { ...m, host: join(placement.cacheRoot, m.host), hostIsAbsolute: true },
      );
  }

  const oci = location?.kind === "oci" ? location : undefined;
  const mirror =
    oci === undefined
      ? undefined
      : {
          url: ociRepositoryOf(oci, target.buildcacheKey),
          signed: false,
          binary: true,
          source: false,
          ...(placement.credentials !== true
            ? {}
            : {
                access_pair: { id_variable: REGISTRY_USERNAME_VARIABLE, secret_variable: REGISTRY_PASSWORD_VARIABLE },
              }),
        };
  const files: Record<string, string> = {};
  for (const [path, content] of Object.entries(target.files)) {
    files[path] =
      mirror !== undefined && posix.basename(path) === "spack.yaml" ? withBuildcacheMirror(content, mirror) : content;
  }
  const spackYaml = mirror === undefined ? target.spackYaml : withBuildcacheMirror(target.spackYaml, mirror);

  const ownSourceCache = placement.cacheRoot !== placement.factoryCacheRoot;
  const secret = oci !== undefined && placement.credentials === true;
  if (secret && oci?.plainHttp === true)
    throw new Error("placeTarget: registry credentials over plain http (validation refuses them)");
  const registryFiles = registryFilesOf(secret, oci === undefined ? undefined : placement.registryCa);
  const env =
    registryFiles?.caBundle === undefined ? target.env : { ...target.env, SSL_CERT_FILE: registryFiles.caBundle.path };
  const steps = target.steps.map((step): Step => {
    // Caches of another cache root are that engine's own: their locks are too (a shared buildcache keeps one lock).
    const ownLock =
      ownSourceCache &&
      (step.lock === LOCKS.sourceCache ||
        (step.lock === LOCKS.buildcache(target.buildcacheKey) && location === undefined));
    const lock = ownLock ? `${step.lock}-${lockSlug(placement.engine)}` : step.lock;
    const sized =
      placement.jobs !== undefined && JOB_STEPS.has(step.id) ? withInstallJobs(step.argv, placement.jobs) : step.argv;
    const argv = secret && REGISTRY_STEPS.has(step.id) ? withCredentials(sized) : sized;
    return { ...step, argv: [...argv], ...(lock === undefined ? {} : { lock }) };
  });
  return { ...target, files, spackYaml, mounts, steps, env, ...(registryFiles === undefined ? {} : { registryFiles }) };
}

/** The environment's spack.yaml with the factory's buildcache mirror moved; a signed buildcache stays signed. */
function withBuildcacheMirror(spackYaml: string, mirror: Record<string, unknown>): string {
  const doc = parse(spackYaml) as { spack?: { mirrors?: Record<string, { signed?: boolean }> } };
  const planned = doc.spack?.mirrors?.[BUILDCACHE_MIRROR];
  if (doc.spack?.mirrors === undefined || planned === undefined) return spackYaml;
  doc.spack.mirrors[BUILDCACHE_MIRROR] = { ...mirror, signed: planned.signed === true };
  return stringify(doc, { lineWidth: 0 });
}

/**
 * Runs a step with the credentials exported from the file for that one process: `sh` reads the file, exports its
 * assignments and execs the step. The argument vector names the file, never the secret.
 */
function withCredentials(argv: readonly string[]): string[] {
  return ["/bin/sh", "-c", 'set -a && . "$0" && set +a && exec "$@"', REGISTRY_CREDENTIALS_FILE, ...argv];
}

function credentialsEnvFile(c: RegistryCredentials): string {
  const quote = (value: string): string => `'${value.replace(/'/g, `'\\''`)}'`;
  return `${REGISTRY_USERNAME_VARIABLE}=${quote(c.username)}\n${REGISTRY_PASSWORD_VARIABLE}=${quote(c.password)}\n`;
}

/**
 * The registry's files of a build container (the credentials by name, the site's CA), or undefined when it needs
 * none.
 */
function registryFilesOf(secret: boolean, siteCa?: string): TargetRegistryFiles | undefined {
  if (!secret && siteCa === undefined) return undefined;
  return {
    tmpfs: REGISTRY_PATHS.tmpfs,
    files: siteCa === undefined ? {} : { [REGISTRY_PATHS.siteCa]: siteCa },
    ...(secret ? { secrets: { [REGISTRY_PATHS.credentials]: REGISTRY_CREDENTIALS_SECRET } } : {}),
    ...(siteCa === undefined ? {} : { caBundle: { path: REGISTRY_PATHS.caBundle, siteCa: REGISTRY_PATHS.siteCa } }),
  };
}

/**
 * A placed target as it runs: its content mounts where they were sent to its engine (`synced`, by the plan's mount
 * host) and its secrets' files with their values. Refuses a mount that was not sent and a secret not given.
 */
export function withRunValues(
  placed: TargetPlan,
  values: { engine: string; synced?: ReadonlyMap<string, string>; credentials?: RegistryCredentials },
): TargetPlan {
  const mounts = placed.mounts.map((m): Mount => {
    if (m.sent !== true) return m;
    const there = values.synced?.get(m.host);
    if (there === undefined) throw new Error(`withRunValues: ${m.host} was not sent to engine ${values.engine}`);
    const { sent: _sent, ...rest } = m;
    return { ...rest, host: there, hostIsAbsolute: true };
  });
  const registry = placed.registryFiles;
  if (registry?.secrets === undefined) return { ...placed, mounts };
  const files = { ...registry.files };
  for (const [path, name] of Object.entries(registry.secrets)) {
    if (values.credentials === undefined)
      throw new FactoryError(
        `target ${placed.target}: the plan needs the secret '${name}' (the factory settings' credentials file) and none was given`,
      );
    files[path] = credentialsEnvFile(values.credentials);
  }
  const { secrets: _secrets, ...rest } = registry;
  return { ...placed, mounts, registryFiles: { ...rest, files } };
}

function lockSlug(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]+/g, "-");
}

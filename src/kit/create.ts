/**
 * `kit create`: everything a `build` and a `warm` of a stack will need on an air-gapped host, in one directory.
 * Effects only in order: run the kit plan (concretize each target, mirror its sources, Spack's bootstrap mirror),
 * copy the checkouts, repositories and local mirrors, save the builder image, then write kit.json (signed when a
 * key is given).
 */
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, readlink, writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { dirname, join, normalize } from "node:path";
import { CACHE_LAYOUT } from "../cache/layout.js";
import type { Stack } from "../config/types.js";
import { connectEngine, saveImage, type Engine } from "../docker/index.js";
import { BuildError, InputError } from "../errors.js";
import { buildcacheKeyOf, cloneKey, planBuild } from "../plan/plan.js";
import type { BuildPlan } from "../plan/types.js";
import { loadTemplates } from "../render/templates.js";
import { runPlan, type RunResult } from "../run/run-plan.js";
import type { SigningKey } from "../sign/key.js";
import { getMicroarch } from "../targets/index.js";
import type { Reporter } from "../ui/reporter.js";
import { containerUser } from "../run/host-caches.js";
import { RECORDED_COMMIT } from "../run/spack-checkout.js";
import { copyTree, giveTree } from "./files.js";
import { sealKit } from "./seal.js";
import { kitCreatePlan } from "./kit-plan.js";
import { KIT_LAYOUT } from "./layout.js";
import { KIT_FORMAT_VERSION, type KitManifest, type KitSpec } from "./manifest.js";

export interface CreateKitOptions {
  kitDir: string;
  cacheRoot: string;
  reporter: Reporter;
  signal: AbortSignal;
  /** Default: the local engine (on `network` when given). */
  engine?: Engine;
  network?: string;
  extraEnv?: Record<string, string>;
  withBuildcache?: boolean;
  /** Signs kit.json (`kit.json.asc`) and puts the public key into the kit. */
  signing?: SigningKey;
}

export interface CreateKitResult {
  manifest: KitManifest;
  bytes: number;
  seconds: number;
}

export async function createKit(stack: Stack, options: CreateKitOptions): Promise<CreateKitResult> {
  const started = performance.now();
  const { kitDir } = options;
  const existing = await readdir(kitDir).catch(() => [] as string[]);
  if (existing.length > 0) throw new InputError(`kit directory ${kitDir}: not empty; give a new or empty directory`);
  await mkdir(kitDir, { recursive: true });
  // The build containers write the mirrors into it as the build user; the kit is given back to its maker after.
  await giveTree(kitDir, containerUser());
  const stackBytes = await readFile(stack.file);
  const warm = planBuild(stack, undefined, {
    templates: await loadTemplates(),
    jobs: availableParallelism(),
    mode: "warm",
  });
  const plan = kitCreatePlan(warm, kitDir);
  const engine =
    options.engine ?? (await connectEngine(options.network === undefined ? {} : { network: options.network }));
  const locks = new Map<string, string>();
  const result = await runPlan(plan, {
    engine,
    reporter: options.reporter,
    signal: options.signal,
    cacheRoot: options.cacheRoot,
    concurrency: 1,
    extraEnv: options.extraEnv ?? {},
    packer: {
      pack: async (target, container) => {
        locks.set(
          target.target,
          (await container.readFile(`${target.envDir}/spack.lock`, options.signal)).toString("utf8"),
        );
        return {};
      },
    },
  });
  const failed = result.targets.filter((t) => t.status !== "ok");
  if (failed.length > 0 || result.cancelled) {
    throw new BuildError(
      `kit create: ${failed.map((t) => `target ${t.target} ${t.status}: ${t.error ?? ""} (log ${t.logPath})`).join("; ")}`,
    );
  }
  await giveTree(kitDir, { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });
  const manifest = await assemble(stack, plan, result, locks, stackBytes, options, engine);
  const sealed = await sealKit(kitDir, manifest, options.signing);
  return { manifest: sealed.manifest, bytes: sealed.bytes, seconds: (performance.now() - started) / 1000 };
}

/** Copy what the builds mount, save the image, and describe it all. */
async function assemble(
  stack: Stack,
  plan: BuildPlan,
  result: RunResult,
  locks: Map<string, string>,
  stackBytes: Buffer,
  options: CreateKitOptions,
  engine: Engine,
): Promise<KitManifest> {
  const { kitDir, cacheRoot } = options;
  const origin = stack.spack.origin;
  const spackFrom =
    origin.kind === "local" ? origin.path : join(cacheRoot, CACHE_LAYOUT.spack(cloneKey(origin) as string));
  await copyTree(spackFrom, join(kitDir, KIT_LAYOUT.spack));
  const builtin = stack.spack.builtin;
  const builtinRel = `${KIT_LAYOUT.spackPackages}/repos/spack_repo/builtin`;
  if (builtin?.kind === "local") await copyTree(builtin.path, join(kitDir, builtinRel));
  else if (builtin?.kind === "git")
    await copyTree(
      join(cacheRoot, CACHE_LAYOUT.spackPackages(cloneKey(builtin) as string)),
      join(kitDir, KIT_LAYOUT.spackPackages),
    );
  for (const r of stack.spack.repos) await copyTree(r.path, join(kitDir, KIT_LAYOUT.repo(r.namespace)));
  const mirrors = Object.entries(stack.spack.mirrors).filter(([, url]) => url.startsWith("/"));
  for (const [name, url] of mirrors) await copyTree(url, join(kitDir, KIT_LAYOUT.stackMirror(name)));
  if (options.withBuildcache === true)
    await copyTree(
      join(cacheRoot, CACHE_LAYOUT.buildcache(buildcacheKeyOf(stack))),
      join(kitDir, KIT_LAYOUT.buildcache),
    ).catch((error: NodeJS.ErrnoException) => {
      throw new InputError(
        `--with-buildcache: this factory has no buildcache for the stack yet (${error.code}); run warm first`,
      );
    });
  if (options.signing !== undefined) {
    await mkdir(dirname(join(kitDir, KIT_LAYOUT.publicKey)), { recursive: true });
    await writeFile(join(kitDir, KIT_LAYOUT.publicKey), options.signing.publicKey);
  }
  await recordCommit(join(kitDir, KIT_LAYOUT.spack), result.spackCommit);
  if (builtin !== undefined) await recordCommit(join(kitDir, builtinRel), result.spackPackagesCommit);
  const families = [...new Set(stack.targets.map((t) => getMicroarch(t)?.family ?? t))];
  await mkdir(join(kitDir, "images"), { recursive: true });
  for (const family of families)
    await saveImage(engine, plan.builder.tag, join(kitDir, KIT_LAYOUT.image(family)), options.signal);
  const specs: Record<string, KitSpec[]> = {};
  for (const t of plan.targets) specs[t.target] = await specsOf(locks.get(t.target) ?? "", kitDir);
  return {
    format_version: KIT_FORMAT_VERSION,
    created_at: new Date().toISOString(),
    stack: {
      name: stack.name,
      version: stack.version,
      file: stack.file.split("/").pop() as string,
      sha256: createHash("sha256").update(stackBytes).digest("hex"),
    },
    targets: [...stack.targets],
    generation: stack.spack.generation,
    spack: { path: KIT_LAYOUT.spack, origin: describe(origin), commit: result.spackCommit },
    ...(builtin === undefined
      ? {}
      : {
          spack_packages: {
            path: KIT_LAYOUT.spackPackages,
            origin: describe(builtin),
            commit: result.spackPackagesCommit ?? "unknown",
            builtin: builtinRel,
          },
        }),
    specs,
    images: families.map((family) => ({ family, tag: plan.builder.tag, file: KIT_LAYOUT.image(family) })),
    repos: stack.spack.repos.map((r) => ({ namespace: r.namespace, path: KIT_LAYOUT.repo(r.namespace) })),
    mirrors: mirrors.map(([name]) => ({ name, path: KIT_LAYOUT.stackMirror(name) })),
    bootstrap: KIT_LAYOUT.bootstrap,
    ...(options.withBuildcache === true ? { buildcache: KIT_LAYOUT.buildcache } : {}),
    ...(options.signing === undefined ? {} : { public_key: KIT_LAYOUT.publicKey }),
    files: {},
  };
}

/** A plain tree names the commit it was copied from, so builds from the kit record it (`headOf`). */
async function recordCommit(dir: string, commit: string | undefined): Promise<void> {
  if (commit !== undefined && /^[0-9a-f]{7,64}$/.test(commit))
    await writeFile(join(dir, RECORDED_COMMIT), `${commit}\n`);
}

function describe(origin: Stack["spack"]["origin"]): string {
  return origin.kind === "git" ? `${origin.url}@${origin.ref}` : "local checkout";
}

/**
 * A target's concrete specs from its spack.lock, each with its source archive in the kit: `spack mirror create`
 * links `mirror/<name>/<name>-<version>.<ext>` to it. No such link: the package has no code (gcc-runtime).
 */
async function specsOf(lockText: string, kitDir: string): Promise<KitSpec[]> {
  const lock = JSON.parse(lockText) as {
    concrete_specs: Record<string, { name: string; version: string; external?: unknown }>;
  };
  const out: KitSpec[] = [];
  for (const [hash, node] of Object.entries(lock.concrete_specs).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (node.external !== undefined) continue;
    const spec: KitSpec = { name: node.name, version: String(node.version), hash };
    const aliasDir = join(kitDir, KIT_LAYOUT.mirror, node.name);
    const alias = (await readdir(aliasDir).catch(() => [] as string[])).find((f) =>
      f.startsWith(`${node.name}-${node.version}.`),
    );
    if (alias !== undefined) {
      const target = await readlink(join(aliasDir, alias));
      spec.source = normalize(join(KIT_LAYOUT.mirror, node.name, target));
    }
    out.push(spec);
  }
  return out;
}

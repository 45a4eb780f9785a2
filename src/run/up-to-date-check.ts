/** Reads what `decideUpToDate` asks for, one fact at a time, until it answers. */
import { checkKeptTarball, readKept, type RunMode } from "../cache/kept-tarballs.js";
import type { BuildcacheLocation } from "../config/factory.js";
import type { RegistryCredentials } from "../plan/placement.js";
import { specsInOciBuildcache } from "./buildcache-oci.js";
import { specsInPathBuildcache, type Presence } from "./buildcache-path.js";
import { lockSpecs } from "./lock-specs.js";
import { findLock, type LockKey } from "./lock-reuse.js";
import { decideUpToDate, type UpToDateFacts, type Verdict } from "./up-to-date.js";

/** Where a target's buildcache can be read from this host, or why it cannot. */
export type BuildcacheSource =
  | { kind: "path"; dir: string; signed: boolean }
  | {
      kind: "oci";
      location: Extract<BuildcacheLocation, { kind: "oci" }>;
      repository: string;
      credentials?: RegistryCredentials;
      /** The registry's own CA (PEM), trusted beside the system's. */
      ca?: string;
    }
  | { kind: "unreadable"; reason: string };

export interface CheckContext {
  mode: RunMode;
  fresh?: boolean;
  compilerBuiltBySpack?: boolean;
  lockKey: LockKey;
  inputs: Record<string, string>;
  /** The factory's cache root (kept locks and tarballs). */
  cacheRoot: string;
  /** `<name>-<version>-<target>`. */
  targetDir: string;
  buildcache: BuildcacheSource;
  signal: AbortSignal;
}

export type Answer = Exclude<Verdict, { need: string }>;

export async function checkUpToDate(ctx: CheckContext): Promise<Answer> {
  const facts: UpToDateFacts = {
    mode: ctx.mode,
    lockKey: ctx.lockKey,
    inputs: ctx.inputs,
    ...(ctx.fresh === true ? { fresh: true } : {}),
    ...(ctx.compilerBuiltBySpack === true ? { compilerBuiltBySpack: true } : {}),
  };
  for (let round = 0; round < 8; round++) {
    const verdict = decideUpToDate(facts);
    if (!("need" in verdict)) return verdict;
    if (verdict.need === "record") facts.record = (await readKept(ctx.cacheRoot, ctx.targetDir, ctx.mode)) ?? null;
    else if (verdict.need === "lock")
      facts.lock = "key" in ctx.lockKey ? ((await findLock(ctx.cacheRoot, ctx.lockKey.key)) ?? null) : null;
    else if (verdict.need === "presence") facts.presence = await presence(ctx, facts.lock ?? "");
    else if (verdict.need === "tarball" && facts.record != null)
      facts.tarball = await checkKeptTarball(ctx.cacheRoot, ctx.targetDir, facts.record);
  }
  throw new Error("checkUpToDate: the decision did not settle");
}

async function presence(ctx: CheckContext, lock: string): Promise<Presence> {
  const specs = lockSpecs(lock);
  const source = ctx.buildcache;
  if (source.kind === "unreadable") return { unreadable: source.reason };
  if (source.kind === "path") return specsInPathBuildcache(source.dir, specs, { signed: source.signed });
  return specsInOciBuildcache(specs, {
    location: source.location,
    repository: source.repository,
    ...(source.credentials === undefined ? {} : { credentials: source.credentials }),
    ...(source.ca === undefined ? {} : { ca: source.ca }),
    signal: ctx.signal,
  });
}

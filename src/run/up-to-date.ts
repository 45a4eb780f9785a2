/**
 * Whether a target has anything to do, known without asking Spack or starting a container. A target is up to date
 * when the inputs of its concretization are those of a kept spack.lock, every concrete spec of that lock is in the
 * buildcache, and (build) the tarball made from the same inputs is still kept with its recorded sha256. Anything
 * changed, missing or unreadable is a reason to run as usual, and the reason is reported.
 *
 * `decideUpToDate` is pure: given what is known so far it answers, or names the one fact it needs next, so that the
 * reader (`checkUpToDate`) reads only what the answer depends on (a kept tarball is hashed last, and only then).
 */
import { createHash } from "node:crypto";
import type { KeptRecord, RunMode } from "../cache/kept-tarballs.js";
import type { Presence } from "./buildcache-path.js";
import { lockSpecs, shortSpec, specFileStem } from "./lock-specs.js";
import type { LockKey } from "./lock-reuse.js";

export const UP_TO_DATE = "up to date: nothing started";

/** The name under which the concretization (spack.lock) itself is an input of a kept tarball. */
export const LOCK_INPUT = "spack.lock";

export interface UpToDateFacts {
  mode: RunMode;
  /** `--fresh`: concretize anyway. */
  fresh?: boolean;
  /** The plan builds its compiler with Spack in an environment of its own, which no kept lock describes. */
  compilerBuiltBySpack?: boolean;
  lockKey: LockKey;
  /** The target's inputs now, by name (concretization inputs; for build also what packing depends on). */
  inputs: Record<string, string>;
  /** The record of the last successful run of this mode; null when there is none. Undefined: not read yet. */
  record?: KeptRecord | null;
  /** The kept spack.lock under `lockKey` (null: none). */
  lock?: string | null;
  presence?: Presence;
  tarball?: { path: string } | { problem: string };
}

/** A kept tarball fit to hand out. */
export interface KeptTarball {
  path: string;
  file: string;
  bytes: number;
  sha256: string;
  warnings: string[];
}

export type Verdict =
  | { upToDate: true; reason: string; specs: string[]; kept?: KeptTarball }
  | {
      upToDate: false;
      reason: string;
      /**
       * The kept lock will be reused and every spec of it is in the buildcache: the run only installs from it, so
       * fetching sources and pushing have nothing to do.
       */
      allInBuildcache?: boolean;
    }
  | { need: "record" | "lock" | "presence" | "tarball" };

export function decideUpToDate(f: UpToDateFacts): Verdict {
  const rebuild = (reason: string): Verdict => ({ upToDate: false, reason });
  if (f.fresh === true) return rebuild("--fresh: concretizing afresh");
  if (f.compilerBuiltBySpack === true)
    return rebuild("the compiler is built by Spack (compiler: spack), in an environment no kept lock describes");
  if ("unusable" in f.lockKey) return rebuild(`no concretization to compare: ${f.lockKey.unusable}`);
  if (f.record === undefined) return { need: "record" };
  if (f.lock === undefined) return { need: "lock" };
  if (f.lock === null) {
    // Every input that differs from the last run's is named (the signing key also changes the buildcache's key).
    const changed = changedInputs(f.record?.inputs, f.inputs, Object.keys(f.inputs));
    return rebuild(
      changed.length > 0
        ? `changed since the last ${f.mode}: ${changed.join(", ")}`
        : "no earlier concretization with these inputs",
    );
  }
  let specs: ReturnType<typeof lockSpecs>;
  try {
    specs = lockSpecs(f.lock);
  } catch (error) {
    return rebuild(`the kept spack.lock cannot be read: ${error instanceof Error ? error.message : String(error)}`);
  }
  // What the kept tarball was made from is compared first: a changed input is the reason, whatever else follows.
  const tarballReason = f.mode === "build" ? tarballInputsReason(f.record, f.inputs, f.lock) : undefined;
  if (f.presence === undefined) return { need: "presence" };
  const inBuildcache = !("unreadable" in f.presence) && f.presence.missing.length === 0;
  if (tarballReason !== undefined) return { upToDate: false, reason: tarballReason, allInBuildcache: inBuildcache };
  if ("unreadable" in f.presence) return rebuild(f.presence.unreadable);
  if (f.presence.missing.length > 0)
    return rebuild(`not in the buildcache: ${listed(f.presence.missing.map(shortSpec))}`);
  // As Spack names them in its install log (`Extracting <name>-<version>-<hash>`), like the report's other lists.
  const names = specs.map(specFileStem);
  if (f.mode === "warm") return { upToDate: true, reason: UP_TO_DATE, specs: names };
  const keptFile = f.record?.tarball;
  if (keptFile === undefined) return rebuild("no tarball kept from an earlier build");
  if (f.tarball === undefined) return { need: "tarball" };
  if ("problem" in f.tarball) return { upToDate: false, reason: f.tarball.problem, allInBuildcache: true };
  const kept = { path: f.tarball.path, ...keptFile, warnings: f.record?.warnings ?? [] };
  return { upToDate: true, reason: UP_TO_DATE, specs: names, kept };
}

/** Why the kept tarball cannot serve, as far as its record says (undefined: it may). */
function tarballInputsReason(
  record: KeptRecord | null | undefined,
  inputs: Record<string, string>,
  lock: string,
): string | undefined {
  if (record == null || record.tarball === undefined) return "no tarball kept from an earlier build";
  const now = { ...inputs, [LOCK_INPUT]: digestOf(lock) };
  const changed = changedInputs(record.inputs, now, Object.keys(now));
  return changed.length > 0 ? `changed since the kept tarball: ${changed.join(", ")}` : undefined;
}

/** The inputs of `names` that differ between a record and now. */
export function changedInputs(
  before: Record<string, string> | undefined,
  now: Record<string, string>,
  names: readonly string[],
): string[] {
  if (before === undefined) return [];
  return names.filter((n) => before[n] !== now[n]);
}

export function digestOf(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

function listed(items: string[]): string {
  return items.length <= 5 ? items.join(", ") : `${items.slice(0, 5).join(", ")} and ${items.length - 5} more`;
}

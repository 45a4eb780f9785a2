/**
 * The engines a plan is placed on, as the plan records them, and the check that a plan written earlier runs on the
 * engines it was placed on: same names, addresses, architectures and cache roots. An engine of the plan that the
 * settings name but that does not answer is down, as in any run (its targets fail); one they do not name, or name
 * at another address, refuses the plan.
 */
import { defaultEngineWhere, type Engine } from "../docker/index.js";
import { InputError } from "../errors.js";
import { ANY_ARCH } from "../plan/dispatch.js";
import type { PlannedEngine } from "../plan/types.js";
import type { DownEngine, RunEngine } from "./engines.js";

export function plannedEngines(members: readonly RunEngine[]): PlannedEngine[] {
  return members.map((e) => ({
    name: e.name,
    where: e.engine.where,
    arch: e.arch,
    cacheRoot: e.cacheRoot,
    concurrency: e.concurrency,
    ...(e.jobs === undefined ? {} : { jobs: e.jobs }),
    local: e.engine.local,
    ...(e.sizing === undefined ? {} : { sizing: e.sizing }),
  }));
}

/** The one engine of a run without engine settings, as a plan has it: known without reaching it. */
export function defaultPlannedEngine(
  engine: Engine | undefined,
  sizing: { cacheRoot: string; concurrency: number; reason: string },
): PlannedEngine {
  const { where, local } = engine ?? defaultEngineWhere();
  return {
    name: engine?.name ?? "local",
    where,
    arch: ANY_ARCH,
    cacheRoot: sizing.cacheRoot,
    concurrency: sizing.concurrency,
    local,
    sizing: sizing.reason,
  };
}

/** The one engine of a run without settings as the run's engine list has it (what the plan check compares). */
export function oneEngine(engine: Engine, planned: PlannedEngine): RunEngine {
  return { name: engine.name, engine, cacheRoot: planned.cacheRoot, concurrency: planned.concurrency, arch: ANY_ARCH };
}

/**
 * The engines of this run as the plan has them (its concurrency), or an InputError naming each difference.
 * `up` and `down` are the engines the settings (or the default) give now.
 */
export function enginesForPlan(
  planned: readonly PlannedEngine[],
  up: readonly RunEngine[],
  down: readonly DownEngine[],
): { up: RunEngine[]; down: DownEngine[] } {
  const now = new Map(plannedEngines(up).map((e) => [e.name, e]));
  const downNow = new Map(down.map((d) => [d.name, d]));
  const problems: string[] = [];
  for (const p of planned) {
    const e = now.get(p.name);
    const d = downNow.get(p.name);
    if (e === undefined && d === undefined) {
      problems.push(`engine ${p.name} (${p.where}) is not one of this factory's engines`);
      continue;
    }
    if (e !== undefined && e.where !== p.where)
      problems.push(`engine ${p.name} is at ${e.where} here, the plan was placed on ${p.where}`);
    if (e !== undefined && e.arch !== p.arch)
      problems.push(`engine ${p.name} is ${e.arch} here, ${p.arch} in the plan`);
    if (e !== undefined && e.cacheRoot !== p.cacheRoot)
      problems.push(`engine ${p.name} keeps its cache at ${e.cacheRoot} here, ${p.cacheRoot} in the plan`);
  }
  if (problems.length > 0)
    throw new InputError(`the plan was placed on other engines: ${problems.join("; ")}`, {
      hint: "make the plan again with `stack-factory plan --out DIR` and the same engine settings",
    });
  const names = new Set(planned.map((p) => p.name));
  const concurrencyOf = new Map(planned.map((p) => [p.name, p.concurrency]));
  return {
    up: up
      .filter((e) => names.has(e.name))
      .map((e) => ({ ...e, concurrency: concurrencyOf.get(e.name) ?? e.concurrency })),
    down: down.filter((d) => names.has(d.name)),
  };
}

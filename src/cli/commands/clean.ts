import { engineChoice, loadFactorySettings } from "../../config/factory.js";
import {
  connectEngine,
  removeByLabel,
  removeDeadRuns,
  type Engine,
  type RemovedContainer,
  unreachableHint,
} from "../../docker/index.js";
import { FactoryError } from "../../errors.js";
import { connectEngines } from "../../run/engines.js";
import { cacheRoot, engineUrls } from "../options.js";

export interface CleanFlags {
  all?: boolean;
  run?: string;
  engine?: unknown;
  factory?: string;
}

/** What clean did on one engine: how many containers it removed, or why not (it did not answer, or removing failed). */
export type EngineCleaned =
  | { name: string; removed: number }
  | { name: string; where: string; reason: string; answered: boolean; hint?: string };

/**
 * Remove containers that factory runs left behind: those of dead runs; with --run those of one run (also kept
 * ones); with --all every factory container. Without --engine or --factory on the local engine, as always; else on
 * every engine chosen, each reported by name: one that does not answer is reported and makes the exit code 1, the
 * others are cleaned all the same.
 */
export async function cleanCommand(flags: CleanFlags): Promise<number> {
  const urls = engineUrls(flags.engine);
  const settings = flags.factory === undefined ? undefined : await loadFactorySettings(flags.factory);
  const { engines: chosen, given } = engineChoice(settings, urls);
  if (!given) {
    const removed = await removeOn(await connectEngine(), flags);
    process.stdout.write(removed.length === 0 ? "nothing to remove\n" : `removed ${removed.length} container(s)\n`);
    return 0;
  }
  // Clean needs no cache root nor concurrency; connectEngines asks for both.
  const { up, down } = await connectEngines(chosen, {
    runId: "clean",
    defaultCacheRoot: cacheRoot(undefined),
    defaultConcurrency: 1,
  });
  const settled = await Promise.allSettled(up.map((e) => removeOn(e.engine, flags)));
  const results: EngineCleaned[] = [];
  let bug: unknown;
  for (const setting of chosen) {
    const d = down.find((x) => x.name === setting.name);
    if (d !== undefined) {
      results.push({ ...d, answered: false });
      continue;
    }
    const i = up.findIndex((x) => x.name === setting.name);
    const e = up[i];
    const outcome = settled[i];
    if (e === undefined || outcome === undefined) continue;
    if (outcome.status === "fulfilled") {
      results.push({ name: e.name, removed: outcome.value.length });
    } else {
      // A bug is thrown after the others are reported (exit 70); an engine's own failure is reported like a down one.
      if (!(outcome.reason instanceof FactoryError)) bug ??= outcome.reason;
      const reason = outcome.reason instanceof Error ? outcome.reason.message : String(outcome.reason);
      results.push({ name: e.name, where: e.engine.where, reason, answered: true });
    }
  }
  const { out, err } = cleanReport(results);
  process.stdout.write(out);
  process.stderr.write(err);
  if (bug !== undefined) throw bug;
  return results.every((r) => "removed" in r) ? 0 : 1;
}

function removeOn(engine: Engine, flags: CleanFlags): Promise<RemovedContainer[]> {
  if (flags.run !== undefined) return removeByLabel(engine, { run: String(flags.run) });
  return flags.all === true ? removeByLabel(engine, {}) : removeDeadRuns(engine);
}

/** Clean's report over several engines: a line per engine cleaned (stdout), one per engine that failed (stderr). Pure. */
export function cleanReport(results: readonly EngineCleaned[]): { out: string; err: string } {
  let out = "";
  let err = "";
  for (const r of results) {
    if ("removed" in r) {
      out += `engine ${r.name}: ${r.removed === 0 ? "nothing to remove" : `removed ${r.removed} container(s)`}\n`;
    } else {
      err += `stack-factory: engine ${r.name}: ${r.reason}\n`;
      // The engine's own advice (chmod 600 a key, check a host key) says more than the generic one.
      if (r.hint !== undefined && r.hint !== unreachableHint(r.where)) err += `hint: ${r.hint}\n`;
      else if (!r.answered)
        err += `hint: start the engine at ${r.where} or check that this host reaches it; its containers stay until then\n`;
    }
  }
  return { out, err };
}

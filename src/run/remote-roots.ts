/**
 * Engines of other hosts get their cache directories and this host's trees through the engine itself, all at once;
 * an engine whose cache root cannot be prepared is down (the others go on).
 */
import { remoteRootNeeds } from "../plan/placement.js";
import type { BuildPlan } from "../plan/types.js";
import { formatBytes } from "../ui/format.js";
import { EngineSet } from "./engine-set.js";
import type { RunEngine } from "./engines.js";
import { prepareRemoteRoot, treeLister } from "./remote-root.js";
import type { RunOptions } from "./run-plan.js";

/** The trees sent to each engine of another host, by engine name. */
export async function prepareRemoteRoots(
  plan: BuildPlan,
  engines: EngineSet,
  sourceRoot: string,
  options: Pick<RunOptions, "reporter" | "signal" | "buildcache">,
): Promise<Map<string, ReadonlyMap<string, string>>> {
  const synced = new Map<string, ReadonlyMap<string, string>>();
  const trees = treeLister(sourceRoot);
  const { reporter, signal } = options;
  const prepare = async (e: RunEngine): Promise<void> => {
    const theirs = plan.targets.filter((t) => EngineSet.serves(e, t));
    try {
      const prepared = await prepareRemoteRoot(e, remoteRootNeeds(theirs, options.buildcache), {
        image: plan.builder.tag,
        trees,
        reporter,
        signal,
      });
      synced.set(e.name, prepared.synced);
      const sent =
        prepared.sent.length === 0 ? "" : ` (sent ${prepared.sent.length} tree(s), ${formatBytes(prepared.bytesSent)})`;
      reporter.emit({ type: "info", message: `engine ${e.name}: cache root ${e.cacheRoot} ready${sent}` });
    } catch (error) {
      if (signal.aborted) throw error;
      const why = error instanceof Error ? error.message : String(error);
      engines.markDown(e.name, `could not prepare its cache root: ${why}`);
    }
  };
  await Promise.all(
    engines
      .live()
      .filter((e) => !e.engine.local)
      .map(prepare),
  );
  return synced;
}

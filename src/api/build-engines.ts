/**
 * The engines of a build or warm run given by `--engine` or `engines:` of the settings: connected and sized, each said
 * with its concurrency and cache root and each that does not answer named. (The one default engine of a run without
 * them is reached when its plan runs: `runStack`.)
 */
import type { EngineSetting } from "../config/factory.js";
import { newRunId, type Engine } from "../docker/index.js";
import { DockerError } from "../errors.js";
import { connectEngines, describeEngine, type DownEngine, type RunEngine } from "../run/engines.js";
import type { Reporter } from "../ui/reporter.js";

export interface BuildEngines {
  /** The first engine (its run id is the run's). */
  engine: Engine;
  /** The factory's engines, up and down (absent: `engine` alone). */
  connected?: { up: RunEngine[]; down: DownEngine[] };
}

export interface BuildEnginesOptions {
  engines: readonly EngineSetting[];
  cacheRoot: string;
  jobs?: number;
  memory?: number;
  reporter: Reporter;
}

/** This host's sizing: `concurrency` containers of `jobs` jobs each, chosen for `reason`. */
export interface HostSizing {
  concurrency: number;
  jobs: number;
  reason: string;
  targets: number;
}

export async function buildEngines(options: BuildEnginesOptions, sizing: HostSizing): Promise<BuildEngines> {
  const { reporter } = options;
  const { concurrency, jobs } = sizing;
  const connected = await connectEngines(options.engines, {
    runId: newRunId(),
    defaultCacheRoot: options.cacheRoot,
    defaultConcurrency: concurrency,
    sizing: {
      targets: sizing.targets,
      ...(options.jobs === undefined ? {} : { jobs: options.jobs }),
      ...(options.memory === undefined ? {} : { memoryLimit: options.memory }),
    },
  });
  const first = connected.up[0];
  if (first === undefined) {
    const hints = [...new Set(connected.down.flatMap((d) => (d.hint === undefined ? [] : [d.hint])))];
    throw new DockerError(
      `no engine answers: ${connected.down.map((d) => `${d.name} (${d.where}): ${d.reason}`).join("; ")}`,
      hints.length === 0 ? {} : { hint: hints.join("; ") },
    );
  }
  for (const e of connected.up) {
    const each = e.jobs === undefined ? "" : `, ${e.jobs} job(s) each (${e.sizing ?? "as given"})`;
    reporter.emit({
      type: "info",
      message: `engine ${describeEngine(e)}: ${e.concurrency} container(s) at once${each}, cache ${e.cacheRoot}`,
    });
  }
  for (const d of connected.down) {
    reporter.emit({
      type: "info",
      message: `engine ${d.name} (${d.where}) does not answer: it gets no targets (${d.reason})`,
    });
  }
  reporter.emit({ type: "info", message: `${jobs} job(s) per container` });
  return { engine: first.engine, connected };
}

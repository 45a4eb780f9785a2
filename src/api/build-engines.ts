/**
 * The engines of a build or warm run: the factory's engines (`--engine`, `engines:` of the settings) connected and
 * sized, each said with its concurrency and cache root and each that does not answer named; or the one engine given
 * (default: the local engine), with this host's sizing said.
 */
import type { EngineSetting } from "../config/factory.js";
import { connectEngine, newRunId, type Engine } from "../docker/index.js";
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
  engine?: Engine;
  engines?: readonly EngineSetting[];
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
  const { concurrency, jobs, reason } = sizing;
  if (options.engines === undefined) {
    const engine = options.engine ?? (await connectEngine());
    reporter.emit({ type: "info", message: `${concurrency} container(s) at once, ${jobs} job(s) each (${reason})` });
    return { engine };
  }
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

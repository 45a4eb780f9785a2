/**
 * The engines of a run: each setting connected (all with one run id, so every container of the run carries the same
 * labels on every engine), its architecture read from the engine, its cache root and concurrency settled. An engine
 * that does not answer is reported as down with the reason, not thrown: it fails only the targets it would have had.
 */
import { connectEngine, type Engine, type EngineVersion } from "../docker/index.js";
import type { EngineSetting } from "../config/factory.js";
import { FactoryError } from "../errors.js";
import { familyOfEngineArch } from "../plan/dispatch.js";
import { chooseConcurrency } from "./concurrency.js";

export interface RunEngine {
  name: string;
  engine: Engine;
  /** Cache root on the engine's host. */
  cacheRoot: string;
  concurrency: number;
  /** Build jobs per container, from the engine host's own cores (engines of other hosts); undefined: the plan's. */
  jobs?: number;
  /** How concurrency and jobs were chosen, for the run's messages (engines of other hosts). */
  sizing?: string;
  /** As the engine reports it (amd64, arm64), or ANY_ARCH for the one default engine (it builds what it is given). */
  arch: string;
  version?: EngineVersion;
}

export interface DownEngine {
  name: string;
  where: string;
  reason: string;
  /** What to do about it, when the failure says (a host key to check, a file to fix). */
  hint?: string;
}

export interface ConnectEnginesOptions {
  runId: string;
  /** The cache root of engines whose setting names none (the factory's own, `--cache-dir`). */
  defaultCacheRoot: string;
  /** Concurrency of engines whose setting names none. */
  defaultConcurrency: number;
  /**
   * What engines of other hosts are sized for: their own cores and memory (docker info), not this host's, choose
   * their concurrency (unless the setting names one) and jobs (unless given).
   */
  sizing?: { targets: number; jobs?: number; memoryLimit?: number };
  timeoutMs?: number;
}

export async function connectEngines(
  settings: readonly EngineSetting[],
  options: ConnectEnginesOptions,
): Promise<{ up: RunEngine[]; down: DownEngine[] }> {
  const probes = await Promise.all(
    settings.map(async (s): Promise<RunEngine | DownEngine> => {
      const where = s.endpoint?.url ?? "the local engine";
      try {
        const engine = await connectEngine({
          runId: options.runId,
          name: s.name,
          ...(s.endpoint === undefined ? {} : { endpoint: s.endpoint }),
          ...(s.network === undefined ? {} : { network: s.network }),
          ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
        });
        const version = await engine.version();
        const base = {
          name: s.name,
          engine,
          cacheRoot: s.cacheRoot ?? options.defaultCacheRoot,
          arch: version.arch,
          version,
        };
        if (engine.local || options.sizing === undefined)
          return { ...base, concurrency: s.concurrency ?? options.defaultConcurrency };
        const { cpus, memoryBytes } = await engine.resources();
        const sized = chooseConcurrency({
          targets: options.sizing.targets,
          cores: cpus,
          memoryBytes,
          ...(s.concurrency === undefined ? {} : { concurrency: s.concurrency }),
          ...(options.sizing.jobs === undefined ? {} : { jobs: options.sizing.jobs }),
          ...(options.sizing.memoryLimit === undefined ? {} : { memoryLimit: options.sizing.memoryLimit }),
        });
        const sizing =
          s.concurrency === undefined ? `${sized.reason} there` : `${cpus} cores there, ${s.concurrency} as given`;
        return { ...base, concurrency: sized.concurrency, jobs: sized.jobs, sizing };
      } catch (error) {
        const hint = error instanceof FactoryError ? error.hint : undefined;
        return {
          name: s.name,
          where,
          reason: error instanceof Error ? error.message : String(error),
          ...(hint === undefined ? {} : { hint }),
        };
      }
    }),
  );
  const up = probes.filter((p): p is RunEngine => "engine" in p);
  const down = probes.filter((p): p is DownEngine => !("engine" in p));
  return { up, down };
}

/** `name (amd64, Docker 27.1 at unix:///...)` for messages. */
export function describeEngine(e: RunEngine): string {
  const family = familyOfEngineArch(e.arch);
  const docker = e.version === undefined ? "" : `, Docker ${e.version.version}`;
  return `${e.name} (${e.arch}${family === undefined ? ", no targets of the factory" : ""}${docker} at ${e.engine.where})`;
}

import { availableParallelism } from "node:os";
import { loadStack } from "../../config/index.js";
import { connectEngine } from "../../docker/index.js";
import { CancelledError } from "../../errors.js";
import { planBuild } from "../../plan/plan.js";
import { loadTemplates } from "../../render/templates.js";
import { runPlan } from "../../build/run-plan.js";
import { chooseReporter } from "../../ui/live.js";
import { cacheRoot, envPairs, memoryBytes, positiveInt, positiveNumber, targetList } from "../options.js";
import { abortOnSignals } from "../signals.js";

export interface BuildFlags {
  target?: unknown;
  cacheDir?: string;
  out?: string;
  jobs?: unknown;
  cpus?: unknown;
  memory?: unknown;
  keepContainer?: boolean;
  env?: unknown;
}

export async function buildCommand(stackFile: string, flags: BuildFlags): Promise<number> {
  const stack = await loadStack(stackFile);
  const jobs = positiveInt(flags.jobs, "jobs") ?? availableParallelism();
  const plan = planBuild(stack, targetList(flags.target), { templates: await loadTemplates(), jobs });
  const extraEnv = envPairs(flags.env);
  const cpus = positiveNumber(flags.cpus, "cpus");
  const memory = memoryBytes(flags.memory);
  const engine = await connectEngine();
  const reporter = chooseReporter();
  const { signal, dispose } = abortOnSignals((sig) => reporter.emit({ type: "info", message: `${sig}: stopping, removing this run's containers` }));
  try {
    const result = await runPlan(plan, {
      engine,
      reporter,
      signal,
      cacheRoot: cacheRoot(flags.cacheDir),
      concurrency: 1,
      extraEnv,
      ...(flags.keepContainer === true ? { keepContainer: true } : {}),
      ...(cpus === undefined ? {} : { cpus }),
      ...(memory === undefined ? {} : { memory }),
    });
    reporter.close();
    if (result.cancelled) throw new CancelledError(`run ${result.runId} interrupted; its containers were removed`);
    const failed = result.targets.filter((t) => t.status !== "ok");
    for (const t of failed) process.stderr.write(`stack-factory: ${t.error ?? `target ${t.target} ${t.status}`}\n`);
    return failed.length === 0 ? 0 : 1;
  } finally {
    reporter.close();
    dispose();
  }
}

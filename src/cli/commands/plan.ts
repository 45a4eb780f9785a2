import { availableParallelism } from "node:os";
import { loadStack } from "../../config/index.js";
import { planBuild } from "../../plan/plan.js";
import { planToJson, writePlan } from "../../plan/write.js";
import { loadTemplates } from "../../render/templates.js";
import { InputError } from "../../errors.js";
import { checkInputFile, checkOutputDir, positiveInt, targetList } from "../options.js";

export interface PlanFlags {
  target?: unknown;
  out?: string;
  json?: boolean;
  jobs?: unknown;
}

export async function planCommand(stackFile: string, flags: PlanFlags): Promise<void> {
  if (flags.out === undefined && flags.json !== true) {
    throw new InputError("plan: give --out DIR to write the plan's files, or --json to print it");
  }
  // Before anything is read or planned: a FIFO as the stack file would block, an --out under /proc would spin.
  await checkInputFile(stackFile, "stack file");
  if (flags.out !== undefined) await checkOutputDir(flags.out, "--out");
  const stack = await loadStack(stackFile);
  const plan = planBuild(stack, targetList(flags.target), {
    templates: await loadTemplates(),
    jobs: positiveInt(flags.jobs, "jobs") ?? availableParallelism(),
  });
  if (flags.json === true) process.stdout.write(planToJson(plan));
  if (flags.out !== undefined) {
    const written = await writePlan(plan, flags.out);
    if (flags.json !== true) for (const f of written) process.stdout.write(`${f}\n`);
  }
}

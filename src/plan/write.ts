import { join } from "node:path";
import { writeFileAtomic } from "../fs/write-atomic.js";
import type { BuildPlan } from "./types.js";

/** The plan as stable JSON (no host-specific values beyond what the plan holds). */
export function planToJson(plan: BuildPlan): string {
  return `${JSON.stringify(plan, null, 2)}\n`;
}

/**
 * Write a plan as files: `builder/<context files>`, and per target `<target>/spack.yaml`, `<target>/steps.json`,
 * `<target>/mounts.json` and the tarball's plan-made files `<target>/package/install.sh`, `module.lua` and `module.tcl`;
 * a placed plan also `<target>/on/<engine>/` with the target's spack.yaml, steps and mounts as they run there; plus
 * `plan.json`, which is the plan (the rest are views of it). Each file is written under a temporary name and renamed.
 */
export async function writePlan(plan: BuildPlan, outDir: string): Promise<string[]> {
  const files = planFiles(plan);
  const written: string[] = [];
  for (const rel of Object.keys(files).sort()) {
    const path = join(outDir, rel);
    await writeFileAtomic(path, files[rel] as string);
    written.push(path);
  }
  return written;
}

/** The plan's files by relative path: plan.json and its views. */
export function planFiles(plan: BuildPlan): Record<string, string> {
  const files: Record<string, string> = { "plan.json": planToJson(plan) };
  for (const [name, content] of Object.entries(plan.builder.files)) files[join("builder", name)] = content;
  for (const t of plan.targets) {
    files[join(t.target, "spack.yaml")] = t.spackYaml;
    files[join(t.target, "steps.json")] = `${JSON.stringify(t.steps, null, 2)}\n`;
    files[join(t.target, "mounts.json")] = `${JSON.stringify(t.mounts, null, 2)}\n`;
    if (t.packageFiles !== undefined) {
      files[join(t.target, "package", "install.sh")] = t.packageFiles.installScript;
      const { lmod, tcl } = t.packageFiles.modules;
      if (lmod !== undefined) files[join(t.target, "package", "module.lua")] = lmod;
      if (tcl !== undefined) files[join(t.target, "package", "module.tcl")] = tcl;
    }
  }
  for (const [target, engines] of Object.entries(plan.placement?.targets ?? {})) {
    for (const [engine, placed] of Object.entries(engines)) {
      const where = join(target, "on", engine);
      files[join(where, "spack.yaml")] = placed.spackYaml;
      files[join(where, "steps.json")] = `${JSON.stringify(placed.steps, null, 2)}\n`;
      files[join(where, "mounts.json")] = `${JSON.stringify(placed.mounts, null, 2)}\n`;
    }
  }
  return files;
}

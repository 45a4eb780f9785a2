/**
 * A build or warm from a kit, before anything runs: the kit must cover the stack and the targets (else an
 * InputError naming what is missing, before any container starts), its builder image is loaded when the engine
 * lacks it, and the stack and plan are pointed at the kit.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Stack } from "../config/types.js";
import { imageExists, loadImage, type Engine } from "../docker/index.js";
import { InputError } from "../errors.js";
import { sha256Of } from "../fs/sha256.js";
import type { BuildPlan } from "../plan/types.js";
import type { Reporter } from "../ui/reporter.js";
import { kitGaps } from "./coverage.js";
import { planWithKit } from "./kit-plan.js";
import { stackFromKit } from "./kit-stack.js";
import type { KitManifest } from "./manifest.js";
import { readKit } from "./verify.js";

export interface KitBuild {
  manifest: KitManifest;
  stack: Stack;
  adjustPlan: (plan: BuildPlan) => BuildPlan;
}

/** Refuse unless the kit covers the build; pure check first, no engine touched. */
export async function checkKitCovers(kitDir: string, stack: Stack, targets?: readonly string[]): Promise<KitManifest> {
  const manifest = await readKit(kitDir);
  const stackSha256 = await sha256Of(stack.file);
  const gaps = kitGaps({
    kit: manifest,
    stack,
    stackSha256,
    ...(targets === undefined ? {} : { targets }),
    present: (rel) => existsSync(join(kitDir, rel)),
  });
  if (gaps.length > 0) {
    throw new InputError(`--kit ${kitDir} does not cover ${stack.file}:\n${gaps.map((g) => `  ${g}`).join("\n")}`, {
      hint: "make the kit again from this stack file with `stack-factory kit create` on a connected host",
    });
  }
  return manifest;
}

export async function prepareKitBuild(
  kitDir: string,
  stack: Stack,
  options: { engine: Engine; targets?: readonly string[]; reporter: Reporter; signal: AbortSignal },
): Promise<KitBuild> {
  const manifest = await checkKitCovers(kitDir, stack, options.targets);
  for (const image of manifest.images) {
    if (await imageExists(options.engine, image.tag)) continue;
    options.reporter.emit({ type: "info", message: `loading builder image ${image.tag} from the kit (${image.file})` });
    await loadImage(options.engine, join(kitDir, image.file), image.tag, options.signal);
  }
  return {
    manifest,
    stack: stackFromKit(stack, manifest, kitDir),
    adjustPlan: (plan) => planWithKit(plan, kitDir),
  };
}

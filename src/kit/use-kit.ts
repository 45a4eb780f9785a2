/**
 * A build or warm from a kit, before anything runs: the kit is verified as `kit verify` does it (every file
 * against kit.json's checksums, nothing extra, no link leaving it, kit.json.asc against --keyring when one is
 * given) and must cover the stack and the targets; else an InputError naming each problem, before any engine is
 * touched. Then its builder image is loaded when the engine lacks it, and the stack and plan are pointed at the kit.
 */
import { join } from "node:path";
import type { Stack } from "../config/types.js";
import { imageExists, loadImage, type Engine } from "../docker/index.js";
import { InputError } from "../errors.js";
import type { BuildPlan } from "../plan/types.js";
import type { Reporter } from "../ui/reporter.js";
import { planWithKit } from "./kit-plan.js";
import { stackFromKit } from "./kit-stack.js";
import { KIT_LAYOUT } from "./layout.js";
import type { KitManifest } from "./manifest.js";
import { verifyKit } from "./verify.js";

export interface KitBuild {
  manifest: KitManifest;
  stack: Stack;
  adjustPlan: (plan: BuildPlan) => BuildPlan;
}

export interface CheckedKit {
  manifest: KitManifest;
  /** What the run's output must say (a signature left unchecked); empty when there is nothing to say. */
  warnings: string[];
}

/**
 * Refuse unless the kit is what kit.json says (and what its signature says, with a keyring) and covers the build.
 * Reads and checksums the kit's files; no engine touched.
 */
export async function checkKitForBuild(
  kitDir: string,
  stack: Stack,
  options: { targets?: readonly string[]; keyring?: string } = {},
): Promise<CheckedKit> {
  const verdict = await verifyKit(kitDir, {
    stack,
    ...(options.targets === undefined ? {} : { targets: options.targets }),
    ...(options.keyring === undefined ? {} : { keyring: options.keyring }),
  });
  if (verdict.problems.length > 0) {
    throw new InputError(
      `--kit ${kitDir} is refused for ${stack.file}:\n${verdict.problems.map((p) => `  ${p}`).join("\n")}`,
      {
        hint:
          options.keyring === undefined
            ? "a kit is used only as `kit create` made it: make it again on a connected host, or copy it again"
            : "a kit is used only as `kit create` made it and signed by the key of --keyring",
      },
    );
  }
  const warnings =
    verdict.signature === "unchecked"
      ? [
          `kit ${kitDir}: ${KIT_LAYOUT.manifest} is signed, but its signature was NOT checked (no --keyring); ` +
            `its checksums were. To check it, give --keyring PUBLIC.asc, the site's public key (or run ` +
            `stack-factory kit verify ${kitDir} --keyring PUBLIC.asc)`,
        ]
      : [];
  return { manifest: verdict.manifest, warnings };
}

/** After checkKitForBuild: the builder images loaded where missing, the stack and plan pointed at the kit. */
export async function prepareKitBuild(
  kitDir: string,
  stack: Stack,
  manifest: KitManifest,
  options: { engine: Engine; reporter: Reporter; signal: AbortSignal },
): Promise<KitBuild> {
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

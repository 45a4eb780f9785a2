/**
 * The builder image on every engine that is up: an engine without it is down; the run cannot start when no engine
 * has it (as with one engine whose image build failed).
 */
import type { BuildPlan } from "../plan/types.js";
import { BuildError } from "../errors.js";
import type { Reporter } from "../ui/reporter.js";
import { ensureImages, type EngineImage } from "./engine-images.js";
import type { EngineSet } from "./engine-set.js";

export interface BuilderImages {
  /** The image on an engine that has it. */
  of(engine: string): EngineImage;
  /** The first engine's image (the run's). */
  first: EngineImage;
  /** Whether any engine built it. */
  built: boolean;
}

export async function builderImages(
  plan: BuildPlan,
  engines: EngineSet,
  options: { reporter: Reporter; signal: AbortSignal },
): Promise<BuilderImages> {
  const images = await ensureImages(engines.live(), plan.builder, options);
  const first = [...images.values()].find((i): i is EngineImage => !(i instanceof Error));
  if (first === undefined) {
    throw (
      [...images.values()].find((i) => i instanceof Error) ??
      new BuildError(`no engine can build: ${engines.downList()}`)
    );
  }
  for (const [name, image] of images)
    if (image instanceof Error) engines.markDown(name, `has no builder image: ${image.message}`);
  const built = [...images.values()].some((i) => !(i instanceof Error) && i.built);
  options.reporter.emit({ type: "image", tag: plan.builder.tag, built });
  return { of: (name) => images.get(name) as EngineImage, first, built };
}

/**
 * The builder image on every engine of a run. Per architecture: engines that have it keep it; the others get a copy
 * from one that has it (through the engines' APIs), or, when none has it yet, it is built on the first of them and
 * copied to the rest. An engine that can get it neither way has the reason instead, and builds nothing.
 */
import { copyImage, ensureImage, imageExists, imageId } from "../docker/index.js";
import { CancelledError } from "../errors.js";
import type { ImagePlan } from "../plan/types.js";
import type { Reporter } from "../ui/reporter.js";
import type { RunEngine } from "./engines.js";

export interface EngineImage {
  built: boolean;
  id: string;
}

export async function ensureImages(
  engines: readonly RunEngine[],
  image: ImagePlan,
  options: { reporter: Reporter; signal: AbortSignal },
): Promise<Map<string, EngineImage | Error>> {
  const { reporter, signal } = options;
  const out = new Map<string, EngineImage | Error>();
  const byArch = new Map<string, RunEngine[]>();
  for (const e of engines) byArch.set(e.arch, [...(byArch.get(e.arch) ?? []), e]);
  const build = async (e: RunEngine): Promise<EngineImage> =>
    ensureImage(e.engine, {
      tag: image.tag,
      files: image.files,
      signal,
      onLine: (line: string) => reporter.emit({ type: "image-line", line }),
    });
  const record = async <T>(e: RunEngine, work: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await work();
    } catch (error) {
      if (error instanceof CancelledError || signal.aborted) throw error;
      out.set(e.name, error instanceof Error ? error : new Error(String(error)));
      return undefined;
    }
  };

  for (const group of byArch.values()) {
    const present: RunEngine[] = [];
    for (const e of group) {
      const has = await record(e, () => imageExists(e.engine, image.tag));
      if (has === true) {
        const id = await record(e, () => imageId(e.engine, image.tag));
        if (id !== undefined) {
          out.set(e.name, { built: false, id });
          present.push(e);
        }
      }
    }
    for (const e of group) {
      if (out.has(e.name)) continue;
      const source = present[0];
      if (source !== undefined) {
        const copied = await record(e, async () => {
          await copyImage(source.engine, e.engine, image.tag, signal);
          return { built: false, id: await imageId(e.engine, image.tag) };
        });
        if (copied !== undefined) {
          reporter.emit({
            type: "info",
            message: `builder image ${image.tag} copied from engine ${source.name} to ${e.name}`,
          });
          out.set(e.name, copied);
          continue;
        }
        out.delete(e.name); // a failed copy: build it there instead
      }
      const built = await record(e, () => build(e));
      if (built !== undefined) {
        out.set(e.name, built);
        present.push(e);
      }
    }
  }
  return out;
}

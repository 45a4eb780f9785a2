import type { Readable } from "node:stream";
import { CancelledError } from "../errors.js";
import { throwIfAborted } from "./abort.js";
import type { Engine } from "./engine.js";
import { dockerError } from "./failure.js";
import { imageExists } from "./image-build.js";

/**
 * Copies an image from one engine to another through the engines' APIs (`docker save | docker load`, streamed, no
 * file on this host). For engines of one architecture, copying the builder image is faster than building it again
 * and gives every engine the same image.
 */
export async function copyImage(from: Engine, to: Engine, tag: string, signal?: AbortSignal): Promise<void> {
  throwIfAborted(signal);
  try {
    const saved = (await from.docker.getImage(tag).get()) as unknown as Readable;
    const onAbort = () => saved.destroy(new CancelledError());
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const progress = (await to.docker.loadImage(saved, { quiet: true })) as unknown as Readable;
      // The load reports through its response stream; an error arrives as an `error` event or as a JSON line.
      let text = "";
      for await (const chunk of progress) text += String(chunk);
      const failure = text
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l !== "")
        .map((l) => {
          try {
            return (JSON.parse(l) as { error?: string }).error;
          } catch {
            return undefined;
          }
        })
        .find((e) => e !== undefined);
      if (failure !== undefined) throw new Error(failure);
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  } catch (error) {
    if (signal?.aborted) throw new CancelledError();
    throw dockerError(`copying image ${tag} from ${from.name} to ${to.name}`, error);
  }
  if (!(await imageExists(to, tag)))
    throw dockerError(
      `copying image ${tag} from ${from.name} to ${to.name}`,
      new Error("the image is not there after the load"),
    );
}

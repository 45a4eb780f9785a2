import { createReadStream, createWriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { CancelledError } from "../errors.js";
import { throwIfAborted } from "./abort.js";
import type { Engine } from "./engine.js";
import { dockerError } from "./failure.js";
import { imageExists } from "./image-build.js";

/**
 * An image to a file and back through the engine API (`docker save` / `docker load`): a kit carries the builder
 * image across an air gap. The file is written under a temporary name and renamed into place whole.
 */
export async function saveImage(engine: Engine, tag: string, file: string, signal?: AbortSignal): Promise<void> {
  throwIfAborted(signal);
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    const saved = (await engine.docker.getImage(tag).get()) as unknown as Readable;
    await pipeline(saved, createWriteStream(tmp), ...(signal === undefined ? [] : [{ signal }]));
    await rename(tmp, file);
  } catch (error) {
    await rm(tmp, { force: true });
    if (signal?.aborted) throw new CancelledError();
    throw dockerError(`saving image ${tag} to ${file}`, error);
  }
}

/** Load a `docker save` file into the engine; fails unless `tag` is there afterwards. */
export async function loadImage(engine: Engine, file: string, tag: string, signal?: AbortSignal): Promise<void> {
  throwIfAborted(signal);
  try {
    const progress = (await engine.docker.loadImage(createReadStream(file), { quiet: true })) as unknown as Readable;
    let text = "";
    for await (const chunk of progress) text += String(chunk);
    const failure = text
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l.startsWith("{"))
      .map((l) => (JSON.parse(l) as { error?: string }).error)
      .find((e) => e !== undefined);
    if (failure !== undefined) throw new Error(failure);
  } catch (error) {
    if (signal?.aborted) throw new CancelledError();
    throw dockerError(`loading image ${tag} from ${file}`, error);
  }
  if (!(await imageExists(engine, tag)))
    throw dockerError(`loading image ${tag} from ${file}`, new Error(`${file} does not hold ${tag}`));
}

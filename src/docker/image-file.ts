import { createReadStream, createWriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { extract } from "tar-stream";
import { CancelledError, DockerError } from "../errors.js";
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

/**
 * The tags a `docker save` file would give on load: `manifest.json`'s RepoTags and the legacy `repositories` file's.
 * A load may tag anything the file names, so a file from elsewhere is read before it is loaded.
 */
export async function savedImageTags(file: string): Promise<string[]> {
  const tags: string[] = [];
  const extractor = extract();
  createReadStream(file)
    .on("error", (error) => extractor.destroy(error))
    .pipe(extractor);
  for await (const entry of extractor) {
    const name = entry.header.name.replace(/^\.\//, "");
    if (name !== "manifest.json" && name !== "repositories") {
      entry.resume();
      continue;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    const data = JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
    if (name === "manifest.json")
      for (const image of data as { RepoTags?: string[] | null }[]) tags.push(...(image.RepoTags ?? []));
    else
      for (const [repo, byTag] of Object.entries(data as Record<string, Record<string, string>>))
        for (const t of Object.keys(byTag)) tags.push(`${repo}:${t}`);
  }
  return [...new Set(tags)];
}

/** Load a `docker save` file into the engine, only if it tags `tag` and nothing else; fails unless `tag` is there. */
export async function loadImage(engine: Engine, file: string, tag: string, signal?: AbortSignal): Promise<void> {
  throwIfAborted(signal);
  const tags = await savedImageTags(file).catch((error: unknown) => {
    throw new DockerError(`loading image ${tag} from ${file}: not a docker save file (${String(error)})`);
  });
  if (tags.length !== 1 || tags[0] !== tag)
    throw new DockerError(
      `loading image ${tag} from ${file}: it would tag ${tags.length === 0 ? "nothing" : tags.join(", ")}, not ${tag} alone`,
    );
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

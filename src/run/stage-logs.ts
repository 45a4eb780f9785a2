import { createWriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { extract } from "tar-stream";
import type { BuildContainer } from "../docker/index.js";
import { STAGE_LOG_FILES } from "../spack/contract.js";

/**
 * Copy the logs of a failed build's stage directory out of the container before it goes, into `dest`.
 * Only regular files with known log names are written, each under its base name (mode 0600): nothing in the
 * archive can choose where a file lands. Returns the host paths written.
 */
export async function copyStageLogs(container: BuildContainer, stageDir: string, dest: string): Promise<string[]> {
  const written: string[] = [];
  const archive = await container.getArchive(stageDir);
  const untar = extract();
  await mkdir(dest, { recursive: true });
  const done = (async () => {
    for await (const entry of untar) {
      const base = entry.header.name.split("/").pop() ?? "";
      if (entry.header.type === "file" && STAGE_LOG_FILES.test(base) && !written.includes(join(dest, base))) {
        const path = join(dest, base);
        // A build's logs may hold anything its environment had: for the factory's user only.
        await pipeline(entry, createWriteStream(path, { mode: 0o600 }));
        written.push(path);
      } else {
        entry.resume();
      }
    }
  })();
  await Promise.all([pipeline(archive, untar), done]);
  return written;
}

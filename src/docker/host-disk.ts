import type { Engine } from "./engine.js";
import { dockerError } from "./failure.js";
import { LABEL } from "./labels.js";
import { runOneShot } from "./one-shot.js";

/**
 * Free bytes of the file system holding `path` on the engine's host, for engines whose host is not this one:
 * `df` in a one-shot container of one of the factory's images there, with `path` mounted read-only. Undefined when
 * the engine has no factory image yet (the first build makes one). Throws when the path is missing on that host.
 */
export async function freeBytesOnEngineHost(
  engine: Engine,
  path: string,
  signal?: AbortSignal,
): Promise<number | undefined> {
  let images: { RepoTags?: string[] | null; Id: string }[];
  try {
    images = await engine.docker.listImages({ filters: { label: [`${LABEL.image}=1`] } });
  } catch (error) {
    throw dockerError(`listing the factory's images on ${engine.name}`, error);
  }
  const image = images[0];
  if (image === undefined) return undefined;
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const { exitCode } = await runOneShot(engine, {
    image: image.Id,
    cmd: ["df", "-Pk", "/sf/probe"],
    mounts: [{ host: path, container: "/sf/probe", readOnly: true }],
    onStdout: (c) => void out.push(c),
    onStderr: (c) => void err.push(c),
    ...(signal === undefined ? {} : { signal }),
  });
  const lines = Buffer.concat(out).toString("utf8").trim().split("\n");
  const fields = (lines[1] ?? "").trim().split(/\s+/);
  const available = Number(fields[3]);
  if (exitCode !== 0 || !Number.isFinite(available)) {
    throw dockerError(
      `measuring free disk under ${path} on ${engine.name}`,
      new Error(Buffer.concat(err).toString("utf8").trim() || `df exited ${exitCode}`),
    );
  }
  return available * 1024;
}

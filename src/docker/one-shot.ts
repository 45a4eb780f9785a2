import type { Readable } from "node:stream";
import { CancelledError } from "../errors.js";
import { abortion, throwIfAborted } from "./abort.js";
import { envList, hostConfig, type Resources } from "./container-spec.js";
import { demuxOutput, type ChunkSink } from "./demux.js";
import type { Engine } from "./engine.js";
import { dockerError } from "./failure.js";
import { factoryLabels } from "./labels.js";
import { removeContainer } from "./remove.js";

export interface OneShotOptions extends Resources {
  image: string;
  /** Argument vector, run without a shell. */
  cmd: string[];
  env?: Record<string, string>;
  /** `uid[:gid]` or a user name known to the image. */
  user?: string;
  workdir?: string;
  labels?: Record<string, string>;
  signal?: AbortSignal;
  onStdout?: ChunkSink;
  onStderr?: ChunkSink;
}

/**
 * Runs one command in a fresh container and removes the container afterwards (also on error or abort).
 * Output is attached before the start, so none is lost. Aborting removes the container at once and
 * rejects with CancelledError.
 */
export async function runOneShot(engine: Engine, options: OneShotOptions): Promise<{ exitCode: number }> {
  const { signal, image } = options;
  throwIfAborted(signal);
  const what = `container of ${image} running ${JSON.stringify(options.cmd)}`;
  let container;
  try {
    container = await engine.docker.createContainer({
      Image: image,
      Cmd: options.cmd,
      Env: envList(options.env),
      ...(options.user !== undefined ? { User: options.user } : {}),
      ...(options.workdir !== undefined ? { WorkingDir: options.workdir } : {}),
      Labels: factoryLabels(engine.identity, options.labels),
      Tty: false,
      OpenStdin: false,
      AttachStdin: false,
      AttachStdout: true,
      AttachStderr: true,
      HostConfig: hostConfig(options),
    });
  } catch (error) {
    throw dockerError(`creating the ${what}`, error);
  }
  const cancel = abortion(signal, () => void removeContainer(container).catch(() => {}));
  try {
    const stream = (await container.attach({ stream: true, stdout: true, stderr: true })) as unknown as Readable;
    const output = demuxOutput(engine.docker.modem, stream, { onStdout: options.onStdout, onStderr: options.onStderr });
    output.catch(() => {});
    await Promise.race([container.start(), cancel.promise]);
    const [result] = await Promise.race([Promise.all([container.wait(), output]), cancel.promise]);
    return { exitCode: (result as { StatusCode: number }).StatusCode };
  } catch (error) {
    if (signal?.aborted) throw new CancelledError();
    throw dockerError(`running the ${what}`, error);
  } finally {
    cancel.stop();
    // A container left behind by a failed removal still carries the run's labels: cleanup finds it.
    await removeContainer(container).catch(() => {});
  }
}

import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type Docker from "dockerode";
import { DockerError } from "../errors.js";
import { envList } from "./container-spec.js";
import { demuxOutput, type ChunkSink } from "./demux.js";

export interface ExecOptions {
  env?: Record<string, string>;
  /** Run as this user instead of the container's. */
  user?: string;
  workdir?: string;
  onStdout?: ChunkSink;
  onStderr?: ChunkSink;
  signal?: AbortSignal;
  /** Bytes for the program's stdin, then end of file (secrets reach a container this way: never in argv or env). */
  stdin?: Buffer;
}

/**
 * Runs an argument vector (no shell) in a running container and waits for it. Resolves with its exit code
 * once all output was delivered. Abort handling belongs to the caller: an exec cannot be killed by itself.
 */
export async function execArgv(
  modem: Docker["modem"],
  container: Docker.Container,
  argv: string[],
  options: Omit<ExecOptions, "signal">,
): Promise<{ exitCode: number }> {
  if (argv.length === 0) throw new DockerError("exec needs a program to run: the argument vector is empty");
  const exec = await container.exec({
    Cmd: argv,
    Env: envList(options.env),
    ...(options.user !== undefined ? { User: options.user } : {}),
    ...(options.workdir !== undefined ? { WorkingDir: options.workdir } : {}),
    AttachStdin: options.stdin !== undefined,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
  });
  const stream = (await exec.start({ hijack: true, stdin: options.stdin !== undefined })) as Readable;
  const output = demuxOutput(modem, stream, { onStdout: options.onStdout, onStderr: options.onStderr });
  if (options.stdin !== undefined) (stream as unknown as NodeJS.WritableStream).end(options.stdin);
  await output;
  return { exitCode: await exitCodeOf(exec) };
}

/** The engine may still report the exec as running for a moment after its output has ended. */
async function exitCodeOf(exec: Docker.Exec): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const info = await exec.inspect();
    if (!info.Running && info.ExitCode !== null && info.ExitCode !== undefined) return info.ExitCode;
    if (attempt >= 100) {
      throw new DockerError(`exec ${exec.id.slice(0, 12)} still reports running after its output ended`);
    }
    await sleep(Math.min(10 * (attempt + 1), 100));
  }
}

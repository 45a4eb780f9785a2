import type { Readable } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import { CancelledError, DockerError } from "../errors.js";
import { throwIfAborted } from "./abort.js";
import { packFiles } from "./archive.js";
import type { Engine } from "./engine.js";
import { dockerError, statusCodeOf } from "./failure.js";
import { imageLabels } from "./labels.js";

/** Build context entries all carry this modification time, so an unchanged context packs to the same bytes. */
const CONTEXT_MTIME = new Date("2000-01-01T00:00:00Z");
/** How many lines of build output a failure message quotes. */
const TAIL_LINES = 25;
/** Colour codes the engine puts around a RUN's stderr. */
const SGR = /\u001b\[[0-9;]*m/g;

export interface BuildImageOptions {
  tag: string;
  /** Build context: relative path → content. Must contain `Dockerfile`. */
  files: Record<string, string>;
  labels?: Record<string, string>;
  buildArgs?: Record<string, string>;
  signal?: AbortSignal;
  /** Each line the build prints (the `stream` text of its progress events). */
  onLine?: (line: string) => void;
}

interface BuildEvent {
  stream?: string;
  status?: string;
  error?: string;
  errorDetail?: { message?: string; code?: number };
  aux?: { ID?: string };
}

/** Keeps the last lines of output and splits `stream` text into lines. */
class LineLog {
  readonly tail: string[] = [];
  private partial = "";
  constructor(private readonly onLine: ((line: string) => void) | undefined) {}
  push(text: string): void {
    const parts = (this.partial + text).split("\n");
    this.partial = parts.pop() ?? "";
    for (const line of parts) this.line(line);
  }
  flush(): void {
    if (this.partial !== "") this.line(this.partial);
    this.partial = "";
  }
  private line(raw: string): void {
    const line = raw.replace(SGR, "").replace(/\r$/, "");
    this.tail.push(line);
    if (this.tail.length > TAIL_LINES) this.tail.shift();
    this.onLine?.(line);
  }
}

/** Reads the build's progress stream; rejects on the first event that reports an error. */
function followBuild(stream: Readable, tag: string, log: LineLog): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let buffered = "";
    let settled = false;
    // A multi-byte UTF-8 character split between two chunks stays whole.
    const decoder = new StringDecoder("utf8");
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      stream.destroy();
      reject(error);
    };
    const handle = (raw: string) => {
      const text = raw.trim();
      if (text === "") return;
      let event: BuildEvent;
      try {
        event = JSON.parse(text) as BuildEvent;
      } catch (error) {
        fail(
          new DockerError(`building image ${tag}: the engine sent an unreadable progress line: ${text}`, {
            cause: error,
          }),
        );
        return;
      }
      if (typeof event.stream === "string") log.push(event.stream);
      if (event.error !== undefined || event.errorDetail !== undefined) {
        log.flush();
        const message = (event.errorDetail?.message ?? event.error ?? "unknown error").trim();
        const tail = log.tail.length > 0 ? `\nlast lines of output:\n${log.tail.map((l) => `  ${l}`).join("\n")}` : "";
        fail(new DockerError(`building image ${tag} failed: ${message}${tail}`, { cause: event }));
      }
    };
    stream.on("data", (chunk: Buffer) => {
      buffered += decoder.write(chunk);
      for (let newline = buffered.indexOf("\n"); !settled && newline >= 0; newline = buffered.indexOf("\n")) {
        handle(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
      }
    });
    stream.on("error", (error) => fail(dockerError(`building image ${tag}`, error)));
    stream.on("close", () =>
      fail(new DockerError(`building image ${tag}: the engine closed the progress stream early`)),
    );
    stream.on("end", () => {
      buffered += decoder.end();
      if (!settled) handle(buffered);
      log.flush();
      if (settled) return;
      settled = true;
      resolve();
    });
  });
}

/** Builds `tag` from an in-memory context. Rejects with DockerError as soon as the build reports an error. */
export async function buildImage(engine: Engine, options: BuildImageOptions): Promise<void> {
  const { tag, signal } = options;
  throwIfAborted(signal);
  if (!("Dockerfile" in options.files)) {
    throw new DockerError(
      `building image ${tag}: the context has no Dockerfile (files: ${Object.keys(options.files).join(", ") || "none"})`,
    );
  }
  const context = packFiles(options.files, { mtime: CONTEXT_MTIME });
  const log = new LineLog(options.onLine);
  try {
    const stream = (await engine.docker.buildImage(context, {
      t: tag,
      labels: imageLabels(engine.identity, options.labels),
      ...(options.buildArgs ? { buildargs: options.buildArgs } : {}),
      rm: true,
      forcerm: true,
      pull: false,
      ...(engine.network === undefined ? {} : { networkmode: engine.network }),
      ...(signal ? { abortSignal: signal } : {}),
    })) as unknown as Readable;
    await followBuild(stream, tag, log);
  } catch (error) {
    if (signal?.aborted) throw new CancelledError();
    throw dockerError(`building image ${tag}`, error);
  }
  // A stream that ended without an error event but left no image means the build did not finish.
  if (!(await imageExists(engine, tag))) {
    const tail = log.tail.map((l) => `  ${l}`).join("\n");
    throw new DockerError(`building image ${tag}: the build ended without producing the image\n${tail}`);
  }
}

/** Whether the engine has an image with this tag (or id). */
export async function imageExists(engine: Engine, tag: string): Promise<boolean> {
  try {
    await engine.docker.getImage(tag).inspect();
    return true;
  } catch (error) {
    if (statusCodeOf(error) === 404) return false;
    throw dockerError(`inspecting image ${tag}`, error);
  }
}

/** The engine's id of an image (`sha256:...`). */
export async function imageId(engine: Engine, tag: string): Promise<string> {
  try {
    return (await engine.docker.getImage(tag).inspect()).Id;
  } catch (error) {
    throw dockerError(`inspecting image ${tag}`, error);
  }
}

/**
 * Builds the image unless its tag already exists (tags are content hashes, so an existing tag is up to date).
 * Returns whether it was built, and the image's id.
 */
export async function ensureImage(engine: Engine, options: BuildImageOptions): Promise<{ built: boolean; id: string }> {
  const built = !(await imageExists(engine, options.tag));
  if (built) await buildImage(engine, options);
  return { built, id: await imageId(engine, options.tag) };
}

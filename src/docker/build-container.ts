import type { Readable } from "node:stream";
import type Docker from "dockerode";
import { CancelledError, DockerError } from "../errors.js";
import { abortion, throwIfAborted } from "./abort.js";
import { packFiles, readFirstFile, type FileEntry } from "./archive.js";
import { envList, hostConfig, type Resources } from "./container-spec.js";
import type { Engine } from "./engine.js";
import { execArgv, type ExecOptions } from "./exec.js";
import { dockerError } from "./failure.js";
import { factoryLabels } from "./labels.js";
import { removeContainer } from "./remove.js";

export type { ExecOptions } from "./exec.js";

export interface BuildContainerOptions extends Resources {
  image: string;
  env?: Record<string, string>;
  user?: string;
  workingDir?: string;
  labels?: Record<string, string>;
  signal?: AbortSignal;
}

/** Owner of files written with putFiles (default root). */
export interface FileOwner {
  uid: number;
  gid: number;
}

/** A running container that steps are executed in, one after the other. */
export interface BuildContainer extends AsyncDisposable {
  readonly id: string;
  /** Runs an argument vector (no shell). Aborting removes the whole container and rejects with CancelledError. */
  exec(argv: string[], options?: ExecOptions): Promise<{ exitCode: number }>;
  /** Writes files (relative path → content) under `dir`, creating `dir` when missing. */
  putFiles(dir: string, files: Record<string, FileEntry>, owner?: FileOwner): Promise<void>;
  /** Unpacks a tar stream into `dir` (which must exist), as the engine extracts archives. */
  putArchive(dir: string, archive: NodeJS.ReadableStream): Promise<void>;
  /** A tar stream of `path` (a file or a directory) as the engine archives it. */
  getArchive(path: string, signal?: AbortSignal): Promise<Readable>;
  /** The content of one regular file. */
  readFile(path: string, signal?: AbortSignal): Promise<Buffer>;
  /** Removes the container (force, with its anonymous volumes); idempotent. */
  remove(): Promise<void>;
}

/** The command that keeps a build container alive: coreutils `sleep`, under the engine's init process. */
const KEEP_ALIVE = ["sleep", "infinity"];

class StartedBuildContainer implements BuildContainer {
  private removal: Promise<void> | undefined;

  constructor(
    private readonly engine: Engine,
    private readonly container: Docker.Container,
  ) {}

  get id(): string {
    return this.container.id;
  }

  async exec(argv: string[], options: ExecOptions = {}): Promise<{ exitCode: number }> {
    const { signal, ...rest } = options;
    throwIfAborted(signal);
    const cancel = abortion(signal, () => void this.remove().catch(() => {}));
    try {
      return await Promise.race([execArgv(this.engine.docker.modem, this.container, argv, rest), cancel.promise]);
    } catch (error) {
      if (signal?.aborted) throw new CancelledError();
      throw dockerError(`running ${JSON.stringify(argv)} in container ${this.shortId}`, error);
    } finally {
      cancel.stop();
    }
  }

  async putFiles(dir: string, files: Record<string, FileEntry>, owner?: FileOwner): Promise<void> {
    if (!dir.startsWith("/"))
      throw new DockerError(`putFiles needs an absolute container directory, got ${JSON.stringify(dir)}`);
    const stderr: Buffer[] = [];
    const mkdir = await this.exec(["mkdir", "-p", "--", dir], { onStderr: (c) => stderr.push(c) });
    if (mkdir.exitCode !== 0) {
      throw new DockerError(
        `cannot create ${dir} in container ${this.shortId} (mkdir exit code ${mkdir.exitCode}): ${Buffer.concat(stderr).toString().trim()}`,
      );
    }
    const archive = packFiles(files, { mtime: new Date(), ...(owner ?? {}) });
    try {
      await this.container.putArchive(archive, { path: dir });
    } catch (error) {
      throw dockerError(`writing ${Object.keys(files).length} file(s) into ${dir} of container ${this.shortId}`, error);
    }
  }

  async putArchive(dir: string, archive: NodeJS.ReadableStream): Promise<void> {
    // A stream that fails (a file changed while read) ends the upload with its error, not a hung request.
    const upload = new AbortController();
    const broken = new Promise<never>((_, reject) =>
      archive.once("error", (error: Error) => {
        upload.abort();
        reject(error);
      }),
    );
    broken.catch(() => {});
    try {
      await Promise.race([
        this.container.putArchive(archive, { path: dir, abortSignal: upload.signal } as { path: string }),
        broken,
      ]);
    } catch (error) {
      throw dockerError(`unpacking an archive into ${dir} of container ${this.shortId}`, error);
    }
  }

  async getArchive(path: string, signal?: AbortSignal): Promise<Readable> {
    try {
      return (await this.container.getArchive({ path, ...(signal ? { abortSignal: signal } : {}) })) as Readable;
    } catch (error) {
      if (signal?.aborted) throw new CancelledError();
      throw dockerError(`reading ${path} from container ${this.shortId}`, error);
    }
  }

  async readFile(path: string, signal?: AbortSignal): Promise<Buffer> {
    const archive = await this.getArchive(path, signal);
    try {
      return await readFirstFile(archive, `${path} in container ${this.shortId}`);
    } catch (error) {
      if (signal?.aborted) throw new CancelledError();
      throw dockerError(`reading ${path} from container ${this.shortId}`, error);
    }
  }

  remove(): Promise<void> {
    this.removal ??= removeContainer(this.container);
    return this.removal;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.remove();
  }

  private get shortId(): string {
    return this.container.id.slice(0, 12);
  }
}

/** Creates and starts a long-lived build container; commands then run in it with `exec`. */
export async function startContainer(engine: Engine, options: BuildContainerOptions): Promise<BuildContainer> {
  const { signal, image } = options;
  throwIfAborted(signal);
  let container: Docker.Container;
  try {
    container = await engine.docker.createContainer({
      Image: image,
      Cmd: KEEP_ALIVE,
      Env: envList(options.env),
      ...(options.user !== undefined ? { User: options.user } : {}),
      ...(options.workingDir !== undefined ? { WorkingDir: options.workingDir } : {}),
      Labels: factoryLabels(engine.identity, options.labels),
      Tty: false,
      OpenStdin: false,
      HostConfig: { ...hostConfig(options), ...(engine.network === undefined ? {} : { NetworkMode: engine.network }) },
    });
  } catch (error) {
    throw dockerError(`creating a build container from ${image}`, error);
  }
  const started = new StartedBuildContainer(engine, container);
  try {
    await container.start();
    throwIfAborted(signal);
    return started;
  } catch (error) {
    await started.remove().catch(() => {});
    if (signal?.aborted) throw new CancelledError();
    throw dockerError(`starting a build container from ${image}`, error);
  }
}

/**
 * A container for the packing benchmark without a network (packing needs none, and it keeps the benchmark
 * independent of the engine's bridge). It offers what the packer uses of a build container: exec, putFiles,
 * getArchive, through the same engine API calls as src/docker.
 */
import { PassThrough, type Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import Docker from "dockerode";
import { packFiles, type ExecOptions, type FileEntry, type FileOwner } from "../src/docker/index.js";
import type { PackContainer } from "../src/package/container-pack.js";

export class NoNetworkContainer implements PackContainer {
  private constructor(
    private readonly docker: Docker,
    private readonly container: Docker.Container,
  ) {}

  get id(): string {
    return this.container.id;
  }

  static async start(
    image: string,
    binds: { host: string; container: string; readOnly: boolean }[],
  ): Promise<NoNetworkContainer> {
    const docker = new Docker();
    const container = await docker.createContainer({
      Image: image,
      Cmd: ["sleep", "infinity"],
      Labels: { "stack-factory.bench": "pack" },
      HostConfig: {
        Init: true,
        NetworkMode: "none",
        Mounts: binds.map((b) => ({ Type: "bind", Source: b.host, Target: b.container, ReadOnly: b.readOnly })),
      },
    });
    await container.start();
    return new NoNetworkContainer(docker, container);
  }

  async exec(argv: string[], options: ExecOptions = {}): Promise<{ exitCode: number }> {
    const exec = await this.container.exec({ Cmd: argv, AttachStdout: true, AttachStderr: true, Tty: false });
    const stream = (await exec.start({ hijack: true, stdin: false })) as Readable;
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    stdout.on("data", (c: Buffer) => options.onStdout?.(c));
    stderr.on("data", (c: Buffer) => options.onStderr?.(c));
    const ended = new Promise<void>((resolve, reject) => {
      stream.on("end", resolve);
      stream.on("close", resolve);
      stream.on("error", reject);
    });
    this.docker.modem.demuxStream(stream, stdout, stderr);
    await ended;
    for (;;) {
      const info = await exec.inspect();
      if (!info.Running && info.ExitCode !== null) return { exitCode: info.ExitCode };
      await sleep(10);
    }
  }

  async putFiles(dir: string, files: Record<string, FileEntry>, owner?: FileOwner): Promise<void> {
    await this.exec(["mkdir", "-p", "--", dir]);
    await this.container.putArchive(packFiles(files, { mtime: new Date(), ...(owner ?? {}) }), { path: dir });
  }

  async getArchive(path: string): Promise<Readable> {
    return (await this.container.getArchive({ path })) as Readable;
  }

  async remove(): Promise<void> {
    await this.container.remove({ force: true, v: true });
  }
}

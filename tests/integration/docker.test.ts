import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { extract } from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CancelledError, DockerError } from "../../src/errors.js";
import { isProcessAlive } from "../../src/process/alive.js";
import {
  buildImage,
  connectEngine,
  ensureImage,
  imageExists,
  LABEL,
  newRunId,
  removeByLabel,
  removeDeadRuns,
  runOneShot,
  startContainer,
  statusCodeOf,
  type BuildContainer,
  type Engine,
} from "../../src/docker/index.js";
import { requireEngine, requireTestImage } from "./helpers/engine.js";

const CASE = "stack-factory-test.case";

let engine: Engine;
let base: string;
const extraEngines: Engine[] = [];
const builtTags: string[] = [];
const tempDirs: string[] = [];

function contentTag(files: Record<string, string>): string {
  const hash = createHash("sha256");
  for (const [name, content] of Object.entries(files).sort()) hash.update(`${name}\0${content}\0`);
  return `stack-factory-test/docker-layer:${hash.digest("hex").slice(0, 16)}`;
}

function collect(): { chunks: Buffer[]; sink: (c: Buffer) => void; text: () => string } {
  const chunks: Buffer[] = [];
  return { chunks, sink: (c) => chunks.push(c), text: () => Buffer.concat(chunks).toString("utf8") };
}

async function containerGone(e: Engine, id: string): Promise<boolean> {
  try {
    await e.docker.getContainer(id).inspect();
    return false;
  } catch (error) {
    if (statusCodeOf(error) === 404) return true;
    throw error;
  }
}

async function containersOfCase(caseName: string): Promise<string[]> {
  const list = await engine.docker.listContainers({
    all: true,
    filters: { label: [`${LABEL.run}=${engine.runId}`, `${CASE}=${caseName}`] },
  });
  return list.map((c) => c.Id);
}

async function entryNames(archive: Readable): Promise<string[]> {
  const names: string[] = [];
  const extractor = extract();
  archive.pipe(extractor);
  for await (const entry of extractor) {
    names.push(entry.header.name.replace(/\/$/, ""));
    entry.resume();
  }
  return names.sort();
}

/** A process id that certainly belonged to a process that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ["-e", ""]);
  const pid = child.pid;
  if (pid === undefined || isProcessAlive(pid)) throw new Error("could not obtain the pid of an exited process");
  return pid;
}

beforeAll(async () => {
  engine = await requireEngine();
  base = await requireTestImage(engine);
});

afterAll(async () => {
  for (const e of [engine, ...extraEngines]) if (e) await removeByLabel(e, { run: e.runId });
  for (const tag of builtTags)
    await engine?.docker
      .getImage(tag)
      .remove({ force: true })
      .catch(() => {});
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
});

describe("engine", () => {
  it("reports the engine version", async () => {
    const version = await engine.version();
    expect(version.apiVersion).toMatch(/^\d+\.\d+$/);
    expect(version.version).not.toBe("");
  });

  it("fails with a DockerError and a hint when no engine answers", async () => {
    const saved = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = `unix://${join(tmpdir(), `no-engine-${process.pid}.sock`)}`;
    try {
      const error = await connectEngine().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DockerError);
      expect((error as DockerError).message).toContain("no-engine-");
      expect((error as DockerError).hint).toContain("scripts/ensure-docker.sh");
    } finally {
      if (saved === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = saved;
    }
  });
});

describe("images", () => {
  it("builds a tagged, labelled image once and reuses it the second time", async () => {
    const files = {
      Dockerfile: `FROM ${base}\nCOPY hello.txt /opt/hello.txt\nRUN cat /opt/hello.txt\n`,
      "hello.txt": `hello from run ${engine.runId}\n`,
    };
    const tag = contentTag(files);
    builtTags.push(tag);
    const lines: string[] = [];
    const first = await ensureImage(engine, { tag, files, labels: { [CASE]: "build" }, onLine: (l) => lines.push(l) });
    expect(first.built).toBe(true);
    expect(lines.join("\n")).toContain(`hello from run ${engine.runId}`);
    expect(await imageExists(engine, tag)).toBe(true);
    const info = await engine.docker.getImage(tag).inspect();
    expect(first.id).toBe(info.Id);
    expect(info.Config.Labels).toMatchObject({ [LABEL.image]: "1", [CASE]: "build" });
    for (const key of [LABEL.factory, LABEL.run, LABEL.pid]) expect(info.Config.Labels).not.toHaveProperty(key);

    const again: string[] = [];
    const second = await ensureImage(engine, { tag, files, onLine: (l) => again.push(l) });
    expect(second).toEqual({ built: false, id: first.id });
    expect(again).toEqual([]);
  });

  it("labels an image so that a container started from it by hand is no dead run's for clean", async () => {
    // The image is built by a run whose process is gone, as a builder image outlives the run that built it.
    const builder = await requireEngine({ runId: newRunId(), pid: deadPid() });
    extraEngines.push(builder);
    const files = { Dockerfile: `FROM ${base}\nLABEL ${CASE}=by-hand-${builder.runId}\n` };
    const tag = contentTag(files);
    builtTags.push(tag);
    await ensureImage(builder, { tag, files });
    const byHand = await engine.docker.createContainer({ Image: tag, Cmd: ["true"] });
    try {
      const removed = await removeDeadRuns(engine);
      expect(removed.map((r) => r.id)).not.toContain(byHand.id);
      expect(await containerGone(engine, byHand.id)).toBe(false);
    } finally {
      await byHand.remove({ force: true });
    }
  });

  it("rejects a failing RUN with the error text and the last lines of output", async () => {
    const marker = `marker-${engine.runId}`;
    const files = { Dockerfile: `FROM ${base}\nRUN echo ${marker} && exit 7\nRUN echo never-reached\n` };
    const tag = contentTag(files);
    builtTags.push(tag);
    const error = await buildImage(engine, { tag, files }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DockerError);
    const message = (error as DockerError).message;
    expect(message).toContain("non-zero code: 7");
    expect(message).toContain(marker);
    expect(message).not.toContain("never-reached\n");
    expect(await imageExists(engine, tag)).toBe(false);
  });

  it("stops a build promptly when aborted", async () => {
    const files = { Dockerfile: `FROM ${base}\nRUN sleep 30 # ${engine.runId}\n` };
    const tag = contentTag(files);
    builtTags.push(tag);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 700);
    const started = Date.now();
    const error = await buildImage(engine, { tag, files, signal: controller.signal }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CancelledError);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await imageExists(engine, tag)).toBe(false);
  });
});

describe("one-shot containers", () => {
  it("writes into a bind mount, separates stdout from stderr and reports the exit code", async () => {
    const dir = await mkdtemp(join(tmpdir(), "stack-factory-oneshot-"));
    tempDirs.push(dir);
    await writeFile(join(dir, "input.txt"), "from the host\n");
    const out = collect();
    const err = collect();
    const result = await runOneShot(engine, {
      image: base,
      cmd: [
        "sh",
        "-c",
        'echo to-stdout; echo to-stderr >&2; cat /data/input.txt > /data/result.txt; echo "$GREETING" >> /data/result.txt; exit 3',
      ],
      env: { GREETING: "hi there" },
      mounts: [{ host: dir, container: "/data", readOnly: false }],
      workdir: "/data",
      labels: { [CASE]: "oneshot" },
      onStdout: out.sink,
      onStderr: err.sink,
    });
    expect(result.exitCode).toBe(3);
    expect(out.text()).toBe("to-stdout\n");
    expect(err.text()).toBe("to-stderr\n");
    expect(await readFile(join(dir, "result.txt"), "utf8")).toBe("from the host\nhi there\n");
    expect(await containersOfCase("oneshot")).toEqual([]);
  });

  it("honours read-only mounts and resource limits", async () => {
    const dir = await mkdtemp(join(tmpdir(), "stack-factory-ro-"));
    tempDirs.push(dir);
    const out = collect();
    const result = await runOneShot(engine, {
      image: base,
      cmd: [
        "sh",
        "-c",
        "touch /ro/x 2>/dev/null && echo writable || echo read-only; " +
          "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
      ],
      mounts: [{ host: dir, container: "/ro", readOnly: true }],
      cpus: 0.5,
      memory: 256 * 1024 * 1024,
      labels: { [CASE]: "limits" },
      onStdout: out.sink,
    });
    expect(result.exitCode).toBe(0);
    expect(out.text()).toBe(`read-only\n${256 * 1024 * 1024}\n`);
  });

  it("removes the container promptly when aborted", async () => {
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 700);
    const error = await runOneShot(engine, {
      image: base,
      cmd: ["sleep", "30"],
      labels: { [CASE]: "oneshot-abort" },
      signal: controller.signal,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CancelledError);
    expect(Date.now() - started).toBeLessThan(6000);
    expect(await containersOfCase("oneshot-abort")).toEqual([]);
  });

  it("reports a missing image as a DockerError with the engine's 404", async () => {
    const error = await runOneShot(engine, { image: "stack-factory-test/absent:none", cmd: ["true"] }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DockerError);
    expect(statusCodeOf(error)).toBe(404);
    expect((error as DockerError).message).toContain("stack-factory-test/absent:none");
  });
});

describe("build containers", () => {
  let box: BuildContainer;

  beforeAll(async () => {
    box = await startContainer(engine, {
      image: base,
      env: { FROM_CONTAINER: "container-env" },
      workingDir: "/tmp",
      labels: { [CASE]: "build-container" },
      cpus: 1,
      memory: 512 * 1024 * 1024,
    });
  });

  afterAll(async () => {
    await box?.remove();
  });

  it("passes an argument vector through untouched, without a shell", async () => {
    const out = collect();
    const result = await box.exec(["printf", "%s\\n", "a b", "x;y", "'q'", '"d"', "$HOME", "*"], {
      onStdout: out.sink,
    });
    expect(result.exitCode).toBe(0);
    expect(out.text()).toBe(`a b\nx;y\n'q'\n"d"\n$HOME\n*\n`);
  });

  it("reports exit codes, stderr, environment, user and working directory", async () => {
    const out = collect();
    const err = collect();
    const result = await box.exec(
      ["sh", "-c", 'echo "$FROM_CONTAINER $EXTRA $(id -u) $(pwd)"; echo oops >&2; exit 5'],
      {
        env: { EXTRA: "exec-env" },
        user: "65534",
        onStdout: out.sink,
        onStderr: err.sink,
      },
    );
    expect(result.exitCode).toBe(5);
    expect(out.text()).toBe("container-env exec-env 65534 /tmp\n");
    expect(err.text()).toBe("oops\n");
  });

  it("writes files with putFiles and reads them back with readFile and getArchive", async () => {
    const script = '#!/bin/sh\necho script-ran "$1"\n';
    await box.putFiles("/work/env", {
      "spack.yaml": "spack:\n  specs: [zlib]\n",
      "bin/run.sh": { content: script, mode: 0o755 },
    });
    expect((await box.readFile("/work/env/spack.yaml")).toString()).toBe("spack:\n  specs: [zlib]\n");
    expect((await box.readFile("/work/env/bin/run.sh")).toString()).toBe(script);

    const out = collect();
    expect(await box.exec(["/work/env/bin/run.sh", "ok"], { onStdout: out.sink })).toEqual({ exitCode: 0 });
    expect(out.text()).toBe("script-ran ok\n");

    expect(await entryNames(await box.getArchive("/work/env"))).toEqual([
      "env",
      "env/bin",
      "env/bin/run.sh",
      "env/spack.yaml",
    ]);
  });

  it("rejects reading a directory or a missing path", async () => {
    const notFile = await box.readFile("/work").catch((e: unknown) => e);
    expect(notFile).toBeInstanceOf(DockerError);
    expect((notFile as DockerError).message).toContain("not a regular file");

    const missing = await box.readFile("/no/such/file").catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(DockerError);
    expect(statusCodeOf(missing)).toBe(404);
  });

  it("removes the container within seconds when an exec is aborted", async () => {
    const doomed = await startContainer(engine, { image: base, labels: { [CASE]: "exec-abort" } });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 700);
    const started = Date.now();
    const error = await doomed.exec(["sleep", "30"], { signal: controller.signal }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CancelledError);
    expect(Date.now() - started).toBeLessThan(5000);
    // Removal was started by the abort; awaiting remove() joins it.
    await doomed.remove();
    expect(await containerGone(engine, doomed.id)).toBe(true);
  });

  it("cleans up on asyncDispose", async () => {
    let id = "";
    {
      await using scoped = await startContainer(engine, { image: base, labels: { [CASE]: "dispose" } });
      id = scoped.id;
      expect(await containerGone(engine, id)).toBe(false);
    }
    expect(await containerGone(engine, id)).toBe(true);
  });
});

describe("cleanup", () => {
  it("removeByLabel removes the containers of one run and keeps the others", async () => {
    const other = await requireEngine({ runId: newRunId() });
    extraEngines.push(other);
    const a = await startContainer(other, { image: base, labels: { [CASE]: "by-label" } });
    const b = await startContainer(other, { image: base, labels: { [CASE]: "by-label" } });
    const keep = await startContainer(engine, { image: base, labels: { [CASE]: "by-label-keep" } });
    try {
      const removed = await removeByLabel(engine, { run: other.runId });
      expect(removed.map((r) => r.id).sort()).toEqual([a.id, b.id].sort());
      expect(removed.every((r) => r.runId === other.runId)).toBe(true);
      expect(await containerGone(engine, a.id)).toBe(true);
      expect(await containerGone(engine, b.id)).toBe(true);
      expect(await containerGone(engine, keep.id)).toBe(false);
    } finally {
      await keep.remove();
    }
  });

  it("removeDeadRuns removes containers of exited processes on this host only", async () => {
    const pid = deadPid();
    const dead = await requireEngine({ runId: newRunId(), pid });
    const elsewhere = await requireEngine({ runId: newRunId(), pid, host: `elsewhere-${engine.runId}` });
    extraEngines.push(dead, elsewhere);
    const orphan = await startContainer(dead, { image: base, labels: { [CASE]: "dead" } });
    const foreign = await startContainer(elsewhere, { image: base, labels: { [CASE]: "dead-elsewhere" } });
    const alive = await startContainer(engine, { image: base, labels: { [CASE]: "alive" } });
    try {
      const removed = await removeDeadRuns(engine);
      const ids = removed.map((r) => r.id);
      expect(ids).toContain(orphan.id);
      expect(ids).not.toContain(foreign.id);
      expect(ids).not.toContain(alive.id);
      expect(removed.find((r) => r.id === orphan.id)?.pid).toBe(pid);
      expect(await containerGone(engine, orphan.id)).toBe(true);
      expect(await containerGone(engine, alive.id)).toBe(false);
    } finally {
      await Promise.all([alive.remove(), foreign.remove()]);
    }
  });
});

import { cp, readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { loadStack } from "../../src/config/index.js";
import { connectEngine, type Engine } from "../../src/docker/index.js";
import { runPlan, type RunResult } from "../../src/run/run-plan.js";
import { planBuild } from "../../src/plan/plan.js";
import { loadTemplates } from "../../src/render/templates.js";
import type { RunEvent } from "../../src/ui/reporter.js";
import { runCli } from "./helpers/cli.js";
import { requireEngine, requireTestImage } from "./helpers/engine.js";
import { SPACK_PACKAGES, STANDIN, tempDir, writeTestStack } from "./helpers/stack.js";
import { summariseInstallLog } from "../../src/spack/contract.js";

let engine: Engine;
let cacheRoot: string;
let work: string;

beforeAll(async () => {
  engine = await requireEngine();
  await requireTestImage(engine);
  await execa("npm", ["run", "build"], { stdio: "ignore" });
  work = await tempDir("build");
});

// Each test its own cache root: the tests run in any order, and one must never find what another built.
let caches = 0;
beforeEach(() => {
  cacheRoot = join(work, `cache-${++caches}`);
});

/** Build a stack file through the programmatic API, with a fresh engine (one engine: one run id). */
async function build(
  stackFile: string,
  extraEnv: Record<string, string> = {},
): Promise<{ result: RunResult; events: RunEvent[] }> {
  const stack = await loadStack(stackFile);
  const plan = planBuild(stack, undefined, { templates: await loadTemplates(), jobs: 2 });
  const events: RunEvent[] = [];
  const runEngine = await connectEngine();
  const result = await runPlan(plan, {
    engine: runEngine,
    reporter: { emit: (e) => events.push(e), close() {} },
    signal: new AbortController().signal,
    cacheRoot,
    concurrency: 1,
    extraEnv,
  });
  return { result, events };
}

async function containersOfRun(runId: string): Promise<string[]> {
  const { stdout } = await execa("docker", ["ps", "-aq", "--filter", `label=stack-factory.run=${runId}`]);
  return stdout.split("\n").filter((l) => l !== "");
}

describe("build of one target with the Spack stand-in", () => {
  it("builds a two-spec stack, then rebuilds from the caches without compiling", async () => {
    const stackFile = await writeTestStack(work, { name: "twospec" });
    const first = await build(stackFile);
    const t1 = first.result.targets[0]!;
    expect(t1.status, t1.error).toBe("ok");
    const log1 = await readFile(t1.logPath, "utf8");
    expect(log1).toMatch(/==> Fetching \S*hello-/);
    expect(log1).toMatch(/hello: Successfully installed hello-/);
    const specs = JSON.parse(t1.captured["specs.json"]!) as { name: string }[];
    expect(specs.map((s) => s.name)).toEqual(expect.arrayContaining(["hello", "zlib"]));
    expect(await containersOfRun(first.result.runId)).toEqual([]);

    const second = await build(stackFile);
    const t2 = second.result.targets[0]!;
    expect(t2.status, t2.error).toBe("ok");
    expect(second.result.image).toEqual({ tag: first.result.image.tag, built: false, id: first.result.image.id });
    expect(first.result.image.id).toMatch(/^sha256:[0-9a-f]{64}$/);
    const log2 = await readFile(t2.logPath, "utf8");
    expect(log2).toMatch(/Extracting hello-\S+ from binary cache/);
    expect(log2).toMatch(/Extracting zlib-\S+ from binary cache/);
    // Spack prints "Successfully installed" for extracted packages too: nothing was built.
    expect(summariseInstallLog(log2).built).toEqual([]);
    expect(await containersOfRun(second.result.runId)).toEqual([]);
  });

  it("reads sources from the source cache on a second build of a fresh install", async () => {
    // A different stack name gives a different environment but the same shared source cache; wiping the buildcache
    // forces a compile, which must then take its sources from the cache.
    const stackFile = await writeTestStack(work, { name: "sources", specs: ["libgreet"] });
    const first = await build(stackFile);
    expect(first.result.targets[0]!.status, first.result.targets[0]!.error).toBe("ok");
    await execa("rm", ["-rf", join(cacheRoot, "buildcache")]);
    const second = await build(stackFile);
    const t = second.result.targets[0]!;
    expect(t.status, t.error).toBe("ok");
    const log = await readFile(t.logPath, "utf8");
    expect(log).toMatch(/==> Using cached archive: \S*\/_source-cache\/archive\/[0-9a-f]{2}\/[0-9a-f]{64}\.tar\.gz/);
    expect(summariseInstallLog(log).built.some((p) => p.startsWith("libgreet-"))).toBe(true);
    expect(log).not.toMatch(/==> Fetching libgreet/);
  });

  it("clones Spack from a git url at a ref once, and reuses the clone", async () => {
    const repo = join(work, "spack-git");
    await cp(STANDIN, repo, { recursive: true });
    const git = (...args: string[]) => execa("git", ["-C", repo, ...args]);
    await git("init", "--quiet", "--initial-branch=develop");
    await git("add", "-A");
    await git("-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "--quiet", "-m", "stand-in");
    await git("tag", "v9.9.9");
    const stackFile = await writeTestStack(work, {
      name: "cloned",
      specs: ["zlib"],
      spack: `spack: { url: ${JSON.stringify(`file://${repo}`)}, ref: v9.9.9, builtin: { source: ${JSON.stringify(SPACK_PACKAGES)} } }`,
    });
    const first = await build(stackFile);
    expect(first.result.targets[0]!.status, first.result.targets[0]!.error).toBe("ok");
    const info = (events: RunEvent[]) => events.flatMap((e) => (e.type === "info" ? [e.message] : []));
    expect(info(first.events).join("\n")).toMatch(/spack v9\.9\.9: cloned/);
    const { stdout: head } = await git("rev-parse", "HEAD");
    expect(first.result.spackCommit).toBe(head.trim());
    const clones = await readdir(join(cacheRoot, "spack"));
    expect(clones).toHaveLength(1);

    const second = await build(stackFile);
    expect(second.result.targets[0]!.status).toBe("ok");
    expect(info(second.events).join("\n")).toMatch(/spack v9\.9\.9: reused the clone/);
    expect(await readdir(join(cacheRoot, "spack"))).toEqual(clones);
  });

  it("bootstraps a compiler Spack builds, builds the stack with it, and reuses it from the buildcache", async () => {
    const stackFile = await writeTestStack(work, { name: "bootstrap", specs: ["zlib"], compiler: "gcc@13.3.0" });
    const first = await build(stackFile);
    const t1 = first.result.targets[0]!;
    expect(t1.status, t1.error).toBe("ok");
    const log1 = await readFile(t1.logPath, "utf8");
    expect(log1).toMatch(/gcc: Successfully installed gcc-13\.3\.0-/);
    expect(log1).toMatch(/Added 1 new compiler/);
    // Spack 1.x records the compiler as a dependency on the gcc node providing "c".
    type Rec = {
      name: string;
      version: string;
      hash: string;
      dependencies?: { name: string; hash: string; parameters?: { virtuals?: string[] } }[];
    };
    const specs = JSON.parse(t1.captured["specs.json"]!) as Rec[];
    const zlib = specs.find((s) => s.name === "zlib");
    const cDep = zlib?.dependencies?.find((d) => d.parameters?.virtuals?.includes("c"));
    expect(specs.find((s) => s.hash === cDep?.hash)).toMatchObject({ name: "gcc", version: "13.3.0" });

    const second = await build(stackFile);
    const log2 = await readFile(second.result.targets[0]!.logPath, "utf8");
    expect(log2).toMatch(/Extracting gcc-13\.3\.0-\S+ from binary cache/);
    expect(summariseInstallLog(log2).built).toEqual([]);
  });

  it("reports a failing spec with target, step, exit code, log tail and log path, and leaves no container", async () => {
    const stackFile = await writeTestStack(work, { name: "failing", specs: ["hello"] });
    const run = await runCli(["build", stackFile, "--cache-dir", cacheRoot, "--env", "SPACK_STANDIN_FAIL=hello"]);
    expect(run.exitCode).toBe(1);
    expect(run.all).toMatch(/target x86_64_v3: step "install" failed with exit code 1/);
    expect(run.all).toMatch(/last lines of the log:/);
    expect(run.all).toMatch(/spack-build-out\.txt/);
    const logPath = /full log: (\S+)/.exec(run.all)?.[1];
    expect(logPath).toBeDefined();
    expect(await readFile(logPath!, "utf8")).toMatch(/ProcessError/);
    // The failed package's stage logs were copied out of the container before it went.
    const saved = /build logs of spack-stage-hello-\S+ saved in (\S+)/.exec(run.all)?.[1];
    expect(saved, run.all).toBeDefined();
    expect(await readFile(join(saved!, "spack-build-out.txt"), "utf8")).toMatch(/injected build failure of hello/);
    const runId = /run (\S+):/.exec(run.all)?.[1];
    expect(runId).toBeDefined();
    expect(await containersOfRun(runId!)).toEqual([]);
  });

  it("keeps a failed build's container with --keep-container, says how to enter it, and clean --run removes it", async () => {
    // hwloc: built nowhere else in this file, so not in the buildcache, so really compiled (and failing).
    const stackFile = await writeTestStack(work, { name: "kept", specs: ["hwloc"] });
    const run = await runCli([
      "build",
      stackFile,
      "--cache-dir",
      cacheRoot,
      "--keep-container",
      "--env",
      "SPACK_STANDIN_FAIL=hwloc",
    ]);
    expect(run.exitCode, run.all).toBe(1);
    const id = /container kept for inspection: docker exec -it (\w+) bash/.exec(run.all)?.[1];
    expect(id, run.all).toBeDefined();
    const runId = /run (\S+):/.exec(run.all)?.[1];
    expect(await containersOfRun(runId!)).toHaveLength(1);
    const inside = await execa("docker", ["exec", id!, "cat", "/sf/env/spack.yaml"]);
    expect(inside.stdout).toContain("- hwloc");
    // A plain clean leaves containers kept on purpose; clean --run removes them.
    expect(run.all).toContain(`stack-factory clean --run ${runId}`);
    await runCli(["clean"]);
    expect(await containersOfRun(runId!)).toHaveLength(1);
    await runCli(["clean", "--run", runId!]);
    expect(await containersOfRun(runId!)).toEqual([]);
  });

  it("passes spec strings with spaces, quotes and ';' to Spack intact, executing nothing", async () => {
    const marker = join(work, "injected");
    const spec = `zlib cflags="-O2 -g" ; touch ${marker}`;
    const stackFile = await writeTestStack(work, { name: "quoting", specs: [spec] });
    const { result } = await build(stackFile);
    const t = result.targets[0]!;
    // Whatever Spack makes of the spec, the text reached it verbatim through spack.yaml and nothing ran.
    const log = await readFile(t.logPath, "utf8");
    expect(log).toContain(spec);
    await expect(readFile(marker)).rejects.toThrow();
  });

  it("stops on SIGINT during install: exit 130 within 10 s, no container left, the next build succeeds", async () => {
    const stackFile = await writeTestStack(work, { name: "interrupted", specs: ["hello"] });
    const child = execa(
      "node",
      [
        join(process.cwd(), "dist-js/cli/main.js"),
        "build",
        stackFile,
        "--cache-dir",
        cacheRoot,
        "--env",
        "SPACK_STANDIN_SLEEP=60",
      ],
      {
        reject: false,
        all: true,
        env: { CI: "true" },
      },
    );
    let output = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`install step not reached:\n${output}`)), 300_000);
      child.all!.on("data", (chunk: Buffer) => {
        output += chunk.toString();
        if (/\] install\n/.test(output)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    await new Promise((r) => setTimeout(r, 1500));
    const sentAt = Date.now();
    child.kill("SIGINT");
    const finished = await child;
    const elapsed = (Date.now() - sentAt) / 1000;
    expect(finished.exitCode).toBe(130);
    expect(elapsed).toBeLessThan(10);
    const runId = /run (\S+):/.exec(finished.all ?? "")?.[1];
    expect(runId).toBeDefined();
    expect(await containersOfRun(runId!)).toEqual([]);

    const again = await build(stackFile);
    expect(again.result.targets[0]!.status, again.result.targets[0]!.error).toBe("ok");
  });
});

import { readdir, readFile, utimes, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import type { RunReport } from "../../src/run/report.js";
import { buildcacheEntries, buildcacheIndex, specDocument } from "./helpers/buildcache.js";
import { runCli } from "./helpers/cli.js";
import { CLI } from "./helpers/stack.js";
import { requireEngine, requireTestImage } from "./helpers/engine.js";
import { tempDir, writeTestStack } from "./helpers/stack.js";

const TARGETS = ["x86_64", "x86_64_v2", "x86_64_v3"];
let work: string;
let cacheRoot: string;
let stackFile: string;

beforeAll(async () => {
  await requireTestImage(await requireEngine());
  await execa("npm", ["run", "build"], { stdio: "ignore" });
  work = await tempDir("parallel");
  cacheRoot = join(work, "cache");
  stackFile = await writeTestStack(work, { name: "wide", specs: ["hello"], targets: TARGETS });
});

async function warm(
  reportName: string,
  extra: string[] = [],
): Promise<{ exitCode: number; report: RunReport; all: string }> {
  const reportPath = join(work, `${reportName}.json`);
  const run = await runCli([
    "warm",
    stackFile,
    "--cache-dir",
    cacheRoot,
    "--concurrency",
    "3",
    "--jobs",
    "1",
    "--report",
    reportPath,
    ...extra,
  ]);
  const report = JSON.parse(await readFile(reportPath, "utf8")) as RunReport;
  return { exitCode: run.exitCode ?? -1, report, all: run.all ?? "" };
}

/** Hashes listed in the index of the run's buildcache, and the entries present (each spec blob readable). */
async function buildcacheState(): Promise<{ indexed: string[]; specFiles: string[] }> {
  const keys = await readdir(join(cacheRoot, "buildcache"));
  expect(keys).toHaveLength(1);
  const dir = join(cacheRoot, "buildcache", keys[0]!);
  const index = buildcacheIndex(dir);
  const entries = buildcacheEntries(dir);
  for (const e of entries) expect(specDocument(dir, e).spec.nodes[0]!.hash).toBe(e.hash);
  return { indexed: Object.keys(index.database.installs).sort(), specFiles: entries.map((e) => e.short) };
}

// Steps of one scenario, in this order even when the tests are shuffled (scripts/test.sh): each starts from
// what the ones before left in the caches, as a site's successive runs do.
describe("several targets at once on one shared cache", { shuffle: false }, () => {
  it("warms three targets at concurrency 3: every package indexed, each source fetched once", async () => {
    const { exitCode, report, all } = await warm("first");
    expect(exitCode, all).toBe(0);
    expect(report.concurrency).toBe(3);
    expect(report.targets.map((t) => [t.target, t.status])).toEqual(TARGETS.map((t) => [t, "ok"]));
    // hello -> libgreet -> zlib, and the gcc-runtime node every compiled package links, for each of the targets
    for (const t of report.targets) expect(t.built).toHaveLength(4);
    const { indexed, specFiles } = await buildcacheState();
    expect(indexed).toHaveLength(12);
    expect(specFiles).toHaveLength(12);
    const fetched: string[] = [];
    for (const t of report.targets) {
      const log = await readFile(t.logPath, "utf8");
      fetched.push(...[...log.matchAll(/==> Fetching (https:\S+)/g)].map((m) => m[1]!));
    }
    expect(fetched.sort()).toEqual([...new Set(fetched)].sort());
    expect(fetched).toHaveLength(3);
  });

  it("a second warm run builds nothing and says so", async () => {
    const summary = join(work, "summary.md");
    const { exitCode, report, all } = await warm("second", ["--summary", summary]);
    expect(exitCode, all).toBe(0);
    expect(report.targets.reduce((n, t) => n + t.built.length, 0)).toBe(0);
    expect(report.targets.reduce((n, t) => n + t.fromCache.length, 0)).toBe(12);
    expect(all).toMatch(/nothing to build/);
    expect(await readFile(summary, "utf8")).toMatch(
      /Nothing to build: all 12 package installs came from the buildcache/,
    );
  });

  it("two warm processes started together on the same cache both succeed and leave a consistent buildcache", async () => {
    const other = await writeTestStack(work, {
      name: "twin",
      specs: ["hello", "munge"],
      targets: ["x86_64_v2", "x86_64_v3"],
    });
    const start = (file: string, name: string) =>
      runCli([
        "warm",
        file,
        "--cache-dir",
        cacheRoot,
        "--concurrency",
        "2",
        "--jobs",
        "1",
        "--report",
        join(work, `${name}.json`),
      ]);
    const [a, b] = await Promise.all([start(other, "twin-a"), start(other, "twin-b")]);
    expect(a.exitCode, a.all).toBe(0);
    expect(b.exitCode, b.all).toBe(0);
    const { indexed, specFiles } = await buildcacheState();
    expect(indexed).toEqual([...new Set(indexed)]);
    expect(indexed.length).toBe(specFiles.length);
    const reports = await Promise.all(
      ["twin-a", "twin-b"].map(async (r) => JSON.parse(await readFile(join(work, `${r}.json`), "utf8")) as RunReport),
    );
    // Whatever either process installed (built or taken from the cache) is in the index, by hash.
    const installed = reports.flatMap((r) => r.targets.flatMap((t) => [...t.built, ...t.fromCache]));
    const hashes = [...new Set(installed.map((s) => s.slice(s.lastIndexOf("-") + 1)))];
    expect(installed.filter((s) => s.startsWith("munge-")).length).toBeGreaterThanOrEqual(2);
    for (const h of hashes) expect(indexed).toContain(h);
  });

  it("Ctrl-C cancels every running target: exit 130, no container of the run left", async () => {
    const file = await writeTestStack(work, { name: "cancelled", specs: ["json-c"], targets: TARGETS });
    const child = execa(
      "node",
      [
        CLI,
        "warm",
        file,
        "--cache-dir",
        cacheRoot,
        "--concurrency",
        "3",
        "--jobs",
        "1",
        "--env",
        "SPACK_STANDIN_SLEEP=120",
      ],
      {
        reject: false,
        all: true,
        env: { CI: "true" },
      },
    );
    let output = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the three installs did not start:\n${output}`)), 240_000);
      child.all!.on("data", (chunk: Buffer) => {
        output += chunk.toString();
        if ((output.match(/\] install\n/g) ?? []).length === 3) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    await new Promise((r) => setTimeout(r, 1000));
    child.kill("SIGINT");
    const finished = await child;
    expect(finished.exitCode, finished.all).toBe(130);
    const runId = /run (\S+):/.exec(finished.all ?? "")?.[1];
    const { stdout } = await execa("docker", ["ps", "-aq", "--filter", `label=stack-factory.run=${runId}`]);
    expect(stdout.trim()).toBe("");
  });

  it("cache prune removes old entries, keeps what is used, and the next warm still finds the buildcache", async () => {
    const old = new Date(Date.now() - 30 * 86_400_000);
    const stale = join(cacheRoot, "buildcache", "some-old-key");
    await mkdir(join(stale, "v3"), { recursive: true });
    await writeFile(join(stale, "v3", "layout.json"), '{"signing": "gpg"}');
    await utimes(join(stale, "v3", "layout.json"), old, old);
    await utimes(stale, old, old);
    const runs = await readdir(join(cacheRoot, "logs"));
    const oldRun = runs[0]!;
    for (const f of await readdir(join(cacheRoot, "logs", oldRun)))
      await utimes(join(cacheRoot, "logs", oldRun, f), old, old);

    const prune = await runCli(["cache", "prune", "--older-than", "7", "--cache-dir", cacheRoot]);
    expect(prune.exitCode, prune.all).toBe(0);
    expect(prune.stdout).toContain("removed buildcache/some-old-key");
    expect(prune.stdout).toContain(`removed logs/${oldRun}`);
    expect(await readdir(join(cacheRoot, "buildcache"))).toHaveLength(1);

    const stats = await runCli(["cache", "stats", "--cache-dir", cacheRoot]);
    expect(stats.stdout).toMatch(/^buildcache: /m);
    expect(stats.stdout).toMatch(/^source: .*\d+ file\(s\)/m);

    const { exitCode, report } = await warm("after-prune");
    expect(exitCode).toBe(0);
    expect(report.targets.reduce((n, t) => n + t.built.length, 0)).toBe(0);
  });
});

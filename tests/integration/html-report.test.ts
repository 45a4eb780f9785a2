import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import type { RunReport } from "../../src/run/report.js";
import { runCli } from "./helpers/cli.js";
import { requireEngine } from "./helpers/engine.js";
import { tempDir, writeTestStack } from "./helpers/stack.js";

let work: string;
let cacheRoot: string;

beforeAll(async () => {
  await requireEngine();
  work = await tempDir("html-report");
  cacheRoot = join(work, "cache");
});

const readReport = async (path: string) => JSON.parse(await readFile(path, "utf8")) as RunReport;

describe("the HTML run report of build and warm", () => {
  it("a failed build: --report-html has the failing step and the log's last lines, which the JSON report holds", async () => {
    const stackFile = await writeTestStack(work, { name: "failing", specs: ["hello"] });
    const html = join(work, "failing.html");
    const json = join(work, "failing.json");
    const run = await runCli([
      "build",
      stackFile,
      "--cache-dir",
      cacheRoot,
      "--out",
      join(work, "dist"),
      "--env",
      "SPACK_STANDIN_FAIL=hello",
      "--report",
      json,
      "--report-html",
      html,
    ]);
    expect(run.exitCode, run.all).toBe(1);
    expect(run.stdout.trimEnd().split("\n").at(-1)).toBe(`report: ${html}`);
    const report = await readReport(json);
    expect(report.format_version).toBe(3);
    const target = report.targets[0]!;
    expect(target.status).toBe("failed");
    expect(target.steps.every((s) => typeof s.startedAt === "string")).toBe(true);
    const log = (await readFile(target.logPath, "utf8")).trimEnd().split("\n");
    expect(target.logTail).toEqual(log.slice(-40));
    const page = await readFile(html, "utf8");
    expect(page).toContain("Failed: step install failed with exit code 1");
    expect(page).toContain('<pre class="log-tail">');
    expect(page).toContain(`<code>${target.logPath}</code>`);
    expect(page.match(/<g class="row /g)).toHaveLength(1);
    expect(page.match(/<rect class="bar /g)).toHaveLength(target.steps.length);
  });

  it("build then warm: beside the run's logs by default, with the tarball's digest and node floor, then nothing to build", async () => {
    const stackFile = await writeTestStack(work, { name: "paged", specs: ["zlib"] });
    const json = join(work, "paged.json");
    const build = await runCli([
      "build",
      stackFile,
      "--cache-dir",
      cacheRoot,
      "--out",
      join(work, "dist"),
      "--report",
      json,
    ]);
    expect(build.exitCode, build.all).toBe(0);
    const report = await readReport(json);
    const path = join(cacheRoot, "logs", report.runId, "report.html");
    expect(build.stdout.trimEnd().split("\n").at(-1)).toBe(`report: ${path}`);
    expect((await stat(path)).isFile()).toBe(true);
    const target = report.targets[0]!;
    const sidecar = (await readFile(`${target.tarball}.sha256`, "utf8")).split(" ")[0];
    expect(target.tarballSha256).toBe(sidecar);
    expect(target.nodeFloor).toMatchObject({ cpu: "x86_64_v3", machine: "x86_64" });
    expect(target.nodeFloor?.glibc).toMatch(/^GLIBC_2\.\d+$/);
    const page = await readFile(path, "utf8");
    expect(page).toContain(`<code class="digest">${sidecar}</code>`);
    expect(page).toContain(`CPU x86_64_v3 (x86_64), glibc with ${target.nodeFloor?.glibc}`);

    const warm = await runCli(["warm", stackFile, "--cache-dir", cacheRoot, "--report", json]);
    expect(warm.exitCode, warm.all).toBe(0);
    const warmed = await readReport(json);
    const warmPage = join(cacheRoot, "logs", warmed.runId, "report.html");
    expect(warm.stdout.trimEnd().split("\n").at(-1)).toBe(`report: ${warmPage}`);
    const text = await readFile(warmPage, "utf8");
    expect(text).toContain("<title>Cache warming: paged 1.0</title>");
    expect(text).toMatch(/Nothing to build: all \d+ package installs came from the buildcache/);
    expect(text).toMatch(/<td class="n">0<\/td><td class="n">[1-9]\d*<\/td><td>reused lock<\/td>/);
  });
});

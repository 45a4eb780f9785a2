import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import type { BuildPlan } from "../../src/plan/types.js";
import { renderHtmlReport } from "../../src/run/report-html.js";
import { buildReport, type RunReport } from "../../src/run/report.js";
import type { RunResult } from "../../src/run/run-plan.js";
import { visitPage } from "./helpers/chromium.js";

const HOSTILE = `<script>document.title="pwned";fetch("http://127.0.0.1:9/x")</script>`;
const LEAK = `<img src="http://127.0.0.1:9/leak.png">`;

/** A run of three targets on two engines, one failed, built through the report the CLI writes. */
async function hostileReport(dir: string): Promise<RunReport> {
  const at = (s: number) => new Date(Date.UTC(2026, 0, 2, 3, 0, s)).toISOString();
  const log = async (name: string, lines: string[]) => {
    const path = join(dir, `${name}.log`);
    await writeFile(path, `${lines.join("\n")}\n`);
    return path;
  };
  const okLog = ["==> Installing zlib-1.3-aaaa [1/2]", "==> zlib: Successfully installed zlib-1.3-aaaa"];
  const failLog = [
    ...Array.from({ length: 60 }, (_, i) => `build line ${i}`),
    `error: ${LEAK} in a < b && c > d`,
    "\u001b[31m==> Error: hello-2.12 failed to build\u001b[0m",
  ];
  const plan = {
    stack: { name: "demo", version: "1.0", file: `/stacks/${HOSTILE}.yaml`, description: `ours ${HOSTILE}` },
  } as BuildPlan;
  const result: RunResult = {
    runId: "run-1",
    image: { tag: "sf-builder:abc", built: true, id: "sha256:1234" },
    spackCommit: "0123abcd",
    cancelled: false,
    targets: [
      {
        target: "zen4",
        engine: "x86-a",
        status: "ok",
        seconds: 30,
        logPath: await log("zen4", okLog),
        captured: {},
        lock: { reused: true, reason: "inputs unchanged" },
        tarball: "/dist/demo-1.0-zen4.tar.gz",
        tarballBytes: 5 * 1024 * 1024,
        tarballSha256: "ab".repeat(32),
        nodeFloor: { cpu: "zen4", machine: "x86_64", glibc: "GLIBC_2.34" },
        steps: [
          { step: "concretize", seconds: 0.1, exitCode: 0, reused: true, startedAt: at(1) },
          { step: "install", seconds: 20, exitCode: 0, startedAt: at(2) },
          { step: "package", seconds: 8, exitCode: 0, startedAt: at(22) },
        ],
      },
      {
        target: "icelake",
        engine: "x86-b",
        status: "failed",
        seconds: 25,
        logPath: await log("icelake", failLog),
        captured: {},
        error: `target icelake: step "install" failed with exit code 1 ${HOSTILE}`,
        steps: [
          { step: "concretize", seconds: 5, exitCode: 0, startedAt: at(3) },
          { step: "install", seconds: 19, exitCode: 1, startedAt: at(8) },
        ],
      },
      {
        target: "x86_64_v3",
        engine: "x86-b",
        status: "ok",
        seconds: 20,
        logPath: await log("x86_64_v3", okLog),
        captured: {},
        steps: [
          { step: "concretize", seconds: 4, exitCode: 0, startedAt: at(28) },
          { step: "install", seconds: 10, exitCode: 0, startedAt: at(32) },
          { step: "package", seconds: 5, exitCode: 0, startedAt: at(42) },
        ],
      },
    ],
  };
  return buildReport(plan, result, { mode: "build", concurrency: 2, jobs: 2, seconds: 50, startedAt: at(0) });
}

describe("the HTML run report in a real browser (Debian's chromium, headless)", () => {
  it("loads with no network request, a timeline row per target and a bar per step, the log tail, values as text", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sf-html-report-"));
    const report = await hostileReport(dir);
    const page = join(dir, "report.html");
    await writeFile(page, renderHtmlReport(report));
    const url = pathToFileURL(page).href;
    await visitPage(url, async (p) => {
      // The page itself, and nothing else: no font, no stylesheet, no image, no script from anywhere.
      expect(p.requests).toEqual([url]);
      const rows = await p.evaluate<{ target: string; bars: string[] }[]>(
        `[...document.querySelectorAll("svg.timeline g.row")].map((g) => ({ target: g.dataset.target, bars: [...g.querySelectorAll("rect.bar")].map((r) => r.dataset.step + ":" + r.classList[1]) }))`,
      );
      expect(rows).toEqual([
        { target: "zen4", bars: ["concretize:reused", "install:ok", "package:ok"] },
        { target: "icelake", bars: ["concretize:ok", "install:failed"] },
        { target: "x86_64_v3", bars: ["concretize:ok", "install:ok", "package:ok"] },
      ]);
      // The engine is named in each row.
      expect(
        await p.evaluate<string[]>(
          `[...document.querySelectorAll("svg.timeline g.row text.label")].map((t) => t.textContent)`,
        ),
      ).toEqual(["zen4 · x86-a", "icelake · x86-b", "x86_64_v3 · x86-b"]);
      // Bars of later steps sit further right on the shared axis.
      const xs = await p.evaluate<number[]>(
        `[...document.querySelectorAll("g.row[data-target=zen4] rect.bar")].map((r) => r.getBBox().x)`,
      );
      expect(xs[1]).toBeGreaterThan(xs[0] ?? Number.POSITIVE_INFINITY);
      expect(xs[2]).toBeGreaterThan(xs[1] ?? Number.POSITIVE_INFINITY);
      const failed = await p.evaluate<{ heading: string; tail: string; log: string }>(
        `(() => { const s = document.querySelector("section.status-failed"); return { heading: s.querySelector(".failure h3").textContent, tail: s.querySelector("pre.log-tail").textContent, log: s.querySelector("p.log").textContent }; })()`,
      );
      expect(failed.heading).toBe("Failed: step install failed with exit code 1");
      expect(failed.tail.split("\n").slice(-2)).toEqual([
        `error: ${LEAK} in a < b && c > d`,
        "==> Error: hello-2.12 failed to build",
      ]);
      expect(failed.tail).not.toContain("build line 0\n");
      expect(failed.log).toContain(join(dir, "icelake.log"));
      // Values holding markup are text: no element came of them, and the text is there as written.
      expect(await p.evaluate<number>("document.scripts.length")).toBe(0);
      expect(await p.evaluate<number>("document.images.length")).toBe(0);
      expect(await p.evaluate<string>("document.title")).toBe("Build: demo 1.0");
      const text = await p.evaluate<string>("document.body.innerText");
      expect(text).toContain(`ours ${HOSTILE}`);
      expect(text).toContain(`/stacks/${HOSTILE}.yaml`);
      expect(text).toContain("CPU zen4 (x86_64), glibc with GLIBC_2.34");
      expect(text).toContain("ab".repeat(32));
    });
  });

  it("sees a request when a page makes one (so that an empty list above means none)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sf-html-report-"));
    const page = join(dir, "leaky.html");
    await writeFile(page, `<!doctype html><title>leaky</title>${LEAK}`);
    const url = pathToFileURL(page).href;
    await visitPage(url, async (p) => {
      expect(p.requests).toEqual([url, "http://127.0.0.1:9/leak.png"]);
    });
  });
});

import { describe, expect, it } from "vitest";
import { escapeHtml, html } from "../../src/render/html.js";
import { renderHtmlReport } from "../../src/run/report-html.js";
import { formatSeconds, timelineRows } from "../../src/run/report-timeline.js";
import { logTail, type RunReport, type TargetReport } from "../../src/run/report.js";

const target = (t: Partial<TargetReport>): TargetReport => ({
  target: "zen4",
  status: "ok",
  seconds: 10,
  built: [],
  fromCache: [],
  logPath: "/cache/logs/r/zen4.log",
  steps: [],
  ...t,
});

const report = (r: Partial<RunReport>): RunReport => ({
  format_version: 3,
  runId: "r",
  mode: "build",
  stack: { name: "s", version: "1", file: "/s.yaml", description: "" },
  image: { tag: "img", built: false, id: "" },
  spackCommit: "c",
  concurrency: 1,
  jobs: 1,
  seconds: 10,
  exitCode: 0,
  targets: [],
  ...r,
});

describe("HTML escaping", () => {
  it("turns the five special characters into entities and drops control characters", () => {
    expect(escapeHtml(`<a href="x" title='y'>&</a>`)).toBe(
      "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;",
    );
    expect(escapeHtml("a\u0000b\u001b[31mc\td\ne")).toBe("ab[31mc\td\ne");
  });

  it("escapes every value of the template, arrays too, and keeps markup the template made", () => {
    const inner = html`<b>${"<i>"}</b>`;
    expect(html`<p>${["<", inner, 3, undefined]}</p>`.text).toBe("<p>&lt;<b>&lt;i&gt;</b>3</p>");
  });
});

describe("the HTML run report", () => {
  it("escapes what comes from a stack file, Spack's output and a log, wherever it lands", () => {
    const evil = `<script>x</script>"'&`;
    const page = renderHtmlReport(
      report({
        exitCode: 1,
        stack: { name: "s", version: "1", file: `/${evil}.yaml`, description: evil },
        targets: [
          target({
            target: evil,
            engine: evil,
            status: "failed",
            built: [evil],
            fromCache: [evil],
            concretization: `concretized: ${evil}`,
            error: evil,
            logTail: [evil],
            logPath: `/${evil}.log`,
            warnings: [evil],
            steps: [{ step: evil, seconds: 1, exitCode: 2 }],
          }),
        ],
      }),
    );
    expect(page).not.toContain("<script>");
    expect(page).not.toContain(`"'&`);
    // Every place the value went: description, stack file, row label and data attribute, table, lists, log, error.
    expect(page.split("&lt;script&gt;x&lt;/script&gt;&quot;&#39;&amp;").length - 1).toBeGreaterThanOrEqual(12);
    expect(page).toContain("Failed: step &lt;script&gt;x&lt;/script&gt;&quot;&#39;&amp; failed with exit code 2");
  });

  it("loads nothing: no script, no link, no URL, and a policy that forbids fetching anything", () => {
    const page = renderHtmlReport(
      report({ targets: [target({ steps: [{ step: "install", seconds: 3, exitCode: 0 }] })] }),
    );
    expect(page).toContain(`content="default-src 'none'; style-src 'unsafe-inline'"`);
    expect(page).not.toMatch(/<script|<link|<img|src=|url\(|@import|https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
  });

  it("warm: the nightly table of what was built and reused per target, and no tarball column", () => {
    const page = renderHtmlReport(
      report({
        mode: "warm",
        targets: [
          target({ target: "zen4", built: ["zlib-1.3-aaaa"], fromCache: ["hello-1-bbbb", "m4-1-cccc"] }),
          target({ target: "icelake", fromCache: ["zlib-1.3-aaaa"], concretization: "reused lock" }),
        ],
      }),
    );
    expect(page).toContain("<title>Cache warming: s 1</title>");
    expect(page).toContain("1 package(s) built, 3 reused from the buildcache");
    expect(page).not.toContain("<th>tarball</th>");
    const rows = [
      ...page.matchAll(
        /<tr class="status-ok"><td><a href="#target-\d">([^<]+)<\/a><\/td><td>-<\/td><td class="status">ok<\/td><td class="n">(\d+)<\/td><td class="n">(\d+)<\/td><td>([^<]+)<\/td>/g,
      ),
    ];
    expect(rows.map((r) => r.slice(1))).toEqual([
      ["zen4", "1", "2", "-"],
      ["icelake", "0", "1", "reused lock"],
    ]);
    expect(page).toContain("<code>zlib-1.3-aaaa</code>");
  });

  it("build: tarball name, size, digest and node floor of each target", () => {
    const page = renderHtmlReport(
      report({
        targets: [
          target({
            tarball: "/dist/s-1-zen4.tar.gz",
            tarballBytes: 3 * 1024 * 1024,
            tarballSha256: "f".repeat(64),
            nodeFloor: { cpu: "zen4", machine: "x86_64", glibc: "GLIBC_2.34" },
          }),
        ],
      }),
    );
    expect(page).toContain("<code>s-1-zen4.tar.gz</code>, 3.0 MiB");
    expect(page).toContain(`<code class="digest">${"f".repeat(64)}</code>`);
    expect(page).toContain("CPU zen4 (x86_64), glibc with GLIBC_2.34");
  });

  it("says where a failed target stopped when no step failed", () => {
    const before = renderHtmlReport(report({ targets: [target({ status: "failed", error: "no engine" })] }));
    expect(before).toContain("Failed: before any step ran");
    const after = renderHtmlReport(
      report({ targets: [target({ status: "failed", steps: [{ step: "install", seconds: 1, exitCode: 0 }] })] }),
    );
    expect(after).toContain("Failed: after step install");
  });

  it("a run that stopped before any target finished shows why", () => {
    const page = renderHtmlReport(report({ exitCode: 1, error: "image build failed: <no space>" }));
    expect(page).toContain("<pre>image build failed: &lt;no space&gt;</pre>");
  });
});

describe("the timeline", () => {
  it("places steps on the run's clock, and steps of older reports one after the other", () => {
    const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
    const rows = timelineRows(
      report({
        startedAt: at(0),
        targets: [
          target({
            steps: [
              { step: "concretize", seconds: 2, exitCode: 0, reused: true, startedAt: at(5) },
              { step: "install", seconds: 3, exitCode: 1, startedAt: at(8) },
            ],
          }),
          target({
            target: "old",
            steps: [
              { step: "a", seconds: 2, exitCode: 0 },
              { step: "b", seconds: 1, exitCode: 0 },
            ],
          }),
        ],
      }),
    );
    expect(rows[0]?.bars).toEqual([
      { step: "concretize", outcome: "reused", start: 5, seconds: 2 },
      { step: "install", outcome: "failed", start: 8, seconds: 3 },
    ]);
    expect(rows[1]?.bars.map((b) => b.start)).toEqual([0, 2]);
  });

  it("formats durations", () => {
    expect([5.4, 59.6, 119.6, 3725].map(formatSeconds)).toEqual(["5 s", "1 min 0 s", "2 min 0 s", "1 h 2 min"]);
  });
});

describe("the report's log tail", () => {
  it("keeps the last lines of a failed target's log", () => {
    const log = `${Array.from({ length: 100 }, (_, i) => `l${i}`).join("\n")}\n`;
    expect(logTail(log)).toEqual(Array.from({ length: 40 }, (_, i) => `l${i + 60}`));
    expect(logTail("")).toEqual([]);
  });
});

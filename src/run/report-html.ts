/**
 * The run report as one self-contained HTML page (`--report-html`): the timeline, a table of targets (what was
 * built and reused, as the nightly summary has it), and a section per target (packages, concretization, tarball,
 * node floor; a failed target's step, log tail and full log). Pure: the report in, the page out. Every value comes
 * in through `html`, which escapes it; the page loads nothing (its Content-Security-Policy forbids any fetch and
 * any script).
 */
import { basename } from "node:path";
import type { RunReport, TargetReport } from "./report.js";
import { formatBytes } from "../ui/format.js";
import { Html, html } from "../render/html.js";
import { formatSeconds, stepOutcome, timelineRows, timelineSvg } from "./report-timeline.js";
import { REPORT_CSS } from "./report-style.js";

export function renderHtmlReport(report: RunReport): string {
  const title = `${report.mode === "warm" ? "Cache warming" : "Build"}: ${report.stack.name} ${report.stack.version}`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>${new Html(REPORT_CSS)}</style>
</head>
<body>
<h1>${title}</h1>
${runSummary(report)}
<h2>Timeline</h2>
${timelineSvg(timelineRows(report), report.seconds)}
${legend()}
<h2>Targets</h2>
${targetTable(report)}
${report.targets.map((t, i) => targetSection(report, t, i))}
</body>
</html>
`.text;
}

function runSummary(report: RunReport): Html {
  const built = report.targets.reduce((n, t) => n + t.built.length, 0);
  const reused = report.targets.reduce((n, t) => n + t.fromCache.length, 0);
  const verdict =
    built === 0 && report.exitCode === 0
      ? `Nothing to build: all ${reused} package installs came from the buildcache.`
      : `${built} package(s) built, ${reused} reused from the buildcache, in ${formatSeconds(report.seconds)}.`;
  return html`<p class="verdict exit-${report.exitCode}">${verdict} Exit code ${report.exitCode}.</p>
${report.stack.description === "" ? undefined : html`<p class="description">${report.stack.description}</p>`}
<dl class="run">
<dt>run</dt><dd>${report.runId}${report.startedAt === undefined ? "" : `, started ${report.startedAt}`}</dd>
<dt>stack file</dt><dd>${report.stack.file}</dd>
<dt>builder image</dt><dd>${report.image.tag}${report.image.id === "" ? "" : ` (${report.image.id})`}${report.image.built ? ", built in this run" : ""}</dd>
<dt>Spack</dt><dd>${report.spackCommit}${report.spackPackagesCommit === undefined ? "" : `, spack-packages ${report.spackPackagesCommit}`}</dd>
<dt>containers</dt><dd>${report.concurrency} at once, ${report.jobs} job(s) each</dd>
</dl>
${report.error === undefined ? undefined : html`<div class="failure"><h3>The run stopped before any target finished</h3><pre>${report.error}</pre></div>`}`;
}

function legend(): Html {
  return html`<p class="legend"><span class="key ok"></span> step succeeded <span class="key reused"></span> reused (not run) <span class="key failed"></span> step failed</p>`;
}

/** The table a nightly summary needs: per target, its engine, status, what was built and reused, its time. */
function targetTable(report: RunReport): Html {
  const build = report.mode === "build";
  return html`<table class="targets">
<thead><tr><th>target</th><th>engine</th><th>status</th><th class="n">built</th><th class="n">reused</th><th>concretization</th>${build ? html`<th>tarball</th>` : undefined}<th class="n">time</th></tr></thead>
<tbody>
${report.targets.map(
  (t, i) =>
    html`<tr class="status-${t.status}"><td><a href="#target-${i}">${t.target}</a></td><td>${t.engine ?? "-"}</td><td class="status">${t.status}</td><td class="n">${t.built.length}</td><td class="n">${t.fromCache.length}</td><td>${t.concretization ?? "-"}</td>${build ? html`<td>${t.tarball === undefined ? "-" : `${basename(t.tarball)} (${formatBytes(t.tarballBytes ?? 0)})`}</td>` : undefined}<td class="n">${formatSeconds(t.seconds)}</td></tr>
`,
)}</tbody>
</table>`;
}

function targetSection(report: RunReport, t: TargetReport, index: number): Html {
  return html`<section class="target status-${t.status}" id="target-${index}">
<h2>${t.target} <span class="status">${t.status}</span></h2>
<dl>
${t.engine === undefined ? undefined : html`<dt>engine</dt><dd>${t.engine}</dd>`}
<dt>time</dt><dd>${formatSeconds(t.seconds)}: ${t.steps.map((s, i) => html`${i === 0 ? "" : ", "}${s.step} ${formatSeconds(s.seconds)}${stepOutcome(s) === "ok" ? "" : ` (${stepOutcome(s)})`}`)}</dd>
<dt>concretization</dt><dd>${t.concretization ?? "-"}</dd>
${report.mode === "build" ? tarballRows(t) : undefined}
</dl>
${packageList("built", t.built)}
${packageList("reused from the buildcache", t.fromCache)}
${t.warnings === undefined || t.warnings.length === 0 ? undefined : html`<h3>Warnings</h3><ul class="warnings">${t.warnings.map((w) => html`<li>${w}</li>`)}</ul>`}
${t.status === "failed" ? failure(t) : undefined}
<p class="log">full log: <code>${t.logPath}</code></p>
</section>
`;
}

function tarballRows(t: TargetReport): Html {
  const floor = t.nodeFloor;
  return html`<dt>tarball</dt><dd>${t.tarball === undefined ? "-" : html`<code>${basename(t.tarball)}</code>, ${formatBytes(t.tarballBytes ?? 0)}`}</dd>
<dt>sha256</dt><dd><code class="digest">${t.tarballSha256 ?? "-"}</code></dd>
<dt>node floor</dt><dd>${floor === undefined ? "-" : `CPU ${floor.cpu} (${floor.machine}), ${floor.glibc === undefined ? "no glibc symbol versions needed" : `glibc with ${floor.glibc}`}`}</dd>`;
}

function packageList(what: string, names: readonly string[]): Html {
  return html`<details class="packages"${names.length > 0 && names.length <= 12 ? html` open` : undefined}><summary>${names.length} package(s) ${what}</summary>${names.length === 0 ? undefined : html`<ul>${names.map((n) => html`<li><code>${n}</code></li>`)}</ul>`}</details>`;
}

/** A failed target: the step that failed, the error, the tail of its log. */
function failure(t: TargetReport): Html {
  // The first step that failed: steps that keep what was built run after it, and may fail too.
  const failed = t.steps.find((s) => s.exitCode !== 0);
  const last = t.steps.at(-1);
  const where =
    failed !== undefined
      ? `step ${failed.step} failed with exit code ${failed.exitCode}`
      : last === undefined
        ? "before any step ran"
        : `after step ${last.step}`;
  return html`<div class="failure">
<h3>Failed: ${where}</h3>
${t.error === undefined ? undefined : html`<pre class="error">${t.error}</pre>`}
${t.logTail === undefined || t.logTail.length === 0 ? undefined : html`<h4>Last ${t.logTail.length} line(s) of the log</h4><pre class="log-tail">${t.logTail.map(stripAnsi).join("\n")}</pre>`}
</div>`;
}

/** Terminal colour and cursor sequences, which a log may hold and a page should not show. */
function stripAnsi(line: string): string {
  return line.replace(/\u001b\[[0-9;?]*[ -/]*[@-~]/g, "");
}

/**
 * The run report's timeline: one row per target, each step a bar on a time axis shared by all targets, coloured by
 * its outcome. Inline SVG, no script: a page that must open on an offline cluster.
 */
import type { RunReport, TargetReport } from "./report.js";
import type { StepTiming } from "./run-target.js";
import { html, type Html } from "../render/html.js";

/** A step's outcome, as the timeline colours it. */
export type StepOutcome = "ok" | "reused" | "failed";

export interface TimelineBar {
  step: string;
  outcome: StepOutcome;
  /** Seconds since the run's start. */
  start: number;
  seconds: number;
}

export interface TimelineRow {
  target: string;
  engine?: string;
  status: TargetReport["status"];
  bars: TimelineBar[];
}

export function stepOutcome(step: StepTiming): StepOutcome {
  if (step.reused === true) return "reused";
  return step.exitCode === 0 ? "ok" : "failed";
}

/**
 * Bars placed on the run's clock: a step that says when it started sits there; one that does not (a report of an
 * older run) follows the step before it.
 */
export function timelineRows(report: RunReport): TimelineRow[] {
  const origin = runOrigin(report);
  return report.targets.map((t) => {
    let cursor = 0;
    const bars = t.steps.map((s) => {
      const at = s.startedAt === undefined || origin === undefined ? Number.NaN : Date.parse(s.startedAt) - origin;
      const start = Number.isFinite(at) ? Math.max(0, at / 1000) : cursor;
      cursor = start + s.seconds;
      return { step: s.step, outcome: stepOutcome(s), start, seconds: s.seconds };
    });
    return { target: t.target, ...(t.engine === undefined ? {} : { engine: t.engine }), status: t.status, bars };
  });
}

/** The run's start in epoch milliseconds: its own `startedAt`, else its earliest step's. */
function runOrigin(report: RunReport): number | undefined {
  const times = [report.startedAt, ...report.targets.flatMap((t) => t.steps.map((s) => s.startedAt))]
    .filter((t): t is string => t !== undefined)
    .map((t) => Date.parse(t))
    .filter((t) => Number.isFinite(t));
  return times.length === 0 ? undefined : Math.min(...times);
}

const LABEL_WIDTH = 220;
const PLOT_WIDTH = 720;
const ROW_HEIGHT = 28;
const AXIS_HEIGHT = 24;

/** The timeline as inline SVG (`svg.timeline`, a `g.row` per target, a `rect.bar` per step). */
export function timelineSvg(rows: readonly TimelineRow[], runSeconds: number): Html {
  const end = Math.max(runSeconds, ...rows.flatMap((r) => r.bars.map((b) => b.start + b.seconds)), 1);
  const scale = PLOT_WIDTH / end;
  const height = AXIS_HEIGHT + rows.length * ROW_HEIGHT;
  const width = LABEL_WIDTH + PLOT_WIDTH + 10;
  return html`<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="timeline of the run's targets and steps">
${axis(end, scale, height)}${rows.map((row, i) => timelineRow(row, AXIS_HEIGHT + i * ROW_HEIGHT, scale))}</svg>`;
}

function timelineRow(row: TimelineRow, y: number, scale: number): Html {
  const label = row.engine === undefined ? row.target : `${row.target} · ${row.engine}`;
  return html`<g class="row status-${row.status}" data-target="${row.target}"><text class="label" x="4" y="${y + 18}">${label}</text>
${row.bars.map((b) => bar(b, y, scale))}</g>
`;
}

function bar(b: TimelineBar, y: number, scale: number): Html {
  const x = LABEL_WIDTH + b.start * scale;
  const w = Math.max(2, b.seconds * scale);
  // A bar wide enough for its step's name carries it.
  const label =
    w >= b.step.length * 6.5 + 6
      ? html`<text class="step-label" x="${(x + 3).toFixed(1)}" y="${y + 18}">${b.step}</text>`
      : undefined;
  return html`<rect class="bar ${b.outcome}" data-step="${b.step}" x="${x.toFixed(1)}" y="${y + 5}" width="${w.toFixed(1)}" height="${ROW_HEIGHT - 10}" rx="2"><title>${b.step}: ${b.outcome}, ${b.seconds.toFixed(1)} s (from ${b.start.toFixed(1)} s)</title></rect>${label}`;
}

function axis(end: number, scale: number, height: number): Html {
  const step = tickStep(end);
  const ticks: number[] = [];
  for (let t = 0; t <= end + 1e-9; t += step) ticks.push(t);
  return html`<g class="axis">${ticks.map((t) => {
    const x = (LABEL_WIDTH + t * scale).toFixed(1);
    return html`<line x1="${x}" x2="${x}" y1="${AXIS_HEIGHT - 4}" y2="${height}"/><text x="${x}" y="14">${formatSeconds(t)}</text>`;
  })}</g>
`;
}

/** A tick every 1, 2, 5, 10, ... seconds: at most about ten ticks. */
function tickStep(end: number): number {
  for (const s of [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200]) if (end / s <= 10) return s;
  return Math.ceil(end / 10 / 3600) * 3600;
}

export function formatSeconds(seconds: number): string {
  const whole = Math.round(seconds);
  if (whole < 60) return `${whole} s`;
  const m = Math.floor(whole / 60);
  if (m < 60) return `${m} min ${whole % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

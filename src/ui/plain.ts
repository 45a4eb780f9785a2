import type { Reporter, RunEvent } from "./reporter.js";

/** Plain `[target] message` lines: for logs, CI and anything that is not a terminal. */
export class PlainReporter implements Reporter {
  constructor(
    private readonly out: NodeJS.WritableStream = process.stderr,
    private readonly verbose = false,
  ) {}

  emit(event: RunEvent): void {
    const line = plainLine(event, this.verbose);
    if (line !== undefined) this.out.write(`${line}\n`);
  }

  close(): void {}
}

export function plainLine(event: RunEvent, verbose: boolean): string | undefined {
  switch (event.type) {
    case "run-start":
      return `run ${event.runId}: ${event.targets.length} target(s) [${event.targets.join(", ")}], ${event.concurrency} at a time`;
    case "image":
      return `builder image ${event.tag}: ${event.built ? "built" : "reused"}`;
    case "image-line":
      return verbose ? `[image] ${event.line}` : undefined;
    case "target-start":
      return `[${event.target}] started`;
    case "step":
      return `[${event.target}] ${event.title}`;
    case "line":
      return verbose ? `[${event.target}] ${event.line}` : undefined;
    case "target-done":
      // The first line only: a failure's full text (log tail, log path) is printed once, at the end of the run.
      return `[${event.target}] ${event.ok ? "done" : "FAILED"} in ${event.seconds.toFixed(1)} s${event.detail ? `: ${event.detail.split("\n")[0]}` : ""}`;
    case "info":
      return event.message;
  }
}

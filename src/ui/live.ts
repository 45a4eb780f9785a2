import ora, { type Ora } from "ora";
import { PlainReporter, plainLine } from "./plain.js";
import type { Reporter, RunEvent } from "./reporter.js";

/** One ora spinner for the whole run; finished targets become persistent lines above it. */
export class LiveReporter implements Reporter {
  private readonly spinner: Ora;
  private readonly active = new Map<string, { step: string; last: string }>();
  private total = 0;
  private done = 0;

  constructor(stream: NodeJS.WriteStream = process.stderr) {
    this.spinner = ora({ stream, discardStdin: false });
  }

  emit(event: RunEvent): void {
    switch (event.type) {
      case "run-start":
        this.total = event.targets.length;
        this.spinner.start(`run ${event.runId}: preparing`);
        return;
      case "target-start":
        this.active.set(event.target, { step: "starting", last: "" });
        break;
      case "step": {
        const t = this.active.get(event.target);
        if (t !== undefined) t.step = event.title;
        break;
      }
      case "line": {
        const t = this.active.get(event.target);
        if (t !== undefined) t.last = event.line.slice(0, 100);
        break;
      }
      case "image-line":
        this.spinner.text = `builder image: ${event.line.slice(0, 100)}`;
        return;
      case "target-done":
        this.active.delete(event.target);
        this.done += 1;
        this.persist(plainLine(event, false) ?? "", event.ok);
        break;
      case "image":
      case "info":
        this.persist(plainLine(event, false) ?? "", true);
        return;
    }
    this.spinner.text = this.status();
  }

  private status(): string {
    const names = [...this.active.keys()];
    const head = `${this.done}/${this.total} done${names.length > 0 ? ` · building ${names.join(", ")}` : ""}`;
    if (names.length !== 1) return head;
    const t = this.active.get(names[0] as string);
    return `${head} · ${t?.step ?? ""}${t?.last ? ` · ${t.last}` : ""}`;
  }

  private persist(text: string, ok: boolean): void {
    const running = this.spinner.isSpinning;
    if (ok) this.spinner.stopAndPersist({ symbol: "✔", text });
    else this.spinner.stopAndPersist({ symbol: "✖", text });
    if (running) this.spinner.start(this.status());
  }

  close(): void {
    if (this.spinner.isSpinning) this.spinner.stop();
  }
}

/**
 * ora in a terminal, plain lines without a TTY or with CI set. `verbose` streams every build and image line, as
 * plain lines (a spinner cannot share the terminal with them).
 */
export function chooseReporter(
  stream: NodeJS.WriteStream = process.stderr,
  options: { verbose?: boolean } = {},
): Reporter {
  const ci = process.env["CI"] !== undefined && process.env["CI"] !== "" && process.env["CI"] !== "false";
  if (options.verbose === true) return new PlainReporter(stream, true);
  return stream.isTTY === true && !ci ? new LiveReporter(stream) : new PlainReporter(stream);
}

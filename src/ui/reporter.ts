/** Typed events of a run. Only reporters write to the terminal. */
export type RunEvent =
  | { type: "run-start"; runId: string; targets: string[]; concurrency: number }
  | { type: "image"; tag: string; built: boolean }
  | { type: "image-line"; line: string }
  | { type: "target-start"; target: string }
  | { type: "step"; target: string; step: string; title: string }
  | { type: "line"; target: string; line: string }
  | { type: "target-done"; target: string; ok: boolean; seconds: number; detail: string }
  | { type: "info"; message: string };

export interface Reporter {
  emit(event: RunEvent): void;
  /** Stop any live display; called once at the end of a run, also after a failure. */
  close(): void;
}

export const silentReporter: Reporter = { emit() {}, close() {} };

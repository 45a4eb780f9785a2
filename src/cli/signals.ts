/**
 * An AbortController that SIGINT and SIGTERM abort. A second signal while the run is cleaning up exits at once
 * (containers are then left for `stack-factory clean`).
 */
export function abortOnSignals(onFirst?: (signal: NodeJS.Signals) => void): {
  signal: AbortSignal;
  dispose: () => void;
} {
  const controller = new AbortController();
  const handler = (sig: NodeJS.Signals): void => {
    if (controller.signal.aborted) {
      process.stderr.write(`\nstack-factory: ${sig} again, exiting without cleanup (run stack-factory clean)\n`);
      process.exit(130);
    }
    onFirst?.(sig);
    controller.abort(new Error(sig));
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off("SIGINT", handler);
      process.off("SIGTERM", handler);
    },
  };
}

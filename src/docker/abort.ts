import { CancelledError } from "../errors.js";

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new CancelledError();
}

/** Runs `action` once when `signal` aborts (at once if it already has); returns a function that stops listening. */
export function onAbort(signal: AbortSignal | undefined, action: () => void): () => void {
  if (!signal) return () => {};
  if (signal.aborted) {
    action();
    return () => {};
  }
  signal.addEventListener("abort", action, { once: true });
  return () => signal.removeEventListener("abort", action);
}

/** A promise that rejects with CancelledError when `signal` aborts, after running `action`; never settles otherwise. */
export function abortion(
  signal: AbortSignal | undefined,
  action: () => void,
): { promise: Promise<never>; stop: () => void } {
  let stop = (): void => {};
  const promise = new Promise<never>((_, reject) => {
    stop = onAbort(signal, () => {
      action();
      reject(new CancelledError());
    });
  });
  promise.catch(() => {});
  return { promise, stop };
}

import { CancelledError, DockerError } from "../errors.js";

/** HTTP status of a refused engine request (the modem puts it on the error), also when wrapped as `cause`. */
export function statusCodeOf(error: unknown): number | undefined {
  for (let e: unknown = error, depth = 0; e && typeof e === "object" && depth < 5; depth++) {
    const code = (e as { statusCode?: unknown }).statusCode;
    if (typeof code === "number") return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** The engine's own explanation (`json.message`) when it sent one, else the error's message. */
export function reasonOf(error: unknown): string {
  if (error && typeof error === "object") {
    const json = (error as { json?: unknown }).json;
    if (json && typeof json === "object" && typeof (json as { message?: unknown }).message === "string") {
      return (json as { message: string }).message.trim();
    }
    if (typeof json === "string" && json.trim() !== "") return json.trim();
    if (error instanceof Error) return error.message.trim();
  }
  return String(error);
}

/** Wraps an engine failure: says what failed and why; the low-level error (with its `statusCode`) is the cause. */
export function dockerError(what: string, error: unknown, hint?: string): DockerError {
  if (error instanceof DockerError || error instanceof CancelledError) return error;
  return new DockerError(`${what}: ${reasonOf(error)}`, { cause: error, ...(hint === undefined ? {} : { hint }) });
}

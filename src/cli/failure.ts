import { FactoryError } from "../errors.js";

/** What the CLI prints for an error and the exit code it ends with. */
export interface Failure {
  text: string;
  exitCode: number;
}

/** What a system call was doing, for messages. */
const DOING: Record<string, string> = {
  write: "write",
  open: "open",
  mkdir: "create the directory",
  rename: "rename",
  copyfile: "copy",
  unlink: "remove",
  rmdir: "remove",
  read: "read",
  scandir: "list",
  close: "close",
  fsync: "sync",
  symlink: "create the symlink",
  link: "link",
};

/** Errors of the machine rather than of the factory: a full disk, a read-only file system, no permission. */
const ENVIRONMENT = new Map<string, string>([
  ["ENOSPC", "no space left on the device"],
  ["EDQUOT", "disk quota exceeded"],
  ["EROFS", "read-only file system"],
  ["EACCES", "permission denied"],
  ["EPERM", "operation not permitted"],
  ["EIO", "input/output error"],
  ["EMFILE", "too many open files"],
  ["ENFILE", "too many open files in the system"],
  ["ENAMETOOLONG", "file name too long"],
  ["EFBIG", "file too large"],
]);

/**
 * The single mapping from errors to messages and exit codes: a FactoryError says what it says; an error of the
 * machine (a full disk, say) names the path and what was being done, without a stack trace, exit 1; anything else
 * is a bug in the factory, exit 70 with the stack.
 */
export function describeFailure(error: unknown): Failure {
  if (error instanceof FactoryError) {
    const hint = error.hint !== undefined ? `\nhint: ${error.hint}` : "";
    return { text: `stack-factory: ${error.message}${hint}\n`, exitCode: error.exitCode };
  }
  const system = error as (NodeJS.ErrnoException & { dest?: unknown }) | undefined;
  const reason = typeof system?.code === "string" ? ENVIRONMENT.get(system.code) : undefined;
  if (reason !== undefined) {
    const doing = DOING[system!.syscall ?? ""] ?? system!.syscall ?? "write";
    const where =
      typeof system!.path === "string"
        ? ` ${system!.path}${typeof system!.dest === "string" ? ` to ${system!.dest}` : ""}`
        : "";
    return { text: `stack-factory: cannot ${doing}${where}: ${reason} (${system!.code})\n`, exitCode: 1 };
  }
  const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
  return { text: `stack-factory: internal error: ${detail}\n`, exitCode: 70 };
}

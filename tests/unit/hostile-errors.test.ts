import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { describeFailure } from "../../src/cli/failure.js";
import { InputError } from "../../src/errors.js";

/** An error as Node's fs reports one. */
function systemError(code: string, syscall: string, path?: string): NodeJS.ErrnoException {
  const error = new Error(`${code}: ${syscall}${path !== undefined ? ` '${path}'` : ""}`) as NodeJS.ErrnoException;
  error.code = code;
  error.syscall = syscall;
  if (path !== undefined) error.path = path;
  return error;
}

// A full disk: the write on the temporary file's descriptor fails with ENOSPC and no path, as the kernel reports it.
vi.mock("node:fs/promises", async (original) => {
  const real = await original<typeof import("node:fs/promises")>();
  return {
    ...real,
    writeFile: async (path: string, ...rest: unknown[]) => {
      if (String(path).includes("full-disk")) throw systemError("ENOSPC", "write");
      return (real.writeFile as (...args: unknown[]) => Promise<void>)(path, ...rest);
    },
  };
});

let work: string;
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), "sf-errors-"));
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

describe("errors the machine causes", () => {
  it("a full disk during an atomic write names the file being written, without a stack trace, exit 1", async () => {
    const { writeFileAtomic } = await import("../../src/fs/write-atomic.js");
    const path = join(work, "full-disk", "plan.json");
    const error = await writeFileAtomic(path, "{}").then(
      () => undefined,
      (e: unknown) => e,
    );
    const failure = describeFailure(error);
    expect(failure).toEqual({
      text: `stack-factory: cannot write ${path}: no space left on the device (ENOSPC)\n`,
      exitCode: 1,
    });
  });

  it.each([
    [systemError("EROFS", "open", "/ro/x"), "stack-factory: cannot open /ro/x: read-only file system (EROFS)\n"],
    [
      systemError("EDQUOT", "write", "/home/u/t.tar.gz"),
      "stack-factory: cannot write /home/u/t.tar.gz: disk quota exceeded (EDQUOT)\n",
    ],
    [
      systemError("EACCES", "mkdir", "/srv/cache"),
      "stack-factory: cannot create the directory /srv/cache: permission denied (EACCES)\n",
    ],
  ])("%s is a plain message, exit 1", (error, text) => {
    expect(describeFailure(error)).toEqual({ text, exitCode: 1 });
  });

  it("keeps the factory's own errors and calls anything else an internal error (exit 70)", () => {
    expect(describeFailure(new InputError("bad", { hint: "fix it" }))).toEqual({
      text: "stack-factory: bad\nhint: fix it\n",
      exitCode: 2,
    });
    const bug = describeFailure(new TypeError("x is undefined"));
    expect(bug.exitCode).toBe(70);
    expect(bug.text).toMatch(/^stack-factory: internal error: TypeError: x is undefined/);
  });
});

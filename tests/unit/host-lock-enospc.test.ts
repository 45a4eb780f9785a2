/**
 * A full disk while a host lock is taken: the holder file cannot be written. The failure names the lock and the
 * reason, as a FactoryError (exit 1 for the target that wanted the lock), never a raw errno error with a stack
 * trace, and leaves no temporary file behind. The file system's answer is injected: filling a real disk is not
 * something a test may do on a shared machine, nor as an ordinary user.
 */
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  return {
    ...real,
    writeFile: async (file: Parameters<typeof real.writeFile>[0], ...rest: unknown[]) => {
      if (String(file).includes("full-disk")) {
        // As the kernel does: the file is created, then the write fails.
        await (real.writeFile as (...a: unknown[]) => Promise<void>)(file, "", ...rest.slice(1));
        throw Object.assign(new Error(`ENOSPC: no space left on device, write`), {
          code: "ENOSPC",
          errno: -28,
          syscall: "write",
        });
      }
      return (real.writeFile as (...a: unknown[]) => Promise<void>)(file, ...rest);
    },
  };
});

const { acquireLock } = await import("../../src/cache/host-lock.js");
const { FactoryError } = await import("../../src/errors.js");
const { describeFailure } = await import("../../src/cli/failure.js");

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "sf-lock-enospc-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("a host lock on a full disk", () => {
  it("fails with a message naming the lock and the reason, exit 1, and leaves no temporary file", async () => {
    const lock = path.join(dir, "locks", "full-disk.lock");
    const error = await acquireLock(lock).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(FactoryError);
    expect((error as Error).message).toBe(`cannot take the host lock ${lock}: no space left on device, write (ENOSPC)`);
    const failure = describeFailure(error);
    expect(failure.exitCode).toBe(1);
    expect(failure.text).not.toMatch(/internal error|\n\s+at /);
    expect(await readdir(path.join(dir, "locks"))).toEqual([]);
  });
});

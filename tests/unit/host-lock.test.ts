import { getEventListeners } from "node:events";
import { mkdtemp, readdir, readFile, utimes, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { acquireLock, withLock } from "../../src/cache/host-lock.js";
import { CancelledError } from "../../src/errors.js";

const DEAD_PID = 2 ** 22 + 17;
const lockDir = () => mkdtemp(join(tmpdir(), "sf-lock-"));

/** Runs `count` withLock sections on `path` at once; the most that were ever inside together. */
async function overlap(path: string, count: number, holdMs: number): Promise<number> {
  let inside = 0;
  let maxInside = 0;
  await Promise.all(
    Array.from({ length: count }, () =>
      withLock(
        path,
        async () => {
          inside += 1;
          maxInside = Math.max(maxInside, inside);
          await new Promise((r) => setTimeout(r, holdMs));
          inside -= 1;
        },
        { pollMs: 1 },
      ),
    ),
  );
  return maxInside;
}

describe("host lock", () => {
  it("serialises holders: no two critical sections overlap", async () => {
    const path = join(await lockDir(), "a.lock");
    let inside = 0;
    let maxInside = 0;
    const order: number[] = [];
    await Promise.all(
      [1, 2, 3, 4].map((i) =>
        withLock(
          path,
          async () => {
            inside += 1;
            maxInside = Math.max(maxInside, inside);
            await new Promise((r) => setTimeout(r, 30));
            order.push(i);
            inside -= 1;
          },
          { pollMs: 5 },
        ),
      ),
    );
    expect(maxInside).toBe(1);
    expect(order.sort()).toEqual([1, 2, 3, 4]);
  });

  it("writes the holder before the lock appears and leaves no temporary file behind", async () => {
    const dir = await lockDir();
    const path = join(dir, "holder.lock");
    const release = await acquireLock(path);
    const holder = JSON.parse(await readFile(path, "utf8")) as { pid: number; host: string };
    expect(holder.pid).toBe(process.pid);
    expect(holder.host).toBe(hostname());
    expect(await readdir(dir)).toEqual(["holder.lock"]);
    await release();
    expect(await readdir(dir)).toEqual([]);
  });

  it("takes over a lock whose holder process is dead", async () => {
    const dir = await lockDir();
    const path = join(dir, "b.lock");
    await writeFile(path, JSON.stringify({ pid: DEAD_PID, host: hostname(), since: "then" }));
    const release = await acquireLock(path, { pollMs: 5, signal: AbortSignal.timeout(2000) });
    expect((JSON.parse(await readFile(path, "utf8")) as { pid: number }).pid).toBe(process.pid);
    await release();
    expect(await readdir(dir)).toEqual([]);
  });

  it("lets only one of several takers in when they find the same dead holder", async () => {
    for (let round = 0; round < 10; round += 1) {
      const path = join(await lockDir(), "race.lock");
      await writeFile(path, JSON.stringify({ pid: DEAD_PID, host: hostname(), since: "then" }));
      expect(await overlap(path, 6, 3)).toBe(1);
    }
  });

  it("treats a lock file left empty (a crash while it was written) as stale once it is old", async () => {
    const path = join(await lockDir(), "empty.lock");
    await writeFile(path, "");
    const old = new Date(Date.now() - 60_000);
    await utimes(path, old, old);
    const release = await acquireLock(path, { pollMs: 5, signal: AbortSignal.timeout(2000) });
    expect((JSON.parse(await readFile(path, "utf8")) as { pid: number }).pid).toBe(process.pid);
    await release();
  });

  it("waits on a lock file that is empty but fresh (its holder may be writing it)", async () => {
    const path = join(await lockDir(), "fresh.lock");
    await writeFile(path, "");
    const waiting = acquireLock(path, { pollMs: 5, signal: AbortSignal.timeout(100) });
    await expect(waiting).rejects.toBeInstanceOf(CancelledError);
    expect(await readFile(path, "utf8")).toBe("");
  });

  it("waits for a live holder and gives up when aborted", async () => {
    const path = join(await lockDir(), "c.lock");
    const release = await acquireLock(path);
    const controller = new AbortController();
    const waiting = acquireLock(path, { signal: controller.signal, pollMs: 5 });
    setTimeout(() => controller.abort(), 50);
    await expect(waiting).rejects.toBeInstanceOf(CancelledError);
    await release();
  });

  it("does not pile up abort listeners while it polls", async () => {
    const path = join(await lockDir(), "d.lock");
    const release = await acquireLock(path);
    const controller = new AbortController();
    const waiting = acquireLock(path, { signal: controller.signal, pollMs: 1 });
    await new Promise((r) => setTimeout(r, 80));
    const listeners = getEventListeners(controller.signal, "abort").length;
    controller.abort();
    await expect(waiting).rejects.toBeInstanceOf(CancelledError);
    expect(listeners).toBeLessThanOrEqual(1);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
    await release();
  });
  it("hands the lock to a waiter of this process at its release, not at the waiter's next poll", {
    timeout: 10_000,
  }, async () => {
    const path = join(await lockDir(), "e.lock");
    const release = await acquireLock(path);
    const told: string[] = [];
    let waitingNow = (): void => {};
    const isWaiting = new Promise<void>((resolve) => {
      waitingNow = resolve;
    });
    // Polling once an hour: once it waits, only the release itself can wake this waiter within the test's time.
    const waiting = withLock(path, async () => readFile(path, "utf8"), {
      pollMs: 3_600_000,
      onWait: (holder) => {
        told.push(holder);
        waitingNow();
      },
    });
    await isWaiting;
    await release();
    expect(JSON.parse(await waiting)).toMatchObject({ pid: process.pid, host: hostname() });
    expect(told).toEqual([`pid ${process.pid} on ${hostname()}`]);
    await expect(readdir(join(path, ".."))).resolves.toEqual([]);
  });
});

import { mkdtemp, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { acquireLock, withLock } from "../../src/build/host-lock.js";
import { CancelledError } from "../../src/errors.js";

describe("host lock", () => {
  it("serialises holders: no two critical sections overlap", async () => {
    const path = join(await mkdtemp(join(tmpdir(), "sf-lock-")), "a.lock");
    let inside = 0;
    let maxInside = 0;
    const order: number[] = [];
    await Promise.all(
      [1, 2, 3, 4].map((i) =>
        withLock(path, async () => {
          inside += 1;
          maxInside = Math.max(maxInside, inside);
          await new Promise((r) => setTimeout(r, 30));
          order.push(i);
          inside -= 1;
        }, { pollMs: 5 }),
      ),
    );
    expect(maxInside).toBe(1);
    expect(order.sort()).toEqual([1, 2, 3, 4]);
  });

  it("takes over a lock whose holder process is dead", async () => {
    const path = join(await mkdtemp(join(tmpdir(), "sf-lock-")), "b.lock");
    await writeFile(path, JSON.stringify({ pid: 2 ** 22 + 17, host: hostname(), since: "then" }));
    const release = await acquireLock(path, { pollMs: 5 });
    await release();
  });

  it("waits for a live holder and gives up when aborted", async () => {
    const path = join(await mkdtemp(join(tmpdir(), "sf-lock-")), "c.lock");
    const release = await acquireLock(path);
    const controller = new AbortController();
    const waiting = acquireLock(path, { signal: controller.signal, pollMs: 5 });
    setTimeout(() => controller.abort(), 50);
    await expect(waiting).rejects.toBeInstanceOf(CancelledError);
    await release();
  });
});

import { describe, expect, it } from "vitest";
import type { Engine } from "../../src/docker/index.js";
import { EngineSet } from "../../src/run/engine-set.js";
import type { RunEngine } from "../../src/run/engines.js";

const tick = () => new Promise((r) => setTimeout(r, 0));

function engine(name: string): RunEngine {
  return { name, engine: { local: true, runId: "r1", name } as Engine, cacheRoot: "/c", concurrency: 2, arch: "amd64" };
}

describe("an engine set's container removals", () => {
  it("settle waits for every removal handed over, a failed one included", async () => {
    const set = EngineSet.of({ engines: [engine("a")], cacheRoot: "/c", concurrency: 2 });
    const ends: ((ok: boolean) => void)[] = [];
    const removal = () =>
      new Promise<void>((resolve, reject) => ends.push((ok) => (ok ? resolve() : reject(new Error("gone")))));
    set.removeLater(removal());
    set.removeLater(removal());
    let settled = false;
    const settling = set.settle().then(() => {
      settled = true;
    });
    ends[0]!(true);
    await tick();
    expect(settled).toBe(false);
    // One handed over while the run already waits is waited for too.
    set.removeLater(removal());
    ends[1]!(false);
    await tick();
    expect(settled).toBe(false);
    ends[2]!(true);
    await settling;
    expect(settled).toBe(true);
  });
});

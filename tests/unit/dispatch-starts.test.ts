import { describe, expect, it } from "vitest";
import type { Engine } from "../../src/docker/index.js";
import { EngineSet } from "../../src/run/engine-set.js";
import type { RunEngine } from "../../src/run/engines.js";
import { oneAtATime } from "../../src/run/one-at-a-time.js";

const tick = () => new Promise((r) => setTimeout(r, 0));

/** A call the test ends when it says so; records its start. */
function held(log: string[], name: string) {
  let end!: (ok: boolean) => void;
  const fn = () =>
    new Promise<string>((resolve, reject) => {
      log.push(`start ${name}`);
      end = (ok) => (ok ? resolve(name) : reject(new Error(`${name} failed`)));
    });
  return { fn, end: (ok = true) => end(ok) };
}

describe("one at a time", () => {
  it("starts each call when the one before it has settled, in call order, a failure included", async () => {
    const gate = oneAtATime(60_000);
    const log: string[] = [];
    const [a, b, c] = [held(log, "a"), held(log, "b"), held(log, "c")];
    const results = [gate(a.fn), gate(b.fn).catch((e: Error) => e.message), gate(c.fn)];
    await tick();
    expect(log).toEqual(["start a"]);
    a.end();
    await tick();
    expect(log).toEqual(["start a", "start b"]);
    b.end(false);
    await tick();
    expect(log).toEqual(["start a", "start b", "start c"]);
    c.end();
    expect(await Promise.all(results)).toEqual(["a", "b failed", "c"]);
  });

  it("a call that never settles holds the next one up for the bound only", async () => {
    const gate = oneAtATime(20);
    const log: string[] = [];
    void gate(held(log, "hangs").fn);
    expect(await gate(async () => "next")).toBe("next");
    expect(log).toEqual(["start hangs"]);
  });
});

function engine(name: string, local: boolean): RunEngine {
  return { name, engine: { local, runId: "r1", name } as Engine, cacheRoot: "/c", concurrency: 2, arch: "amd64" };
}

describe("an engine set's container starts and removals", () => {
  it("engines of this machine share one start gate; an engine of another host has its own", async () => {
    const set = EngineSet.of({
      engines: [engine("a", true), engine("b", true), engine("far", false)],
      cacheRoot: "/c",
      concurrency: 2,
    });
    const log: string[] = [];
    const [a, b, far] = [held(log, "a"), held(log, "b"), held(log, "far")];
    const done = [set.startGate("a")(a.fn), set.startGate("b")(b.fn), set.startGate("far")(far.fn)];
    await tick();
    expect(log.sort()).toEqual(["start a", "start far"]);
    a.end();
    await tick();
    expect(log.sort()).toEqual(["start a", "start b", "start far"]);
    b.end();
    far.end();
    expect(await Promise.all(done)).toEqual(["a", "b", "far"]);
  });

  it("settle waits for every removal handed over, a failed one included", async () => {
    const set = EngineSet.of({ engines: [engine("a", true)], cacheRoot: "/c", concurrency: 2 });
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
    ends[1]!(false);
    await settling;
    expect(settled).toBe(true);
  });
});

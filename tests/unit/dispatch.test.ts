import { describe, expect, it } from "vitest";
import { dispatch, eligibleEngines, familyOfEngineArch, type DispatchTarget } from "../../src/plan/dispatch.js";
import { InputError } from "../../src/errors.js";
import { getMicroarch } from "../../src/targets/index.js";

const target = (name: string): DispatchTarget => ({ target: name, family: getMicroarch(name)!.family });
const tick = () => new Promise((r) => setTimeout(r, 0));

/** A run function whose targets finish when the test says so; records who ran where and when. */
function controlled() {
  const started: string[] = [];
  const finishers = new Map<string, () => void>();
  const run = (t: DispatchTarget, engine: string) =>
    new Promise<string>((resolve) => {
      started.push(`${t.target}@${engine}`);
      finishers.set(t.target, () => resolve(`${t.target}@${engine}`));
    });
  const finish = async (name: string) => {
    finishers.get(name)!();
    await tick();
    await tick();
  };
  return { started, run, finish };
}

describe("engine architectures", () => {
  it("maps Docker's names to target families", () => {
    expect(familyOfEngineArch("amd64")).toBe("x86_64");
    expect(familyOfEngineArch("x86_64")).toBe("x86_64");
    expect(familyOfEngineArch("arm64")).toBe("aarch64");
    expect(familyOfEngineArch("aarch64")).toBe("aarch64");
    expect(familyOfEngineArch("ppc64le")).toBeUndefined();
  });
});

describe("which engines can build a target", () => {
  const engines = [
    { name: "x1", arch: "amd64", concurrency: 2 },
    { name: "a1", arch: "arm64", concurrency: 1 },
    { name: "x2", arch: "amd64", concurrency: 1 },
  ];

  it("by family, in engine order", () => {
    const able = eligibleEngines([target("zen4"), target("neoverse_v2"), target("x86_64_v3")], engines);
    expect(Object.fromEntries(able)).toEqual({ zen4: ["x1", "x2"], neoverse_v2: ["a1"], x86_64_v3: ["x1", "x2"] });
  });

  it("the one default engine (any architecture) takes every target, as before engines had architectures", () => {
    const able = eligibleEngines(
      [target("zen4"), target("neoverse_v2")],
      [{ name: "local", arch: "*", concurrency: 1 }],
    );
    expect(Object.fromEntries(able)).toEqual({ zen4: ["local"], neoverse_v2: ["local"] });
  });

  it("refuses every target no engine can build, with the reason, before anything runs", async () => {
    let ran = 0;
    const run = async () => void ran++;
    const error = await dispatch({
      targets: [target("zen4"), target("neoverse_v2"), target("a64fx")],
      engines: [engines[0]!, engines[2]!],
      run,
      stranded: () => undefined,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).exitCode).toBe(2);
    expect((error as Error).message).toBe(
      [
        "target neoverse_v2 refused: it is an aarch64 target and no engine builds aarch64 (it needs an arm64 engine); engines: x1 (amd64), x2 (amd64)",
        "target a64fx refused: it is an aarch64 target and no engine builds aarch64 (it needs an arm64 engine); engines: x1 (amd64), x2 (amd64)",
      ].join("\n"),
    );
    expect((error as InputError).hint).toMatch(/--engine URL or engines: in the --factory file/);
    expect(ran).toBe(0);
  });
});

describe("handing out targets", () => {
  it("fills each engine's slots in the plan's order, then gives each freed slot the next target it can build", async () => {
    const { started, run, finish } = controlled();
    const targets = ["x86_64", "x86_64_v2", "x86_64_v3", "x86_64_v4", "zen2", "zen3"].map(target);
    const done = dispatch({
      targets,
      engines: [
        { name: "a", arch: "amd64", concurrency: 2 },
        { name: "b", arch: "amd64", concurrency: 1 },
      ],
      run,
      stranded: () => "stranded",
    });
    await tick();
    expect(started).toEqual(["x86_64@a", "x86_64_v2@a", "x86_64_v3@b"]);
    await finish("x86_64_v3"); // b frees first: it takes the next target
    expect(started.slice(3)).toEqual(["x86_64_v4@b"]);
    await finish("x86_64");
    expect(started.slice(4)).toEqual(["zen2@a"]);
    for (const t of ["x86_64_v2", "x86_64_v4", "zen2"]) await finish(t);
    expect(started.slice(5)).toEqual(["zen3@a"]);
    await finish("zen3");
    expect(await done).toEqual(["x86_64@a", "x86_64_v2@a", "x86_64_v3@b", "x86_64_v4@b", "zen2@a", "zen3@a"]);
  });

  it("a waiting target of one family never blocks one of the other", async () => {
    const { started, run, finish } = controlled();
    const done = dispatch({
      targets: ["zen4", "zen3", "neoverse_v2", "neoverse_v1"].map(target),
      engines: [
        { name: "x", arch: "amd64", concurrency: 1 },
        { name: "g", arch: "arm64", concurrency: 1 },
      ],
      run,
      stranded: () => "stranded",
    });
    await tick();
    expect(started).toEqual(["zen4@x", "neoverse_v2@g"]);
    await finish("neoverse_v2");
    expect(started.slice(2)).toEqual(["neoverse_v1@g"]);
    for (const t of ["zen4", "neoverse_v1", "zen3"]) await finish(t);
    expect(await done).toEqual(["zen4@x", "zen3@x", "neoverse_v2@g", "neoverse_v1@g"]);
  });

  it("never runs more than an engine's concurrency at once", async () => {
    const live = new Map<string, number>();
    const peak = new Map<string, number>();
    const result = await dispatch({
      targets: Array.from({ length: 12 }, () => target("x86_64_v3")).map((t, i) => ({ ...t, target: `t${i}` })),
      engines: [
        { name: "a", arch: "amd64", concurrency: 3 },
        { name: "b", arch: "amd64", concurrency: 2 },
      ],
      run: async (_t, engine) => {
        live.set(engine, (live.get(engine) ?? 0) + 1);
        peak.set(engine, Math.max(peak.get(engine) ?? 0, live.get(engine)!));
        await new Promise((r) => setTimeout(r, 5 + Math.random() * 10));
        live.set(engine, live.get(engine)! - 1);
        return engine;
      },
      stranded: () => "stranded",
    });
    expect(result).toHaveLength(12);
    expect(peak.get("a")).toBe(3);
    expect(peak.get("b")).toBe(2);
  });

  it("an engine that went down takes no more targets; its family's others take them, and without any they are stranded", async () => {
    const downed = new Set<string>();
    const { started, run, finish } = controlled();
    const done = dispatch({
      targets: ["x86_64", "x86_64_v2", "x86_64_v3", "neoverse_v2", "neoverse_v1"].map(target),
      engines: [
        { name: "a", arch: "amd64", concurrency: 1 },
        { name: "b", arch: "amd64", concurrency: 1 },
        { name: "g", arch: "arm64", concurrency: 1 },
      ],
      run,
      down: (engine) => (downed.has(engine) ? "did not answer" : undefined),
      stranded: (t, reason) => `${t.target}: ${reason}`,
    });
    await tick();
    expect(started).toEqual(["x86_64@a", "x86_64_v2@b", "neoverse_v2@g"]);
    downed.add("a");
    await finish("x86_64"); // a's own target ends; a takes nothing more
    expect(started).toHaveLength(3);
    await finish("x86_64_v2");
    expect(started.slice(3)).toEqual(["x86_64_v3@b"]);
    downed.add("g");
    await finish("neoverse_v2");
    await finish("x86_64_v3");
    expect(await done).toEqual([
      "x86_64@a",
      "x86_64_v2@b",
      "x86_64_v3@b",
      "neoverse_v2@g",
      "neoverse_v1: no aarch64 engine left: g did not answer",
    ]);
  });
});

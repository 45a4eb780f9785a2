import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { choiceTable, chooseTarget, detectHost } from "../../src/targets/index.js";

/** /proc/cpuinfo of real CPUs (tests/fixtures/cpuinfo/README.md says where each comes from). */
const cpuinfo = (cpu: string) => readFileSync(`tests/fixtures/cpuinfo/${cpu}`, "utf8");

const X86 = ["x86_64_v3", "x86_64_v4", "skylake_avx512", "icelake", "sapphirerapids", "zen2", "zen3", "zen4"];
const ARM = ["aarch64", "armv8.2a", "neoverse_n1", "neoverse_v1", "neoverse_v2"];

describe("choosing a bundle's target from /proc/cpuinfo", () => {
  it.each([
    ["skylake_avx512", X86, "skylake_avx512"],
    ["icelake", X86, "icelake"],
    ["sapphirerapids", X86, "sapphirerapids"],
    ["zen2", X86, "zen2"],
    ["zen3", X86, "zen3"],
    ["zen4", X86, "zen4"],
    ["neoverse_v1", ARM, "neoverse_v1"],
    ["neoverse_v2", ARM, "neoverse_v2"],
  ])("a %s node picks its own target from every target in src/targets/", (cpu, targets, expected) => {
    const choice = chooseTarget(choiceTable(targets), cpuinfo(cpu));
    expect(choice).toMatchObject({ ok: true, target: expected });
    // The factory's host detection (archspec's rule) agrees with the module's choice.
    expect(detectHost(cpuinfo(cpu), cpu.startsWith("neoverse") ? "aarch64" : "x86_64")).toBe(expected);
  });

  it.each([
    ["skylake_avx512", "x86_64_v4"],
    ["icelake", "icelake"],
    ["sapphirerapids", "icelake"],
    ["zen2", "x86_64_v3"],
    ["zen3", "x86_64_v3"],
    ["zen4", "x86_64_v4"],
  ])("with x86_64_v3, x86_64_v4 and icelake, a %s node picks %s", (cpu, expected) => {
    expect(chooseTarget(choiceTable(["x86_64_v3", "x86_64_v4", "icelake"]), cpuinfo(cpu))).toMatchObject({
      ok: true,
      target: expected,
    });
  });

  it("takes <NAME>_TARGET when the node can run it, and refuses it naming the missing features otherwise", () => {
    const table = choiceTable(["x86_64_v3", "x86_64_v4", "zen4"]);
    expect(chooseTarget(table, cpuinfo("zen4"), "x86_64_v3", "HELLO_TARGET")).toMatchObject({
      ok: true,
      target: "x86_64_v3",
      why: "set by HELLO_TARGET",
    });
    const refused = chooseTarget(table, cpuinfo("zen2"), "x86_64_v4", "HELLO_TARGET");
    expect(refused).toMatchObject({ ok: false });
    expect(refused.ok ? "" : refused.message).toBe(
      "HELLO_TARGET=x86_64_v4: this node cannot run x86_64_v4: missing avx512f avx512bw avx512cd avx512dq avx512vl",
    );
    expect(chooseTarget(table, cpuinfo("zen4"), "zen9", "HELLO_TARGET")).toMatchObject({
      ok: false,
      message: "HELLO_TARGET=zen9 is not one of zen4, x86_64_v4, x86_64_v3",
    });
  });

  it("names what each target lacks when the node can run none, and never confirms an armv8.x level", () => {
    const none = chooseTarget(choiceTable(["zen4", "sapphirerapids"]), cpuinfo("zen3"));
    expect(none.ok).toBe(false);
    expect(none.ok ? "" : none.message).toContain("zen4: missing gfni flush_l1d avx512f");
    expect(none.ok ? "" : none.message).toContain(
      "sapphirerapids: it needs a GenuineIntel CPU; this node is AuthenticAMD",
    );
    const arm = chooseTarget(choiceTable(["armv8.2a"]), cpuinfo("neoverse_v2"));
    expect(arm.ok ? "" : arm.message).toContain("/proc/cpuinfo cannot confirm armv8.2a");
    const family = chooseTarget(choiceTable(["x86_64"]), cpuinfo("neoverse_v1"));
    expect(family.ok ? "" : family.message).toContain("it is for x86_64 CPUs; this node is aarch64");
  });

  it("orders the table the modules carry best first", () => {
    expect(choiceTable(["x86_64_v3", "zen2", "x86_64_v4"]).map((r) => r.name)).toEqual([
      "zen2",
      "x86_64_v4",
      "x86_64_v3",
    ]);
  });
});

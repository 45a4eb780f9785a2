import { describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import {
  type BundleModuleInput,
  loadBundleModuleTemplates,
  renderBundleModule,
} from "../../src/render/bundle-module.js";
import { envStem } from "../../src/render/module.js";

const lua = await loadBundleModuleTemplates("lmod");
const tcl = await loadBundleModuleTemplates("tcl");

function input(overrides: Partial<BundleModuleInput> = {}): BundleModuleInput {
  return {
    stackName: "hello-world",
    version: "1.0",
    moduleName: "hello",
    targets: ["x86_64_v3", "zen4", "icelake"],
    defaultPrefix: "/opt/hello",
    envVars: {},
    description: "A greeting stack",
    specs: ["hello@2.12"],
    ...overrides,
  };
}

describe("renderBundleModule", () => {
  it("carries the choice table best first and the line install.sh rewrites, in Lua and in Tcl", () => {
    const l = renderBundleModule(input(), lua, "lmod");
    expect(l.indexOf('name = "zen4"')).toBeLessThan(l.indexOf('name = "x86_64_v3"'));
    expect(l).toContain('local target_variable = "HELLO_WORLD_TARGET"');
    expect(l.split("\n").filter((x) => x.startsWith("local recorded_prefix = "))).toEqual([
      'local recorded_prefix = "/opt/hello"',
    ]);
    const t = renderBundleModule(input(), tcl, "tcl");
    expect(t.startsWith("#%Module")).toBe(true);
    expect(t).toContain('set target_variable "HELLO_WORLD_TARGET"');
    expect(t.split("\n").filter((x) => x.startsWith("set recorded_prefix "))).toEqual([
      'set recorded_prefix "/opt/hello"',
    ]);
    expect(t).toMatch(/\[list "icelake" "x86_64" "GenuineIntel" 1 \[list "mmx"/);
  });

  it("quotes what a stack gives, and keeps <NAME>_TARGET for the module itself", () => {
    const t = renderBundleModule(input({ description: "[exec id] $HOME" }), tcl, "tcl");
    expect(t).toContain('set stack_description "\\[exec id\\] \\$HOME"');
    const stem = envStem("hello-world");
    expect(() => renderBundleModule(input({ envVars: { [`${stem}_TARGET`]: "zen4" } }), lua, "lmod")).toThrow(
      InputError,
    );
    expect(() => renderBundleModule(input({ targets: ["zen7"] }), lua, "lmod")).toThrow(/zen7/);
  });
});

import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseStack } from "../../src/config/index.js";
import { planBuild } from "../../src/plan/plan.js";
import { writePlan } from "../../src/plan/write.js";
import { loadTemplates, render, TemplateVariableError, variablesOf } from "../../src/render/templates.js";

const STACK = "name: tpl\nversion: '2.1'\nspecs: [zlib]\ntargets: [x86_64_v3]\nprefix: /apps/tpl/2.1\n";

describe("templates are typed", () => {
  it("fails on a variable the input does not have, naming it, instead of rendering undefined", () => {
    expect(() => render("FROM <%= it.baseImag %>\n", { baseImage: "debian:12" }, "Dockerfile")).toThrow(
      TemplateVariableError,
    );
    expect(() => render("FROM <%= it.baseImag %>\n", { baseImage: "debian:12" }, "Dockerfile")).toThrow(
      "Dockerfile reads it.baseImag, which its input does not have (it has: baseImage)",
    );
    expect(render("FROM <%= it.baseImage %>\n", { baseImage: "debian:12" })).toBe("FROM debian:12\n");
  });

  it("renders every project template with the input the planner gives it, reading no variable it lacks", async () => {
    const templates = await loadTemplates();
    for (const text of [templates.dockerfile, templates.installScript, templates.module, templates.tclModule])
      expect(variablesOf(text).length).toBeGreaterThan(0);
    const plan = planBuild(parseStack(STACK, "tpl.yaml"), undefined, { templates, jobs: 1 });
    expect(plan.builder.files["Dockerfile"]).not.toMatch(/undefined/);
    const files = plan.targets[0]!.packageFiles!;
    expect(files.installScript).not.toMatch(/='undefined'|\bundefined\b/);
    expect(files.modules.lmod).not.toMatch(/\bundefined\b/);
    expect(files.modules.tcl).toMatch(/^#%Module/);
    expect(files.modules.tcl).not.toMatch(/\bundefined\b/);
  });

  it("renders install.sh and the module at plan time: plan --out shows them, warm plans have none", async () => {
    const templates = await loadTemplates();
    const stack = parseStack(STACK, "tpl.yaml");
    const out = await mkdtemp(path.join(tmpdir(), "sf-plan-out-"));
    try {
      const plan = planBuild(stack, undefined, { templates, jobs: 1 });
      await writePlan(plan, out);
      const install = await readFile(path.join(out, "x86_64_v3", "package", "install.sh"), "utf8");
      expect(install.startsWith("#!/usr/bin/env bash\n")).toBe(true);
      expect(install).toContain("/apps/tpl/2.1");
      const module = await readFile(path.join(out, "x86_64_v3", "package", "module.lua"), "utf8");
      expect(module).toContain("/apps/tpl/2.1");
      const tcl = await readFile(path.join(out, "x86_64_v3", "package", "module.tcl"), "utf8");
      expect(tcl).toContain('set recorded_prefix "/apps/tpl/2.1"');
      expect(JSON.parse(await readFile(path.join(out, "plan.json"), "utf8"))).toMatchObject({ format_version: 3 });
      expect(
        planBuild(stack, undefined, { templates, jobs: 1, mode: "warm" }).targets[0]!.packageFiles,
      ).toBeUndefined();
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});

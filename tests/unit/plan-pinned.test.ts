import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseStack } from "../../src/config/index.js";
import { planBuild, type PlanOptions } from "../../src/plan/plan.js";
import { planToJson } from "../../src/plan/write.js";
import type { Templates } from "../../src/render/templates.js";

// The plans of the example stacks, pinned: a change to how a plan is made (a split of planTarget, a helper moved)
// must give the same plan, byte for byte, or change the pinned files on purpose (`npx vitest run -u` on this file,
// then read the diff). The stacks are read as if they sat in /stacks/examples, so that no path of this checkout
// enters a plan. The templates are stand-ins that write out every input the plan renders them with, so that what is
// pinned is the planning, not the text of templates/ (which their own tests cover).
const examples = join(import.meta.dirname, "..", "..", "examples");
const pinned = join(import.meta.dirname, "..", "fixtures", "plans");
const dump = (name: string) =>
  `${name}\n<%~ Object.keys(it).sort().map((key) => key + "=" + JSON.stringify(it[key])).join("\\n") %>\n`;
const templates: Templates = {
  dockerfile: dump("Dockerfile"),
  prepareRelocation: "prepare-relocation.py\n",
  installScript: dump("install.sh"),
  module: dump("module.lua"),
  tclModule: dump("module.tcl"),
};
const signing = {
  fingerprint: "0123456789ABCDEF0123456789ABCDEF01234567",
  publicKey: "-----BEGIN PGP PUBLIC KEY BLOCK-----\n",
};
const modes: Record<string, Omit<PlanOptions, "templates">> = {
  build: { jobs: 4 },
  warm: { jobs: 2, mode: "warm" },
  signed: { jobs: 8, signing },
  "signed-warm": { jobs: 1, mode: "warm", signing },
};
const names = (await readdir(examples)).filter((name) => name.endsWith(".yaml")).sort();

describe("the plans of the example stacks", () => {
  it("covers every example stack", () => {
    expect(names).toEqual(["hello.yaml", "offline-demo.yaml", "site-override.yaml", "slurm.yaml"]);
  });

  for (const name of names) {
    for (const [mode, options] of Object.entries(modes)) {
      it(`${name}, ${mode}: the same plan as pinned`, async () => {
        const stack = parseStack(await readFile(join(examples, name), "utf8"), `/stacks/examples/${name}`);
        const json = planToJson(planBuild(stack, undefined, { templates, ...options }));
        await expect(json).toMatchFileSnapshot(join(pinned, `${name.replace(/\.yaml$/, "")}.${mode}.json`));
      });
    }
  }
});

import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadBundleModuleTemplates, renderBundleModule } from "../../src/render/bundle-module.js";
import { shellQuote } from "../../src/render/install-script.js";
import { MODULE_SYSTEMS, modulePath } from "../../src/render/module.js";
import { choiceTable, chooseTarget, readNodeCpu, whyNot } from "../../src/targets/index.js";
import { type ModuleSystemName, values, withModules } from "./helpers/module-systems.js";
import { buildRelocatableTree, type RelocatableTree } from "./helpers/relocatable-tree.js";

/**
 * The module of a multi-target bundle under real Lmod and real Environment Modules: three or more x86_64 targets
 * installed side by side (<prefix>/targets/<target>, each by its own install.sh), one of which this host cannot run
 * (picked from this host's /proc/cpuinfo). The module must load the most specific target the host runs, take
 * <NAME>_TARGET for another runnable one, refuse one the host cannot run naming the missing features, and the chosen
 * view's programs must run under env -i.
 */
let trees: RelocatableTree[] = [];
let prefix: string;
let home: string;
let targets: string[];
let unrunnable: string;
let best: string;
let cpuinfo: string;

/** A target this host cannot run, found from its own flags: the first of these it lacks a feature of. */
const CANDIDATES = ["x86_64_v4", "zen4", "sapphirerapids", "zen5", "arrowlake_s", "icelake"];

beforeAll(async () => {
  cpuinfo = await readFile("/proc/cpuinfo", "utf8");
  const node = readNodeCpu(cpuinfo);
  expect(node.family, "this test needs an x86_64 host").toBe("x86_64");
  const lacking = CANDIDATES.find((t) => whyNot(choiceTable([t])[0]!, node) !== undefined);
  if (lacking === undefined) throw new Error("this host runs every candidate target: add a newer one to CANDIDATES");
  unrunnable = lacking;
  targets = ["x86_64_v2", "x86_64_v3", unrunnable];
  const choice = chooseTarget(choiceTable(targets), cpuinfo);
  if (!choice.ok) throw new Error(choice.message);
  best = choice.target;

  for (const target of targets)
    trees.push(await buildRelocatableTree({ target, envVars: { HELLO_DATA: "${PREFIX}/data" } }));
  prefix = join(trees[0]!.root, "bundle");
  home = join(trees[0]!.root, "home");
  await mkdir(home, { recursive: true });
  for (const [i, target] of targets.entries()) {
    const tree = trees[i]!;
    const result = await execa("bash", [join(tree.top, "install.sh"), "--prefix", `${prefix}/targets/${target}`], {
      reject: false,
    });
    expect(result.exitCode, result.stderr).toBe(0);
  }
  for (const system of MODULE_SYSTEMS) {
    const text = renderBundleModule(
      {
        stackName: "hello",
        version: "1.0",
        moduleName: "hello",
        targets,
        defaultPrefix: "/opt/stacks/hello/1.0",
        envVars: { HELLO_DATA: "${PREFIX}/data" },
        description: "A greeting stack",
        specs: ["hello@2.12"],
      },
      await loadBundleModuleTemplates(system),
      system,
    );
    const path = join(prefix, modulePath(system, "hello", "1.0"));
    await mkdir(join(path, ".."), { recursive: true });
    await writeFile(path, text);
  }
});

afterAll(async () => {
  for (const tree of trees) await tree.remove();
  trees = [];
});

const SHOW = [
  'echo "ROOT=${HELLO_ROOT-<unset>}"',
  'echo "DATA=${HELLO_DATA-<unset>}"',
  'echo "GREET=$(greet | head -n1)"',
].join("\n");
const use = () => `module use ${shellQuote(`${prefix}/modules`)}\n`;
const folded = (text: string) => text.replace(/\s+/g, " ");

describe.each(MODULE_SYSTEMS.map((s) => [s] as const))("the bundle module under %s", (system: ModuleSystemName) => {
  it("loads the most specific target this host runs, and its programs run under env -i", async () => {
    expect(best).not.toBe(unrunnable);
    // x86_64_v3 is deeper in archspec's tree than x86_64_v2: more specific, whenever this host runs it.
    const runsV3 = whyNot(choiceTable(["x86_64_v3"])[0]!, readNodeCpu(cpuinfo)) === undefined;
    expect(best).toBe(runsV3 ? "x86_64_v3" : "x86_64_v2");
    const load = await withModules(
      system,
      home,
      `${use()}module load hello || exit 9\n${SHOW}\necho "BIN=$(command -v greet)"`,
    );
    expect(load.exitCode, load.stderr).toBe(0);
    const v = values(load.stdout);
    expect(v.ROOT).toBe(`${prefix}/targets/${best}/view`);
    expect(v.DATA).toBe(`${prefix}/targets/${best}/data`);
    const tree = trees[targets.indexOf(best)]!;
    expect(v.GREET).toBe(tree.binaryPath(`${prefix}/targets/${best}`, "/share/greet"));
    const bare = await execa("env", ["-i", v.BIN!], { reject: false });
    expect(bare.exitCode, bare.stderr).toBe(0);
    expect(bare.stdout.split("\n")[0]).toBe(tree.binaryPath(`${prefix}/targets/${best}`, "/share/greet"));
  });

  it("takes HELLO_TARGET for another target this host runs", async () => {
    const load = await withModules(system, home, `${use()}module load hello || exit 9\n${SHOW}`, {
      HELLO_TARGET: "x86_64_v2",
    });
    expect(load.exitCode, load.stderr).toBe(0);
    expect(values(load.stdout).ROOT).toBe(`${prefix}/targets/x86_64_v2/view`);
  });

  it("refuses a target this host cannot run, naming the missing features", async () => {
    const missing = whyNot(choiceTable([unrunnable])[0]!, readNodeCpu(cpuinfo))!;
    const load = await withModules(system, home, `${use()}module load hello\necho "RC=$?"\n${SHOW}`, {
      HELLO_TARGET: unrunnable,
    });
    expect(values(load.stdout)).toMatchObject({ RC: "1", ROOT: "<unset>" });
    expect(folded(load.stderr)).toContain(`HELLO_TARGET=${unrunnable}: this node cannot run ${unrunnable}: ${missing}`);
  });

  it("says in show/display which target it chose and why", async () => {
    const show = await withModules(system, home, `${use()}module ${system === "lmod" ? "show" : "display"} hello 2>&1`);
    expect(folded(`${show.stdout}${show.stderr}`)).toContain(
      `Target: ${best} (the most specific of ${choiceTable(targets)
        .map((r) => r.name)
        .join(", ")} this node can run)`,
    );
  });
});

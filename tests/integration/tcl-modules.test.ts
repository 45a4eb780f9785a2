import { cp, mkdir, readFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { shellQuote } from "../../src/render/install-script.js";
import { ENVIRONMENT_MODULES_ROOT, values, withModules } from "./helpers/module-systems.js";
import { buildRelocatableTree, type RelocatableTree } from "./helpers/relocatable-tree.js";

/**
 * Real Environment Modules (Tcl; Debian's environment-modules, see helpers/module-systems.ts) against trees
 * installed with the real install.sh: the behaviour of the Lmod module (tests/integration/lmod.test.ts), from the
 * Tcl modulefile beside it.
 */
const DESCRIPTION = 'Says "hello" [politely] $HOME {braces} \\ end\nsecond line';
const LITERAL = 'a $HOME [exec touch /tmp/sf-pwned] {x} "q" \\n';

let tree: RelocatableTree;
let home: string;
let p1: string;
let p2: string;
let site: string;

async function install(prefix: string, ...extra: string[]): Promise<void> {
  const result = await execa("bash", [join(tree.top, "install.sh"), "--prefix", prefix, ...extra], { reject: false });
  expect(result.exitCode, result.stderr).toBe(0);
}

const tclModules = (script: string, env: Record<string, string> = {}) => withModules("tcl", home, script, env);

const SHOW = [
  'echo "PATH=$PATH"',
  'echo "LD=${LD_LIBRARY_PATH-<unset>}"',
  'echo "ROOT=${HELLO_ROOT-<unset>}"',
  'echo "DATA=${HELLO_DATA-<unset>}"',
  'echo "LITERAL=${HELLO_LITERAL-<unset>}"',
  'echo "PKG=${PKG_CONFIG_PATH-<unset>}"',
  'echo "CMAKE=${CMAKE_PREFIX_PATH-<unset>}"',
  'echo "GREET=$(greet | head -n1)"',
].join("\n");

beforeAll(async () => {
  tree = await buildRelocatableTree({
    description: DESCRIPTION,
    envVars: { HELLO_DATA: "${PREFIX}/data/hello_assets", HELLO_LITERAL: LITERAL },
  });
  home = join(tree.root, "home");
  await mkdir(home);
  p1 = join(tree.root, "p1");
  p2 = join(tree.root, "p2");
  site = join(tree.root, "site-modules");
  await install(p1, "--modulepath", site);
  await install(p2);
});

afterAll(async () => {
  await tree?.remove();
});

describe("the Tcl modulefile under real Environment Modules", () => {
  it("is there, and environment-modules is installed", async () => {
    expect(existsSync(ENVIRONMENT_MODULES_ROOT), "environment-modules (scripts/ensure-host-tools.sh)").toBe(true);
    const text = await readFile(join(p1, "modules/hello/1.0"), "utf8");
    expect(text.startsWith("#%Module")).toBe(true);
    expect(text).toContain(`set recorded_prefix "${p1}"`);
  });

  it("finds its prefix from its own location and never touches LD_LIBRARY_PATH", async () => {
    const result = await tclModules(
      `module use ${shellQuote(`${p1}/modules`)}\nmodule load hello/1.0 || exit 9\n${SHOW}`,
    );
    expect(result.exitCode, result.stderr).toBe(0);
    const v = values(result.stdout);
    expect(v.PATH!.startsWith(`${p1}/view/bin:`)).toBe(true);
    expect(v.LD).toBe("<unset>");
    expect(v.ROOT).toBe(`${p1}/view`);
    expect(v.GREET).toBe(tree.binaryPath(p1, "/share/greet"));
    expect(v.DATA).toBe(`${p1}/data/hello_assets`);
    expect(v.LITERAL).toBe(LITERAL);
    expect(v.PKG!.split(":")).toContain(`${p1}/view/lib/pkgconfig`);
    expect(v.CMAKE).toBe(`${p1}/view`);
    expect(existsSync("/tmp/sf-pwned")).toBe(false);
  });

  it("lets <NAME>_INSTALL_PREFIX override its location", async () => {
    const result = await tclModules(`module use ${shellQuote(`${p1}/modules`)}\nmodule load hello || exit 9\n${SHOW}`, {
      HELLO_INSTALL_PREFIX: `${p2}//`,
    });
    expect(result.exitCode, result.stderr).toBe(0);
    const v = values(result.stdout);
    expect(v.ROOT).toBe(`${p2}/view`);
    expect(v.GREET).toBe(tree.binaryPath(p2, "/share/greet"));
  });

  it("uses the recorded prefix when copied to a separate module path", async () => {
    const copy = await readFile(join(site, "hello/1.0"), "utf8");
    expect(copy).toContain(`set recorded_prefix "${p1}"`);
    const result = await tclModules(`module use ${shellQuote(site)}\nmodule load hello || exit 9\n${SHOW}`);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(values(result.stdout).ROOT).toBe(`${p1}/view`);
  });

  it("is listed by avail, whatis and help with its description as written", async () => {
    const result = await tclModules(
      `module use ${shellQuote(`${p1}/modules`)}\nmodule avail hello 2>&1\necho "RC=$?"\nmodule whatis hello 2>&1\nmodule help hello 2>&1`,
    );
    expect(values(result.stdout).RC).toBe("0");
    const all = `${result.stdout}\n${result.stderr}`;
    expect(all).toContain("hello/1.0");
    expect(all).not.toContain("1.0.lua");
    expect(all).toContain('Says "hello" [politely] $HOME {braces} \\ end');
    expect(all).toContain("Target: x86_64_v3");
  });

  it("stays listable without an installation, and a load says what is missing", async () => {
    const orphan = join(tree.root, "orphan-modules");
    await cp(join(tree.top, "modules"), orphan, { recursive: true });
    expect(existsSync(tree.defaultPrefix)).toBe(false);
    const use = `module use ${shellQuote(orphan)}\n`;
    const whatis = await tclModules(`${use}module whatis hello && module help hello`);
    expect(whatis.exitCode, whatis.stderr).toBe(0);
    const load = await tclModules(`${use}module load hello/1.0\necho "RC=$?"\necho "ROOT=\${HELLO_ROOT-<unset>}"`);
    expect(values(load.stdout)).toMatchObject({ RC: "1", ROOT: "<unset>" });
    expect(load.stderr.replace(/\s+/g, " ")).toContain(
      `hello/1.0: no installation at ${tree.defaultPrefix} (set HELLO_INSTALL_PREFIX or reinstall)`,
    );
  });

  it("sits beside the Lua module: Lmod takes the .lua, both set the same variables", async () => {
    const lmod = await withModules(
      "lmod",
      home,
      `module use ${shellQuote(`${p1}/modules`)}\nmodule load hello || exit 9\n${SHOW}`,
    );
    expect(lmod.exitCode, lmod.stderr).toBe(0);
    const tcl = await tclModules(`module use ${shellQuote(`${p1}/modules`)}\nmodule load hello || exit 9\n${SHOW}`);
    expect(values(tcl.stdout)).toEqual(values(lmod.stdout));
  });
});

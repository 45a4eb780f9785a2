import { cp, mkdir, readFile, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { shellQuote } from "../../src/render/install-script.js";
import { buildRelocatableTree, type RelocatableTree } from "./helpers/relocatable-tree.js";

/** Real Lmod on this host (Debian package) against trees installed with the real install.sh. */
const LMOD_INIT = "/usr/share/lmod/lmod/init/bash";
const DESCRIPTION = 'Says "hello" \\ politely\nsecond line';

let tree: RelocatableTree;
let home: string;
let p1: string;
let p2: string;
let site: string;

async function install(prefix: string, ...extra: string[]): Promise<void> {
  const result = await execa("bash", [join(tree.top, "install.sh"), "--prefix", prefix, ...extra], { reject: false });
  expect(result.exitCode, result.stderr).toBe(0);
}

/** Runs a bash script after Lmod's init, in an environment holding only PATH, HOME and `env`. */
function lmod(script: string, env: Record<string, string> = {}) {
  return execa("bash", ["-c", `source ${LMOD_INIT}\n${script}`], {
    env: { PATH: "/usr/bin:/bin", HOME: home, ...env },
    extendEnv: false,
    reject: false,
  });
}

/** Lmod wraps long error lines: compare with whitespace runs folded to one space. */
const folded = (text: string) => text.replace(/\s+/g, " ");

/** KEY=value lines printed by a script. */
function values(stdout: string): Record<string, string> {
  return Object.fromEntries(
    stdout
      .split("\n")
      .filter((l) => /^[A-Z_]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
}

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
    envVars: { HELLO_DATA: "${PREFIX}/data/hello_assets", HELLO_LITERAL: "{prefix} stays $HOME" },
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

describe("the module under real Lmod", () => {
  it("finds its prefix from its own location and never touches LD_LIBRARY_PATH", async () => {
    const unset = await lmod(`module use ${shellQuote(`${p1}/modules`)}\nmodule load hello/1.0 || exit 9\n${SHOW}`);
    expect(unset.exitCode, unset.stderr).toBe(0);
    const v = values(unset.stdout);
    expect(v.PATH!.startsWith(`${p1}/view/bin:`)).toBe(true);
    expect(v.LD).toBe("<unset>");
    expect(v.ROOT).toBe(`${p1}/view`);
    expect(v.GREET).toBe(tree.binaryPath(p1, "/share/greet"));
    expect(v.DATA).toBe(`${p1}/data/hello_assets`);
    expect(v.LITERAL).toBe("{prefix} stays $HOME");
    expect(v.PKG!.split(":")).toContain(`${p1}/view/lib/pkgconfig`);
    expect(v.CMAKE).toBe(`${p1}/view`);

    const preset = await lmod(`module use ${shellQuote(`${p1}/modules`)}\nmodule load hello || exit 9\n${SHOW}`, {
      LD_LIBRARY_PATH: "/site/lib:/other/lib",
    });
    expect(preset.exitCode, preset.stderr).toBe(0);
    expect(values(preset.stdout).LD).toBe("/site/lib:/other/lib");
  });

  it("lets <NAME>_INSTALL_PREFIX override its location", async () => {
    const result = await lmod(`module use ${shellQuote(`${p1}/modules`)}\nmodule load hello || exit 9\n${SHOW}`, {
      HELLO_INSTALL_PREFIX: p2,
    });
    expect(result.exitCode, result.stderr).toBe(0);
    const v = values(result.stdout);
    expect(v.ROOT).toBe(`${p2}/view`);
    expect(v.PATH!.startsWith(`${p2}/view/bin:`)).toBe(true);
    expect(v.GREET).toBe(tree.binaryPath(p2, "/share/greet"));
  });

  it("uses the recorded prefix when copied to a separate module path", async () => {
    const copy = await readFile(join(site, "hello/1.0.lua"), "utf8");
    expect(copy).toContain(`local recorded_prefix = "${p1}"`);
    const result = await lmod(`module use ${shellQuote(site)}\nmodule load hello || exit 9\n${SHOW}`);
    expect(result.exitCode, result.stderr).toBe(0);
    const v = values(result.stdout);
    expect(v.ROOT).toBe(`${p1}/view`);
    expect(v.GREET).toBe(tree.binaryPath(p1, "/share/greet"));
  });

  it("is listed by spider, whatis and help with its escaped description", async () => {
    const result = await lmod(
      `module use ${shellQuote(`${p1}/modules`)}\nmodule spider hello\necho "RC=$?"\nmodule whatis hello 2>&1\nmodule help hello 2>&1`,
    );
    expect(values(result.stdout).RC).toBe("0");
    const all = `${result.stdout}\n${result.stderr}`;
    expect(all).toContain("hello/1.0");
    expect(all).toContain('Says "hello" \\ politely\nsecond line');
    expect(all).toContain("Target: x86_64_v3");
  });

  it("stays listable without an installation, and a load says what is missing", async () => {
    // The module as packed (not installed): its recorded prefix is the stack's default, absent on this host.
    const orphan = join(tree.root, "orphan-modules");
    await cp(join(tree.top, "modules"), orphan, { recursive: true });
    expect(existsSync(tree.defaultPrefix)).toBe(false);
    const use = `module use ${shellQuote(orphan)}\n`;

    const spider = await lmod(`${use}module spider hello`);
    expect(spider.exitCode, spider.stderr).toBe(0);
    expect(`${spider.stdout}${spider.stderr}`).toContain("hello/1.0");
    const whatis = await lmod(`${use}module whatis hello && module help hello`);
    expect(whatis.exitCode, whatis.stderr).toBe(0);

    const load = await lmod(`${use}module load hello/1.0\necho "RC=$?"\necho "ROOT=\${HELLO_ROOT-<unset>}"`);
    expect(values(load.stdout)).toMatchObject({ RC: "1", ROOT: "<unset>" });
    expect(folded(load.stderr)).toContain(
      `hello/1.0: no installation at ${tree.defaultPrefix} (set HELLO_INSTALL_PREFIX or reinstall)`,
    );
  });

  it("fails to load, with the clear error, once the installation's view is removed", async () => {
    const p3 = join(tree.root, "p3");
    await install(p3);
    await rm(join(p3, "view"), { recursive: true });
    const use = `module use ${shellQuote(`${p3}/modules`)}\n`;

    const load = await lmod(`${use}module load hello/1.0\necho "RC=$?"`);
    expect(values(load.stdout).RC).toBe("1");
    expect(folded(load.stderr)).toContain(
      `hello/1.0: no installation at ${p3} (set HELLO_INSTALL_PREFIX or reinstall)`,
    );

    const spider = await lmod(`${use}module spider hello`);
    expect(spider.exitCode, spider.stderr).toBe(0);
    expect(`${spider.stdout}${spider.stderr}`).toContain("hello/1.0");
  });
});

import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadChooserTemplate, renderChooser } from "../../src/render/choose-target.js";
import { choiceTable, chooseTarget } from "../../src/targets/index.js";

/**
 * The target choice as the modules carry it, run by the real interpreters (Lmod's Lua 5.3, Environment Modules'
 * tclsh 8.6) against the recorded /proc/cpuinfo of real CPUs: every answer must be the factory's (choose.ts).
 */
const FIXTURES = "tests/fixtures/cpuinfo";
const VARIABLE = "HELLO_TARGET";
const BUNDLES = [
  ["x86_64_v3", "x86_64_v4", "skylake_avx512", "icelake", "sapphirerapids", "zen2", "zen3", "zen4"],
  ["x86_64_v3", "x86_64_v4", "icelake"],
  ["zen4", "sapphirerapids"],
  ["aarch64", "armv8.2a", "neoverse_n1", "neoverse_v1", "neoverse_v2"],
];

const LUA_DRIVER = `
for i = 1, #arg, 2 do
  local f = assert(io.open(arg[i], "r"))
  local text = f:read("a")
  f:close()
  local target, why = sf_choose(text, arg[i + 1], "${VARIABLE}")
  if target ~= nil then print("ok\\t" .. target .. "\\t" .. why) else print("error\\t" .. why) end
end
`;
const TCL_DRIVER = `
foreach {path override} $argv {
  set f [open $path r]
  set text [read $f]
  close $f
  lassign [sf_choose $text $override ${VARIABLE}] status target why
  if {$status eq "ok"} { puts "ok\\t$target\\t$why" } else { puts "error\\t$why" }
}
`;

let work: string;
let cpus: string[];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "sf-choice-"));
  cpus = (await readdir(FIXTURES)).filter((name) => name !== "README.md").sort();
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

function expected(targets: string[], cpuinfo: string, override: string): string {
  const choice = chooseTarget(choiceTable(targets), cpuinfo, override, VARIABLE);
  return choice.ok ? `ok\t${choice.target}\t${choice.why}` : `error\t${choice.message}`;
}

describe.each(BUNDLES.map((targets) => [targets.join(","), targets] as const))("bundle %s", (_, targets) => {
  const cases = () =>
    cpus.flatMap((cpu) => ["", ...targets, "zen9"].map((override) => ({ path: join(FIXTURES, cpu), override })));

  async function wanted(): Promise<string[]> {
    const out: string[] = [];
    for (const c of cases()) out.push(expected([...targets], await readFile(c.path, "utf8"), c.override));
    return out;
  }

  it("chooses as the factory does, in Lua (lua5.3)", async () => {
    const script = join(work, `choose-${targets.length}-${targets[0]}.lua`);
    await writeFile(script, `${renderChooser(targets, await loadChooserTemplate("lmod"), "lmod")}\n${LUA_DRIVER}`);
    const args = cases().flatMap((c) => [c.path, c.override]);
    const run = await execa("lua5.3", [script, ...args], { reject: false });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout.split("\n")).toEqual(await wanted());
  });

  it("chooses as the factory does, in Tcl (tclsh8.6)", async () => {
    const script = join(work, `choose-${targets.length}-${targets[0]}.tcl`);
    await writeFile(script, `${renderChooser(targets, await loadChooserTemplate("tcl"), "tcl")}\n${TCL_DRIVER}`);
    const args = cases().flatMap((c) => [c.path, c.override]);
    const run = await execa("tclsh8.6", [script, ...args], { reject: false });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout.split("\n")).toEqual(await wanted());
  });
});

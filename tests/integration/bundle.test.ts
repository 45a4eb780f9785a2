import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { shellQuote } from "../../src/render/install-script.js";
import { choiceTable, chooseTarget, readNodeCpu, whyNot } from "../../src/targets/index.js";
import { runCli } from "./helpers/cli.js";
import { values, withModules } from "./helpers/module-systems.js";
import { buildRelocatableTree, type RelocatableTree } from "./helpers/relocatable-tree.js";
import { packTargetTarball } from "./helpers/target-tarball.js";

/**
 * `stack-factory bundle` over three x86_64 target tarballs (trees really compiled and prepared for relocation), one
 * of which this host cannot run (picked from its /proc/cpuinfo): verified, merged with shared files as hard links,
 * verified again as a tarball, installed by the bundle's install.sh, and loaded under Lmod and Environment Modules.
 */
const CANDIDATES = ["x86_64_v4", "zen4", "sapphirerapids", "zen5", "arrowlake_s", "icelake"];

let work: string;
let trees: RelocatableTree[] = [];
let targets: string[];
let unrunnable: string;
let best: string;
let bundle: string;
let cliOutput: string;
let top: string;
let prefix: string;

beforeAll(async () => {
  const cpuinfo = await readFile("/proc/cpuinfo", "utf8");
  const node = readNodeCpu(cpuinfo);
  unrunnable = CANDIDATES.find((t) => whyNot(choiceTable([t])[0]!, node) !== undefined) ?? "";
  if (unrunnable === "") throw new Error("this host runs every candidate target: add a newer one to CANDIDATES");
  targets = ["x86_64_v2", "x86_64_v3", unrunnable];
  const choice = chooseTarget(choiceTable(targets), cpuinfo);
  if (!choice.ok) throw new Error(choice.message);
  best = choice.target;

  work = await mkdtemp(join(tmpdir(), "sf-bundle-"));
  const dist = join(work, "dist");
  await mkdir(dist);
  for (const target of targets) {
    const tree = await buildRelocatableTree({ target, envVars: { HELLO_DATA: "${PREFIX}/data" } });
    trees.push(tree);
    await packTargetTarball(tree, dist);
  }
  const stack = join(work, "hello.yaml");
  await writeFile(
    stack,
    [
      "name: hello",
      'version: "1.0"',
      "specs: [hello@2.12]",
      `targets: [${targets.join(", ")}]`,
      "prefix: /opt/stacks/hello/1.0",
      "modules:",
      "  env:",
      "    HELLO_DATA: ${PREFIX}/data",
      "",
    ].join("\n"),
  );
  const result = await runCli(["bundle", stack, "--dist", dist]);
  expect(result.exitCode, result.all).toBe(0);
  cliOutput = result.all;
  bundle = join(dist, "hello-1.0-x86_64.tar.gz");
  const unpacked = join(work, "unpacked");
  await mkdir(unpacked);
  await execa("tar", ["-xzf", bundle, "-C", unpacked]);
  top = join(unpacked, "hello-1.0-x86_64");
  prefix = join(work, "apps", "hello");
});

afterAll(async () => {
  for (const tree of trees) await tree.remove();
  trees = [];
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

// Steps of one scenario: the bundle the first test makes and unpacks is the one the others check and install.
describe("a multi-target bundle", { shuffle: false }, () => {
  it("is one tarball that verify accepts, with files identical across targets stored once", async () => {
    expect(cliOutput).toMatch(/hard links to files identical in an earlier target/);
    const verify = await runCli(["verify", bundle]);
    expect(verify.exitCode, verify.all).toBe(0);
    const listing = (await execa("tar", ["-tvzf", bundle])).stdout.split("\n");
    const linked = listing.filter((l) => l.includes(" link to "));
    // Data identical in every target is stored once...
    const data =
      "hello-1.0-x86_64/targets/x86_64_v3/view/share/greet/hello.txt link to hello-1.0-x86_64/targets/x86_64_v2/view/share/greet/hello.txt";
    expect(linked.some((l) => l.endsWith(data))).toBe(true);
    // ...and a file relocation rewrites never is.
    const relocated = (await readFile(join(top, "targets/x86_64_v2/.stack-factory/relocate.tsv"), "utf8"))
      .split("\n")
      .filter(Boolean)
      .map((l) => l.split("\t")[1]);
    expect(relocated.length).toBeGreaterThan(0);
    for (const path of relocated) expect(linked.some((l) => l.includes(`/${path} link to`))).toBe(false);
    const sbom = JSON.parse(await readFile(join(top, "sbom.cdx.json"), "utf8"));
    expect(sbom).toMatchObject({ bomFormat: "CycloneDX", specVersion: "1.5" });
    const manifest = JSON.parse(await readFile(join(top, "manifest.json"), "utf8"));
    expect(manifest.bundle.targets.map((t: { target: string }) => t.target)).toEqual(targets);
  });

  it("is the same bytes when made again", async () => {
    const again = join(work, "again");
    await mkdir(again);
    const result = await runCli(["bundle", join(work, "hello.yaml"), "--dist", join(work, "dist"), "--out", again]);
    expect(result.exitCode, result.all).toBe(0);
    const digest = async (path: string) => (await execa("sha256sum", [path])).stdout.slice(0, 64);
    expect(await digest(join(again, "hello-1.0-x86_64.tar.gz"))).toBe(await digest(bundle));
  });

  it("fails verify when a target's manifest is not the one the bundle's manifest names", async () => {
    const copy = join(work, "tampered");
    await mkdir(copy);
    await execa("tar", ["-xzf", bundle, "-C", copy]);
    const root = join(copy, "hello-1.0-x86_64");
    const inner = "targets/x86_64_v2/manifest.json";
    await writeFile(join(root, inner), `${await readFile(join(root, inner), "utf8")} `);
    // The bundle's own lists are made to agree: only the per-target digest can catch it.
    const digest = (await execa("sha256sum", [join(root, inner)])).stdout.slice(0, 64);
    const manifest = JSON.parse(await readFile(join(root, "manifest.json"), "utf8"));
    manifest.files[inner] = digest;
    await writeFile(join(root, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
    const sums = (await readFile(join(root, "SHA256SUMS"), "utf8")).split("\n").filter(Boolean);
    const manifestDigest = (await execa("sha256sum", [join(root, "manifest.json")])).stdout.slice(0, 64);
    const fixed = sums.map((line) => {
      if (line.endsWith(`  ${inner}`)) return `${digest}  ${inner}`;
      if (line.endsWith("  manifest.json")) return `${manifestDigest}  manifest.json`;
      return line;
    });
    await writeFile(join(root, "SHA256SUMS"), `${fixed.join("\n")}\n`);
    const repacked = join(work, "tampered.tar.gz");
    await execa("tar", ["--sort=name", "--owner=0", "--group=0", "-czf", repacked, "-C", copy, "hello-1.0-x86_64"]);
    const verify = await runCli(["verify", repacked]);
    expect(verify.exitCode).toBe(1);
    expect(verify.all).toContain(`${inner}: sha256 ${digest} does not match the bundle's manifest.json`);
  });

  it("says in a dry run which targets this node can run, naming what it lacks", async () => {
    const dry = await execa("bash", [join(top, "install.sh"), "--prefix", prefix, "--dry-run"], { reject: false });
    expect(dry.exitCode, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`target ${best}: this node can run it`);
    const missing = whyNot(choiceTable([unrunnable])[0]!, readNodeCpu(await readFile("/proc/cpuinfo", "utf8")));
    expect(dry.stdout).toContain(`target ${unrunnable}: this node cannot run it (${missing})`);
    await expect(stat(prefix)).rejects.toThrow();
  });

  it("installs every target, and the module loads the best one this host runs, under Lmod and Tcl", async () => {
    const install = await execa("bash", [join(top, "install.sh"), "--prefix", prefix], { reject: false });
    expect(install.exitCode, install.stderr).toBe(0);
    const home = join(work, "home");
    await mkdir(home, { recursive: true });
    const show = 'echo "ROOT=${HELLO_ROOT-<unset>}"\necho "BIN=$(command -v greet)"';
    for (const system of ["lmod", "tcl"] as const) {
      const load = await withModules(
        system,
        home,
        `module use ${shellQuote(`${prefix}/modules`)}\nmodule load hello || exit 9\n${show}`,
      );
      expect(load.exitCode, `${system}: ${load.stderr}`).toBe(0);
      const v = values(load.stdout);
      expect(v.ROOT).toBe(`${prefix}/targets/${best}/view`);
      const bare = await execa("env", ["-i", v.BIN!], { reject: false });
      expect(bare.exitCode, bare.stderr).toBe(0);
      const tree = trees[targets.indexOf(best)]!;
      expect(bare.stdout.split("\n")[0]).toBe(tree.binaryPath(`${prefix}/targets/${best}`, "/share/greet"));
    }
  });

  it("installs only the targets named with --targets, and refuses one it does not hold", async () => {
    const only = join(work, "apps", "only");
    const install = await execa("bash", [join(top, "install.sh"), "--prefix", only, "--targets", "x86_64_v2"], {
      reject: false,
    });
    expect(install.exitCode, install.stderr).toBe(0);
    await expect(stat(join(only, "targets/x86_64_v2/view/bin/greet"))).resolves.toBeDefined();
    await expect(stat(join(only, "targets/x86_64_v3"))).rejects.toThrow();
    const refused = await execa("bash", [join(top, "install.sh"), "--prefix", only, "--targets", "zen9"], {
      reject: false,
    });
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toContain("'zen9' is not a target of this bundle");
  });
});

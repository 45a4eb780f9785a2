import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { shellQuote as q } from "../../src/render/install-script.js";
import { runCli } from "./helpers/cli.js";
import { requireEngine, requireTestImage, TEST_IMAGE } from "./helpers/engine.js";
import { tempDir, writeTestStack } from "./helpers/stack.js";

/**
 * A stack holding glib, which extends python: as with Spack 1.x, the view is a Python virtual environment made with
 * the build image's Python (python-venv: `bin/python3.X -> /usr/bin/python3.X`, a pyvenv.cfg naming Spack's padded
 * install tree), and glib leaves a gdb helper whose file name holds its install prefix. Built with the stand-in,
 * packed, then installed in fresh containers.
 */
const RUN_LABEL = "stack-factory-test.python-view-run";
const runId = randomBytes(6).toString("hex");
const TOP = "pyview-1.0-x86_64_v3";
/** 200 characters: the longest prefix a site must be able to use. */
const LONG = `${`/opt/${"site-shared-apps/".repeat(12)}`.slice(0, 199)}x`;

let work: string;
let tarball: string;
let unpacked: string;
let builderImage: string;

beforeAll(async () => {
  await requireTestImage(await requireEngine());
  await execa("npm", ["run", "build"], { stdio: "ignore" });
  work = await tempDir("python-view");
  const stackFile = await writeTestStack(work, { name: "pyview", specs: ["glib"], extra: "externals: [python]" });
  const run = await runCli(["build", stackFile, "--cache-dir", join(work, "cache"), "--out", join(work, "dist")]);
  expect(run.exitCode, run.all).toBe(0);
  tarball = join(work, "dist", `${TOP}.tar.gz`);
  unpacked = join(work, "unpacked");
  await execa("mkdir", ["-p", unpacked]);
  await execa("tar", ["-xzf", tarball, "-C", unpacked]);
  builderImage = (JSON.parse(await readFile(join(unpacked, TOP, "manifest.json"), "utf8")) as { image_id: string })
    .image_id;
  expect(LONG.length).toBe(200);
});

afterAll(async () => {
  const { stdout } = await execa("docker", ["ps", "-aq", "--filter", `label=${RUN_LABEL}=${runId}`], { reject: false });
  const ids = String(stdout).split("\n").filter(Boolean);
  if (ids.length > 0) await execa("docker", ["rm", "-f", ...ids], { reject: false });
});

/** Runs a bash script as root in a fresh container without network, the unpacked tarball at /pkg (read-only). */
async function inContainer(image: string, script: string) {
  const result = await execa(
    "docker",
    [
      "run",
      "--rm",
      "--network=none",
      "--user=0:0",
      "--label=stack-factory=1",
      `--label=${RUN_LABEL}=${runId}`,
      "-v",
      `${join(unpacked, TOP)}:/pkg:ro`,
      image,
      "bash",
      "-c",
      script,
    ],
    { reject: false },
  );
  const stdout = String(result.stdout);
  const values = Object.fromEntries(
    stdout
      .split("\n")
      .filter((l) => /^[A-Z_0-9]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
  return { exitCode: result.exitCode ?? -1, stdout, stderr: String(result.stderr), values };
}

describe("a view holding a Python virtual environment", () => {
  it("packs: the interpreter's absolute symlink is a record for install.sh, not an entry, and verify passes", async () => {
    const verify = await runCli(["verify", tarball]);
    expect(verify.exitCode, verify.all).toBe(0);
    const listing = String((await execa("tar", ["-tvzf", tarball])).stdout).split("\n");
    expect(listing.filter((l) => / -> \//.test(l))).toEqual([]);
    expect(listing.some((l) => l.endsWith(`${TOP}/view/bin/python3 -> python3.11`))).toBe(true);
    const links = await readFile(join(unpacked, TOP, ".stack-factory/system-links.tsv"), "utf8");
    expect(links).toMatch(/^view\/bin\/python3\.\d+\t\/usr\/bin\/python3\.\d+\n$/);
    const requirements = await readFile(join(unpacked, TOP, ".stack-factory/node-requirements.tsv"), "utf8");
    expect(requirements).toContain(`system-file\t${links.split("\t")[1]}`);
    // pyvenv.cfg keeps what Python reads, not the line naming Spack's padded install tree.
    const cfg = await readFile(join(unpacked, TOP, "view/pyvenv.cfg"), "utf8");
    expect(cfg).toMatch(/^home = \/usr\/bin$/m);
    expect(cfg).not.toMatch(/command|__spack_path_placeholder__|\/sf\/install/);
  });

  it("ships nothing of the build machine in names or text: the gdb helper named after its install prefix is dropped, stale tails cleared", async () => {
    const names = String((await execa("tar", ["-tzf", tarball])).stdout);
    expect(names).not.toMatch(/__spack_path_placeholder__|\/sf\/install|auto-load/);
    expect(names).toContain(`${TOP}/view/lib/python3.11/site-packages/glib_codegen.py`);
    for (const file of ["manifest.json", "SHA256SUMS", ".stack-factory/relocate.tsv"]) {
      const text = await readFile(join(unpacked, TOP, file), "utf8");
      expect(text, file).not.toMatch(/__spack_path_placeholder__|\/sf\/install|auto-load/);
    }
    // No file of the tarball holds a piece of Spack's install layout: not even the tail of a shortened RPATH.
    const grep = await execa("grep", ["-rlaE", "linux-x86_64_v3/|__spack_path_placeholder__|/sf/install", unpacked], {
      reject: false,
    });
    expect(grep.stdout).toBe("");
  });

  it("runs its Python program at another prefix, with the venv's site-packages, in a fresh container", async () => {
    const script = (prefix: string, key: string) => `
bash /pkg/install.sh --prefix ${q(prefix)} >/dev/null; echo "${key}_RC=$?"
echo "${key}_MKENUMS=$(env -i ${q(prefix)}/view/bin/glib-mkenums 2>&1)"
echo "${key}_PREFIX=$(env -i ${q(prefix)}/view/bin/python3 -c 'import sys; print(sys.prefix)' 2>&1)"
echo "${key}_LINK=$(readlink ${q(prefix)}/view/bin/python3.11)"
echo "${key}_GLIB=$(env -i ${q(prefix)}/view/bin/glib 2>&1)"
`;
    const run = await inContainer(builderImage, `${script("/opt/py", "SHORT")}${script(LONG, "LONG")}`);
    for (const [key, prefix] of [
      ["SHORT", "/opt/py"],
      ["LONG", LONG],
    ] as const) {
      expect(run.values[`${key}_RC`], run.stderr).toBe("0");
      expect(run.values[`${key}_MKENUMS`]).toBe(
        `glib@2.78.3 prefix=${prefix}/view module=${prefix}/view/lib/python3.11/site-packages/glib_codegen.py`,
      );
      expect(run.values[`${key}_PREFIX`]).toBe(`${prefix}/view`);
      expect(run.values[`${key}_LINK`]).toBe("/usr/bin/python3.11");
      expect(run.values[`${key}_GLIB`]).toMatch(/^glib@2\.78\.3 <zlib@/);
    }
  });

  it("is refused, before anything is copied, by a node without that Python", async () => {
    const run = await inContainer(
      TEST_IMAGE,
      `test ! -e /usr/bin/python3.11 && echo "NO_PYTHON=1"
bash /pkg/install.sh --prefix /opt/py; echo "RC=$?"
echo "OPT=$(ls -A /opt)"`,
    );
    expect(run.values.NO_PYTHON).toBe("1");
    expect(run.values.RC).toBe("1");
    expect(run.stderr).toContain("/usr/bin/python3.11 is needed");
    expect(run.values.OPT).toBe("");
  });
});

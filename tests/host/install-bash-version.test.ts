/**
 * install.sh needs bash 4.4 (mapfile -d, negative subscripts, empty arrays under set -u); RHEL 7 and its rebuilds ship
 * 4.2. Its first command after the shebang line refuses an older bash with the reason, before bash has read any
 * later command. No older bash can be installed here, so this bash is made to report an older version for real:
 * a loadable builtin (tests/fixtures/bash-version/readwrite.c) drops BASH_VERSINFO's readonly attribute in BASH_ENV,
 * which bash runs before the script, and BASH_VERSINFO and BASH_VERSION are set to what that bash would report.
 */
import { chmod, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { loadInstallTemplate, renderInstallScript } from "../../src/render/install-script.js";

let work: string;
let script: string;
let builtin: string;
/** The bash that runs the scripts ($BASH, as the message names it). */
let bashPath: string;

/** A BASH_ENV file that makes bash report `version` (e.g. "4.2.46(2)-release"). */
async function reporting(version: string): Promise<string> {
  const m = /^(\d+)\.(\d+)\.(\d+)\((\d+)\)-(\w+)$/.exec(version);
  if (m === null) throw new Error(`not a bash version: ${version}`);
  const file = join(work, `bash-${version.replace(/[^\w.]/g, "_")}.env`);
  await writeFile(
    file,
    [
      `enable -f ${builtin} readwrite`,
      "readwrite BASH_VERSINFO BASH_VERSION",
      `BASH_VERSINFO=(${m.slice(1, 6).join(" ")} x86_64-redhat-linux-gnu)`,
      `BASH_VERSION='${version}'`,
      "",
    ].join("\n"),
  );
  return file;
}

function run(file: string, env: string | undefined, ...args: string[]) {
  return execa("bash", [file, ...args], {
    reject: false,
    all: true,
    cwd: work,
    env: { BASH_ENV: env ?? "" },
  });
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "sf-bash-version-"));
  builtin = join(work, "readwrite.so");
  const headers = "/usr/include/bash";
  await execa("gcc", [
    "-shared",
    "-fPIC",
    `-I${headers}`,
    `-I${headers}/include`,
    `-I${headers}/builtins`,
    "-o",
    builtin,
    resolve("tests/fixtures/bash-version/readwrite.c"),
  ]);
  bashPath = (await execa("bash", ["-c", 'printf %s "$BASH"'])).stdout;
  script = join(work, "install.sh");
  const text = renderInstallScript(
    { stackName: "demo", version: "1.0", target: "x86_64_v3", defaultPrefix: "/apps/demo", moduleName: "demo" },
    await loadInstallTemplate(),
  );
  await writeFile(script, text);
  await chmod(script, 0o755);
}, 60_000);

describe("install.sh on an older bash", () => {
  it("the made-up version is what the shell reports (the test's premise)", async () => {
    const probe = join(work, "probe.sh");
    await writeFile(probe, 'echo "$BASH_VERSION ${BASH_VERSINFO[0]}.${BASH_VERSINFO[1]}"\n');
    const out = await run(probe, await reporting("4.2.46(2)-release"));
    expect(out.stdout).toBe("4.2.46(2)-release 4.2");
  });

  it("refuses bash 4.2 and 4.3 (and 3.2) with the reason, before doing anything else", async () => {
    for (const version of ["4.2.46(2)-release", "4.3.48(1)-release", "3.2.57(1)-release"]) {
      const out = await run(script, await reporting(version), "--help");
      expect(out.exitCode, out.all).toBe(1);
      expect(out.stderr).toBe(
        `install.sh: error: needs bash 4.4 or newer, and ${bashPath} is bash ${version}; run it with a newer bash (e.g. /path/to/bash ${script})`,
      );
      // --help was never read: the usage text is not printed.
      expect(out.stdout).toBe("");
    }
  });

  it("runs on bash 4.4 and later", async () => {
    for (const version of ["4.4.20(1)-release", "5.0.17(1)-release"]) {
      const out = await run(script, await reporting(version), "--help");
      expect(out.exitCode, out.all).toBe(0);
      expect(out.stdout).toContain("Install the demo 1.0 software stack");
    }
    const plain = await run(script, undefined, "--help");
    expect(plain.exitCode, plain.all).toBe(0);
  });

  it("refuses before bash parses anything after the check", async () => {
    // Everything after the check replaced by a line no bash can parse.
    const text = renderInstallScript(
      { stackName: "demo", version: "1.0", target: "x86_64_v3", defaultPrefix: "/apps/demo", moduleName: "demo" },
      await loadInstallTemplate(),
    );
    const end = text.indexOf("\nfi\n", text.indexOf("BASH_VERSINFO")) + 4;
    expect(end).toBeGreaterThan(4);
    const unparsable = join(work, "unparsable.sh");
    await writeFile(unparsable, `${text.slice(0, end)}if then fi ( ( (\n${text.slice(end)}`);
    const old = await run(unparsable, await reporting("4.2.46(2)-release"));
    expect(old.exitCode).toBe(1);
    expect(old.stderr).toMatch(/^install\.sh: error: needs bash 4\.4 or newer, and \S+ is bash 4\.2\.46\(2\)-release;/);
    expect(old.stderr).not.toMatch(/syntax error/);
    // The same file on this bash passes the check and reaches that line: it is parsed only when reached.
    const current = await run(unparsable, undefined);
    expect(current.exitCode).toBe(2);
    expect(current.stderr).toMatch(/syntax error/);
  });
});

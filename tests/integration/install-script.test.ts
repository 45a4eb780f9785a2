import { cp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { shellQuote } from "../../src/render/install-script.js";
import { TEST_IMAGE } from "./helpers/engine.js";
import { buildRelocatableTree, type RelocatableTree } from "./helpers/relocatable-tree.js";

/**
 * install.sh on a minimal node: the Debian minbase test image, with perl, python and awk removed first,
 * the tree mounted read-only at /pkg. Every container is labelled with this run's id and removed at the end.
 */
const RUN_LABEL = "stack-factory-test.install-run";
const runId = randomBytes(6).toString("hex");

let tree: RelocatableTree;

const MINIMAL_NODE = `
rm -f /usr/bin/perl* /usr/bin/python* /usr/bin/awk /usr/bin/mawk /usr/bin/nawk /etc/alternatives/awk /etc/alternatives/nawk
if command -v perl || command -v python3 || command -v python || command -v awk; then echo "TOOLS=present"; exit 97; fi
echo "TOOLS=hidden"
greet_of() { env -i "$1/view/bin/greet" | tr '\\n' '|'; }
`;

interface Run {
  exitCode: number;
  stdout: string;
  stderr: string;
  values: Record<string, string>;
}

/** Runs `script` (bash) in a fresh container with the tree `top` at /pkg (read-only). */
async function inContainer(script: string, top = tree.top): Promise<Run> {
  const result = await execa(
    "docker",
    [
      "run",
      "--rm",
      "--network=none",
      "--label=stack-factory=1",
      `--label=${RUN_LABEL}=${runId}`,
      "-v",
      `${top}:/pkg:ro`,
      TEST_IMAGE,
      "bash",
      "-c",
      `${MINIMAL_NODE}\n${script}`,
    ],
    { reject: false },
  );
  const stdout = String(result.stdout);
  const values = Object.fromEntries(
    stdout
      .split("\n")
      .filter((l) => /^[A-Z_]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
  if (values.TOOLS !== "hidden")
    throw new Error(`the container still has perl, python or awk:\n${stdout}\n${String(result.stderr)}`);
  return { exitCode: result.exitCode ?? -1, stdout, stderr: String(result.stderr), values };
}

const greetLine = (prefix: string) => tree.greetOutput(prefix).replace(/\n/g, "|");
const q = shellQuote;

/** Shell lines that report, for an installed prefix, what a user would check. */
function inspect(prefix: string): string {
  return `
echo "GREET=$(greet_of ${q(prefix)})"
echo "CONFIG=$(${q(prefix)}/view/bin/greet-config)"
echo "PC=$(grep '^prefix=' ${q(prefix)}/view/lib/pkgconfig/greet.pc)"
echo "LEFT=$(grep -rlF ${q(tree.buildPrefix)} ${q(prefix)} --exclude=build-prefix --exclude=paths.txt | tr '\\n' ' ')"
echo "LDD=$(env -i ldd ${q(prefix)}/view/bin/greet | tr '\\n\\t' '| ')"
echo "RECORDED=$(cat ${q(prefix)}/.stack-factory/installed-prefix)"
echo "MODULE=$(grep '^local recorded_prefix' ${q(prefix)}/modules/hello/1.0.lua)"
echo "SUMS=$(cd ${q(prefix)} && sha256sum -c --quiet --strict SHA256SUMS && echo ok)"
`;
}

function expectInstalled(run: Run, prefix: string): void {
  const v = run.values;
  expect(v.GREET).toBe(greetLine(prefix));
  expect(v.CONFIG).toBe(`${prefix}/view`);
  expect(v.PC).toBe(`prefix=${prefix}/view`);
  expect(v.LEFT).toBe("");
  expect(v.LDD).not.toContain("not found");
  expect(v.LDD).toContain(`libgreet.so => ${prefix}/view/bin/../lib/libgreet.so`);
  expect(v.RECORDED).toBe(prefix);
  expect(v.MODULE).toBe(`local recorded_prefix = "${prefix}"`);
  expect(v.SUMS).toBe("ok");
}

beforeAll(async () => {
  tree = await buildRelocatableTree();
});

afterAll(async () => {
  const { stdout } = await execa("docker", ["ps", "-aq", "--filter", `label=${RUN_LABEL}=${runId}`], { reject: false });
  const ids = String(stdout).split("\n").filter(Boolean);
  if (ids.length > 0) await execa("docker", ["rm", "-f", ...ids], { reject: false });
  await tree?.remove();
});

describe("install.sh on a minimal node", () => {
  it("installs at a short prefix and relocates text and binaries", async () => {
    const run = await inContainer(`bash /pkg/install.sh --prefix /opt/hello; echo "RC=$?"\n${inspect("/opt/hello")}`);
    expect(run.values.RC, run.stderr).toBe("0");
    expectInstalled(run, "/opt/hello");
    expect(run.stdout).toContain("module use /opt/hello/modules");
    expect(run.stdout).toContain("module load hello/1.0");
  });

  it("installs at a 128-character prefix, and at the longest prefix the tarball allows", async () => {
    const long = `/opt/${"long-prefix-".repeat(20)}`.slice(0, 128);
    expect(long.length).toBe(128);
    const longest = `/srv/${"x".repeat(tree.buildPrefix.length - 5 - 5)}`;
    expect(longest.length + 5).toBe(tree.buildPrefix.length);
    const run = await inContainer(`
bash /pkg/install.sh --prefix ${q(long)}; echo "RC=$?"
${inspect(long)}
bash /pkg/install.sh --prefix ${q(longest)} >/dev/null; echo "RC_LONGEST=$?"
echo "GREET_LONGEST=$(greet_of ${q(longest)})"
`);
    expect(run.values.RC, run.stderr).toBe("0");
    expectInstalled(run, long);
    expect(run.values.RC_LONGEST, run.stderr).toBe("0");
    expect(run.values.GREET_LONGEST).toBe(greetLine(longest));
  });

  it("refuses a prefix with a character that changes meaning in shell, sed, pkg-config, CMake or Lua, naming it", async () => {
    const run = await inContainer(`
bash /pkg/install.sh --prefix '/opt/a$(touch /tmp/pwned)b'; echo "RC_DOLLAR=$?"
bash /pkg/install.sh --prefix '/opt/a\`touch /tmp/pwned\`b'; echo "RC_BACKTICK=$?"
bash /pkg/install.sh --prefix '/opt/a b'; echo "RC_SPACE=$?"
bash /pkg/install.sh --prefix '/opt/a;b'; echo "RC_SEMICOLON=$?"
bash /pkg/install.sh --prefix '/opt/a:b'; echo "RC_COLON=$?"
bash /pkg/install.sh --prefix '/opt/a@b@'; echo "RC_AT=$?"
bash /pkg/install.sh --prefix '/opt/a"b'; echo "RC_QUOTE=$?"
bash /pkg/install.sh --prefix '/opt/a*b'; echo "RC_STAR=$?"
bash /pkg/install.sh --prefix $'/opt/a\tb'; echo "RC_TAB=$?"
bash /pkg/install.sh --prefix '/opt/a$(touch /tmp/pwned)b' --uninstall; echo "RC_UNINSTALL=$?"
bash /pkg/install.sh --prefix /opt/ok-1.2_x+y,z=w --dry-run >/dev/null; echo "RC_ALLOWED=$?"
echo "PWNED=$(ls /tmp/pwned 2>/dev/null || echo no)"
echo "OPT=$(ls -A /opt)"
`);
    for (const key of [
      "DOLLAR",
      "BACKTICK",
      "SPACE",
      "SEMICOLON",
      "COLON",
      "AT",
      "QUOTE",
      "STAR",
      "TAB",
      "UNINSTALL",
    ]) {
      expect(run.values[`RC_${key}`], key).toBe("1");
    }
    expect(run.stderr).toContain("prefix must not contain '$' (expansion in shell, CMake and pkg-config)");
    expect(run.stderr).toContain("prefix must not contain '`' (command substitution in shell)");
    expect(run.stderr).toContain("prefix must not contain a space");
    expect(run.stderr).toContain("prefix must not contain ';'");
    expect(run.stderr).toContain("prefix must not contain ':' (the separator of PATH-like lists)");
    expect(run.stderr).toContain("prefix must not contain '@' (CMake's @VAR@ substitution)");
    expect(run.stderr).toContain("prefix must not contain a quote");
    expect(run.stderr).toContain("prefix must not contain '*'");
    expect(run.stderr).toContain("prefix must not contain the byte 0x09");
    expect(run.values.RC_ALLOWED, run.stderr).toBe("0");
    expect(run.values.PWNED).toBe("no");
    expect(run.values.OPT).toBe("");
  });

  it("installs only what SHA256SUMS lists: files and links added after unpacking are left out", async () => {
    const copy = join(tree.root, "tampered");
    await cp(tree.top, copy, { recursive: true, verbatimSymlinks: true });
    await writeFile(join(copy, "view/bin/added"), "#!/bin/sh\necho added\n", { mode: 0o755 });
    await writeFile(join(copy, ".stack-factory/extra"), "x\n");
    await symlink("/etc/passwd", join(copy, "view/share/passwd"));
    await symlink("../../..", join(copy, "view/share/up"));
    await symlink("hello.txt", join(copy, "view/share/greet/inside"));
    // A listed name that sha256sum escapes (a backslash): installed like any other.
    await writeFile(join(copy, "view/share/greet/back\\slash.txt"), "listed\n");
    await execa("bash", ["-c", "sha256sum ./view/share/greet/back*slash.txt >>SHA256SUMS"], { cwd: copy });
    const run = await inContainer(
      `
bash /pkg/install.sh --prefix /opt/hello; echo "RC=$?"
echo "ADDED=$(ls /opt/hello/view/bin/added /opt/hello/.stack-factory/extra /opt/hello/view/share/passwd /opt/hello/view/share/up 2>/dev/null | tr '\\n' ' ')"
echo "INSIDE=$(readlink /opt/hello/view/share/greet/inside)"
echo "ESCAPED=$(cat /opt/hello/view/share/greet/back*slash.txt)"
echo "LISTED=$(grep -c -e added -e /extra -e passwd /opt/hello/SHA256SUMS)"
echo "SUMS=$(cd /opt/hello && sha256sum -c --quiet --strict SHA256SUMS && echo ok)"
`,
      copy,
    );
    expect(run.values.RC, run.stderr).toBe("0");
    expect(run.values.ADDED).toBe("");
    expect(run.values.INSIDE).toBe("hello.txt");
    expect(run.values.ESCAPED).toBe("listed");
    expect(run.values.LISTED).toBe("0");
    expect(run.values.SUMS).toBe("ok");
    expect(run.stderr).toContain("not installed: view/bin/added");
    expect(run.stderr).toContain("not installed: view/share/passwd");
  });

  it("refuses a listed file that was replaced by a symlink after unpacking", async () => {
    const copy = join(tree.root, "swapped");
    await cp(tree.top, copy, { recursive: true, verbatimSymlinks: true });
    await rm(join(copy, "view/share/greet/hello.txt"));
    await symlink("/etc/hostname", join(copy, "view/share/greet/hello.txt"));
    const run = await inContainer(
      `bash /pkg/install.sh --prefix /opt/hello; echo "RC=$?"; echo "OPT=$(ls -A /opt)"`,
      copy,
    );
    expect(run.values.RC).toBe("1");
    expect(run.stderr).toContain("view/share/greet/hello.txt is listed in SHA256SUMS but is a symlink");
    expect(run.values.OPT).toBe("");
  });

  it("serialises two installs on one prefix (20 races): both succeed, nothing of one is left inside the other", async () => {
    const run = await inContainer(`
bad=0
waits=0
for i in $(seq 1 20); do
  bash /pkg/install.sh --prefix /opt/hello >/tmp/a.log 2>&1 & a=$!
  bash /pkg/install.sh --prefix /opt/hello >/tmp/b.log 2>&1 & b=$!
  wait $a; ra=$?; wait $b; rb=$?
  waits=$((waits + $(cat /tmp/a.log /tmp/b.log | grep -c 'waiting for another install')))
  if [ "$ra" != 0 ] || [ "$rb" != 0 ]; then bad=$((bad + 1)); echo "round $i: $ra $rb"; cat /tmp/a.log /tmp/b.log; fi
  left=$(find /opt -name '.hello.*' | tr '\\n' ' ')
  if [ -n "$left" ] || [ "$(ls -A /opt)" != hello ]; then bad=$((bad + 1)); echo "round $i left: $left $(ls -A /opt)"; fi
  if ! (cd /opt/hello && sha256sum -c --quiet --strict SHA256SUMS); then bad=$((bad + 1)); echo "round $i: sums"; fi
done
echo "BAD=$bad"
echo "WAITS=$waits"
${inspect("/opt/hello")}
`);
    expect(run.values.BAD, run.stdout).toBe("0");
    // The runs did overlap: the later one waited for the lock.
    expect(Number(run.values.WAITS)).toBeGreaterThan(0);
    expectInstalled(run, "/opt/hello");
  });

  it("cleans up what killed runs left beside the prefix, and takes over a dead run's lock", async () => {
    const run = await inContainer(`
bash /pkg/install.sh --prefix /opt/hello >/dev/null; echo "RC_FIRST=$?"
# A run killed with -9 in the middle of its copy.
bash /pkg/install.sh --prefix /opt/hello >/dev/null 2>&1 & pid=$!
for _ in $(seq 1 200); do [ -d /opt/.hello.installing.$pid ] && break; sleep 0.01; done
kill -9 $pid; wait $pid 2>/dev/null
echo "KILLED_LEFT=$(ls -A /opt | grep -c -e installing -e lock)"
# And the leftovers of an older killed run, with a lock owned by a process that is gone.
mkdir -p /opt/.hello.installing.99999/view /opt/.hello.scratch.99999 /opt/.hello.lock.new.99999
mkdir -p /opt/.hello.lock.stale && echo "99999 $(uname -n) 1" >/opt/.hello.lock.stale/owner
rm -rf /opt/.hello.lock && mv /opt/.hello.lock.stale /opt/.hello.lock
bash /pkg/install.sh --prefix /opt/hello; echo "RC=$?"
echo "LEFT=$(ls -A /opt | tr '\\n' ' ')"
# Killed between moving the previous installation aside and moving the new one in: the next run puts it back.
mv /opt/hello /opt/.hello.old.4242
bash /pkg/install.sh --prefix /opt/other >/dev/null; echo "RC_OTHER=$?"
echo "AFTER_OTHER=$(ls -A /opt | tr '\\n' ' ')"
bash /pkg/install.sh --prefix /opt/hello --dry-run >/dev/null; echo "RC_DRY=$?"
bash /pkg/install.sh --prefix /opt/hello; echo "RC_BACK=$?"
echo "END=$(ls -A /opt | tr '\\n' ' ')"
echo "GREET=$(greet_of /opt/hello)"
`);
    expect(run.values.RC_FIRST, run.stderr).toBe("0");
    expect(run.values.KILLED_LEFT).not.toBe("0");
    expect(run.values.RC, run.stderr).toBe("0");
    expect(run.stdout).toContain("removed /opt/.hello.installing.99999, left by an install that did not finish");
    expect(run.stdout).toContain("removed /opt/.hello.scratch.99999");
    expect(run.values.LEFT).toMatch(/^(\.hello\.lock\.dead\.99999_\S+ )?hello $/);
    expect(run.values.RC_OTHER, run.stderr).toBe("0");
    expect(run.values.AFTER_OTHER).toContain(".hello.old.4242");
    expect(run.values.RC_BACK, run.stderr).toBe("0");
    expect(run.stdout).toContain("put back /opt/hello from /opt/.hello.old.4242");
    expect(run.stdout).toContain("reinstall over the same stack");
    expect(run.values.END).toMatch(/^(\.hello\.lock\.dead\.99999_\S+ )?hello other $/);
    expect(run.values.GREET).toBe(greetLine("/opt/hello"));
  });

  it("refuses a prefix longer than the build prefix allows, before changing anything", async () => {
    const tooLong = `/srv/${"y".repeat(tree.buildPrefix.length - 5 - 4)}`;
    const run = await inContainer(`
bash /pkg/install.sh --prefix ${q(tooLong)}; echo "RC=$?"
bash /pkg/install.sh --prefix relative/dir; echo "RC_RELATIVE=$?"
bash /pkg/install.sh --prefix /srv/x --bogus; echo "RC_BOGUS=$?"
echo "SRV=$(ls -A /srv)"
`);
    expect(run.values.RC).toBe("1");
    expect(run.values.RC_RELATIVE).toBe("1");
    expect(run.stderr).toContain("prefix must be an absolute path, got 'relative/dir'");
    expect(run.values.RC_BOGUS).toBe("2");
    expect(run.stderr).toContain("unknown option '--bogus'");
    expect(run.stderr).toContain(
      `prefix is ${tooLong.length} characters; this tarball allows at most ${tree.buildPrefix.length - 5}`,
    );
    expect(run.values.SRV).toBe("");
  });

  it("changes nothing with --dry-run", async () => {
    const run = await inContainer(`
bash /pkg/install.sh --prefix /opt/hello --dry-run; echo "RC=$?"
echo "OPT=$(ls -A /opt)"
bash /pkg/install.sh --prefix /opt/hello >/dev/null
before=$(find /opt -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum)
bash /pkg/install.sh --prefix /opt/hello --force --modulepath /srv/modules --dry-run >/dev/null; echo "RC_AGAIN=$?"
bash /opt/hello/install.sh --uninstall --dry-run >/dev/null; echo "RC_UNINSTALL=$?"
after=$(find /opt -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum)
echo "SAME=$([ "$before" = "$after" ] && echo yes || echo no)"
echo "OPT_AFTER=$(ls -A /opt)"
echo "MODULES=$(ls -A /srv)"
`);
    expect(run.values.RC, run.stderr).toBe("0");
    expect(run.stdout).toContain("would create /opt/hello");
    expect(run.values.OPT).toBe("");
    expect(run.values.RC_AGAIN).toBe("0");
    expect(run.values.RC_UNINSTALL).toBe("0");
    expect(run.values.SAME).toBe("yes");
    expect(run.values.OPT_AFTER).toBe("hello");
    expect(run.values.MODULES).toBe("");
  });

  it("refuses a corrupted file before the prefix exists", async () => {
    const copy = join(tree.root, "corrupted");
    await cp(tree.top, copy, { recursive: true });
    const library = join(copy, "view/lib/libgreet.so");
    const bytes = await readFile(library);
    const middle = bytes.length >> 1;
    bytes[middle] = bytes[middle]! ^ 0xff;
    await writeFile(library, bytes);
    const run = await inContainer(
      `bash /pkg/install.sh --prefix /opt/hello; echo "RC=$?"; echo "OPT=$(ls -A /opt)"`,
      copy,
    );
    expect(run.values.RC).toBe("1");
    expect(run.stderr).toContain("view/lib/libgreet.so: FAILED");
    expect(run.stderr).toContain("checksum verification failed");
    expect(run.values.OPT).toBe("");
  });

  it("fails the self-test on an unresolved library and leaves no trace", async () => {
    // A consistent tree (sums match) whose executable needs a library the tree no longer has.
    const copy = join(tree.root, "missing-library");
    await cp(tree.top, copy, { recursive: true });
    await rm(join(copy, "view/lib/libgreet.so"));
    const drop = async (file: string) => {
      const lines = (await readFile(join(copy, file), "utf8")).split("\n");
      await writeFile(join(copy, file), lines.filter((l) => !l.includes("libgreet.so")).join("\n"));
    };
    await drop(".stack-factory/relocate.tsv");
    const resum =
      "find . -type f ! -path ./SHA256SUMS ! -path ./SHA256SUMS.new -print0 | sort -z | xargs -0 sha256sum >SHA256SUMS.new";
    await execa("bash", ["-c", `${resum} && mv SHA256SUMS.new SHA256SUMS`], { cwd: copy });
    const run = await inContainer(
      `bash /pkg/install.sh --prefix /opt/hello; echo "RC=$?"; echo "OPT=$(ls -A /opt)"`,
      copy,
    );
    expect(run.values.RC).toBe("1");
    expect(run.stderr).toMatch(/view\/bin\/greet: .*libgreet\.so => not found/);
    expect(run.stderr).toContain("self-test failed");
    expect(run.values.OPT).toBe("");
  });

  it("relocates an installed tree moved with mv, in place, and again to a new prefix", async () => {
    const run = await inContainer(`
bash /pkg/install.sh --prefix /opt/first >/dev/null; echo "RC_FIRST=$?"
mkdir -p /srv && mv /opt/first /srv/moved
cd /srv/moved && ./install.sh --prefix "$PWD"; echo "RC=$?"
cd /
${inspect("/srv/moved")}
echo "OLD_PATHS=$(grep -rlF /opt/first /srv/moved | tr '\\n' ' ')"
echo "SRV=$(ls -A /srv)"
/srv/moved/install.sh --prefix /opt/again >/dev/null; echo "RC_AGAIN=$?"
echo "GREET_AGAIN=$(greet_of /opt/again)"
echo "GREET_MOVED=$(greet_of /srv/moved)"
echo "OPT=$(ls -A /opt)"
`);
    expect(run.values.RC_FIRST, run.stderr).toBe("0");
    expect(run.values.RC, run.stderr).toBe("0");
    expectInstalled(run, "/srv/moved");
    expect(run.values.OLD_PATHS).toBe("");
    expect(run.values.SRV).toBe("moved");
    expect(run.values.RC_AGAIN, run.stderr).toBe("0");
    expect(run.values.GREET_AGAIN).toBe(greetLine("/opt/again"));
    expect(run.values.GREET_MOVED).toBe(greetLine("/srv/moved"));
    expect(run.values.OPT).toBe("again");
  });

  it("reinstalls the same stack idempotently and refuses a foreign directory without --force", async () => {
    const run = await inContainer(`
bash /pkg/install.sh --prefix /opt/hello >/dev/null; echo "RC_FIRST=$?"
bash /pkg/install.sh --prefix /opt/hello; echo "RC=$?"
${inspect("/opt/hello")}
echo "OPT=$(ls -A /opt)"
mkdir /opt/other && echo keep >/opt/other/file
bash /pkg/install.sh --prefix /opt/other; echo "RC_FOREIGN=$?"
echo "KEPT=$(cat /opt/other/file)"
bash /pkg/install.sh --prefix /opt/other --force >/dev/null; echo "RC_FORCE=$?"
echo "FORCED=$(ls /opt/other/file 2>/dev/null || echo gone) $(greet_of /opt/other)"
echo "OPT_END=$(ls -A /opt | tr '\\n' ' ')"
`);
    expect(run.values.RC_FIRST, run.stderr).toBe("0");
    expect(run.values.RC, run.stderr).toBe("0");
    expect(run.stdout).toContain("reinstall over the same stack");
    expectInstalled(run, "/opt/hello");
    expect(run.values.OPT).toBe("hello");
    expect(run.values.RC_FOREIGN).toBe("1");
    expect(run.stderr).toContain("/opt/other exists and is not empty");
    expect(run.stderr).toContain("--force");
    expect(run.values.KEPT).toBe("keep");
    expect(run.values.RC_FORCE).toBe("0");
    expect(run.values.FORCED).toBe(`gone ${greetLine("/opt/other")}`);
    expect(run.values.OPT_END).toBe("hello other ");
  });

  it("puts the previous installation back when stopped between its two moves", async () => {
    // An `mv` ahead of coreutils' in PATH: when the new tree is about to be moved into place, it interrupts the
    // script (SIGINT to its parent) and fails, as if Ctrl-C came after the previous content was moved aside.
    const run = await inContainer(`
bash /pkg/install.sh --prefix /opt/hello >/dev/null; echo "RC_FIRST=$?"
echo reinstalled-over >/opt/hello/.stack-factory/witness
cat >/usr/local/bin/mv <<'SHIM'
#!/bin/bash
if [[ $2 =~ /\\.hello\\.installing\\.[0-9]+$ ]]; then kill -INT "$PPID"; exit 1; fi
exec /bin/mv "$@"
SHIM
chmod +x /usr/local/bin/mv
bash /pkg/install.sh --prefix /opt/hello; echo "RC=$?"
rm /usr/local/bin/mv
echo "OPT=$(ls -A /opt | tr '\\n' ' ')"
echo "WITNESS=$(cat /opt/hello/.stack-factory/witness)"
echo "GREET=$(greet_of /opt/hello)"
`);
    expect(run.values.RC_FIRST, run.stderr).toBe("0");
    expect(run.values.RC).toBe("130");
    expect(run.values.OPT).toBe("hello ");
    expect(run.values.WITNESS).toBe("reinstalled-over");
    expect(run.values.GREET).toBe(greetLine("/opt/hello"));
  });

  it("uninstalls only a directory holding this stack's marker", async () => {
    const run = await inContainer(`
bash /pkg/install.sh --prefix /opt/hello >/dev/null; echo "RC_INSTALL=$?"
mkdir /opt/other && echo keep >/opt/other/file
bash /pkg/install.sh --uninstall --prefix /opt/other; echo "RC_FOREIGN=$?"
/opt/hello/install.sh --uninstall; echo "RC=$?"
echo "OPT=$(ls -A /opt)"
`);
    expect(run.values.RC_INSTALL, run.stderr).toBe("0");
    expect(run.values.RC_FOREIGN).toBe("1");
    expect(run.stderr).toContain("/opt/other does not hold an installation of hello");
    expect(run.values.RC, run.stderr).toBe("0");
    expect(run.stdout).toContain("Removed hello from /opt/hello");
    expect(run.values.OPT).toBe("other");
  });
});

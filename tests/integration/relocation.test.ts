import { randomBytes } from "node:crypto";
import { appendFile, cp, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { shellQuote as q } from "../../src/render/install-script.js";
import { TEST_IMAGE } from "./helpers/engine.js";
import { buildRelocatableTree, type RelocatableTree } from "./helpers/relocatable-tree.js";

/**
 * Relocation against the shapes real packages have, on binaries compiled for real from tests/fixtures/relocation/
 * and prepared by the production prepare-relocation.py: tail-merged strings (-O2/-Os), two prefixes in one C string,
 * a binary payload after a long text header, long shebangs (Spack's sbang form), dead placeholder bytes in .dynstr,
 * Spack's text boundary rule, and what the tree needs from a node (an older glibc is refused before any copy).
 */
const RUN_LABEL = "stack-factory-test.relocation-run";
const runId = randomBytes(6).toString("hex");
/** An older release than the test image (glibc 2.31 against 2.36), made by scripts/make-old-test-image.sh. */
const OLD_IMAGE = process.env.STACK_FACTORY_OLD_TEST_IMAGE ?? "stack-factory-test/debian:bullseye";
/** 200 characters: the longest prefix a site must be able to use. */
const LONG = `${`/opt/${"site-shared-apps/".repeat(12)}`.slice(0, 199)}x`;

let tree: RelocatableTree;

interface Run {
  exitCode: number;
  stdout: string;
  stderr: string;
  values: Record<string, string>;
}

async function inContainer(script: string, image = TEST_IMAGE, mounts: string[] = [], pkg = tree.top): Promise<Run> {
  const result = await execa(
    "docker",
    [
      "run",
      "--rm",
      "--network=none",
      "--label=stack-factory=1",
      `--label=${RUN_LABEL}=${runId}`,
      "-v",
      `${pkg}:/pkg:ro`,
      ...mounts.flatMap((m) => ["-v", m]),
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

/** `tails-<level>` output as `key=value|...`. */
const tailsOf = (prefix: string, level: string) =>
  `echo "TAILS_${level.toUpperCase()}=$(env -i ${q(prefix)}/view/bin/tails-${level} | tr '\\n' '|')"`;

beforeAll(async () => {
  await execa("bash", ["scripts/make-old-test-image.sh"]);
  tree = await buildRelocatableTree();
  expect(LONG.length).toBe(200);
});

afterAll(async () => {
  const { stdout } = await execa("docker", ["ps", "-aq", "--filter", `label=${RUN_LABEL}=${runId}`], { reject: false });
  const ids = String(stdout).split("\n").filter(Boolean);
  if (ids.length > 0) await execa("docker", ["rm", "-f", ...ids], { reject: false });
  await tree?.remove();
});

describe("relocation of real package shapes", () => {
  it("keeps tail-merged strings, rewrites every prefix in one string, at -O0, -O2 and -Os, short and 200-character prefixes", async () => {
    // The shape is real: at -O2/-Os the short string is the tail of the long one (no string of its own).
    const os = await readFile(join(tree.top, "view/bin/tails-Os"));
    expect(os.includes(Buffer.from("\0lib-data.txt\0"))).toBe(false);
    const o0 = await readFile(join(tree.top, "view/bin/tails-O0"));
    expect(o0.includes(Buffer.from("\0lib-data.txt\0"))).toBe(true);

    const levels = ["O0", "O2", "Os"];
    const run = await inContainer(`
bash /pkg/install.sh --prefix /opt/t >/dev/null; echo "RC=$?"
${levels.map((l) => tailsOf("/opt/t", l)).join("\n")}
bash /pkg/install.sh --prefix ${q(LONG)} >/dev/null; echo "RC_LONG=$?"
${levels.map((l) => tailsOf(LONG, l).replace("TAILS_", "LONG_")).join("\n")}
`);
    expect(run.values.RC, run.stderr).toBe("0");
    expect(run.values.RC_LONG, run.stderr).toBe("0");
    for (const [key, prefix] of [
      ["TAILS", "/opt/t"],
      ["LONG", LONG],
    ] as const) {
      const want = [
        "name=lib-data.txt",
        `path=${tree.binaryPath(prefix, "/lib/lib-data.txt")}`,
        `search=${tree.binaryPath(prefix, "/share/a")}:${tree.binaryPath(prefix, "/share/b")}`,
        "data=data-ok",
        "",
      ].join("|");
      for (const level of levels) expect(run.values[`${key}_${level.toUpperCase()}`], `${key} ${level}`).toBe(want);
    }
  });

  it("keeps a binary payload after a long text header byte-exact and relocates its header", async () => {
    const original = await readFile(join(tree.top, "view/bin/selfextract"));
    const headerEnd = original.indexOf(Buffer.from("__PAYLOAD__\n")) + "__PAYLOAD__\n".length;
    expect(headerEnd).toBeGreaterThan(8192);
    const run = await inContainer(`
bash /pkg/install.sh --prefix /opt/p >/dev/null; echo "RC=$?"
echo "SIZE=$(stat -c %s /opt/p/view/bin/selfextract)"
echo "PAYLOAD=$(tail -c +${headerEnd + 1} /opt/p/view/bin/selfextract | od -An -v -tx1 | tr -d ' \\n')"
echo "HEADER=$(grep -a '^PREFIX=' /opt/p/view/bin/selfextract)"
`);
    expect(run.values.RC, run.stderr).toBe("0");
    expect(Number(run.values.SIZE)).toBe(original.length);
    // The payload held the prefix too (as a binary occurrence); everything else is unchanged.
    const expected = Buffer.from(tree.payload);
    const at = expected.indexOf(Buffer.from(tree.buildPrefix));
    Buffer.from(tree.binaryPath("/opt/p")).copy(expected, at);
    expect(run.values.PAYLOAD).toBe(expected.toString("hex"));
    expect(run.values.HEADER).toBe(`PREFIX=${tree.binaryPath("/opt/p")}`);
  });

  it("runs long-shebang scripts at a 200-character prefix under env -i", async () => {
    const run = await inContainer(`
bash /pkg/install.sh --prefix ${q(LONG)} >/dev/null; echo "RC=$?"
echo "LONG=$(env -i ${q(LONG)}/view/bin/long-script one 'two words' | tr '\\n' '|')"
echo "PLAIN=$(env -i ${q(LONG)}/view/bin/plain-script | tr '\\n' '|')"
echo "LINE1=$(head -n 1 ${q(LONG)}/view/bin/long-script | wc -c)"
echo "LINE2=$(sed -n 2p ${q(LONG)}/view/bin/long-script)"
`);
    expect(run.values.RC, run.stderr).toBe("0");
    expect(run.values.LONG, run.stderr).toBe("-v:hello from a long shebang|arg=one|arg=two words|");
    expect(run.values.PLAIN, run.stderr).toBe("-p:plain shebang|");
    // The first line has a fixed length, whatever the prefix: within the 127 bytes every kernel reads.
    expect(Number(run.values.LINE1)).toBeLessThan(128);
    expect(run.values.LINE2).toBe(`#!${LONG}/view/bin/tinyterp -v`);
  });

  it("ships no Spack placeholder and no build prefix outside the recorded provenance; applies the text boundary rule", async () => {
    const report = tree.prepareReport as {
      dynstrBytesCleared: number;
      textLeftAlone: unknown[];
      placeholderFiles: string[];
    };
    expect(report.dynstrBytesCleared).toBeGreaterThan(0);
    expect(report.placeholderFiles).toEqual([]);
    expect(report.textLeftAlone).toEqual([{ file: "share/greet/paths.txt", occurrences: 1 }]);
    const run = await inContainer(`
echo "SHIPPED_PLACEHOLDER=$(grep -rlaF __spack_path_placeholder__ /pkg | tr '\\n' ' ')"
bash /pkg/install.sh --prefix /opt/c >/dev/null; echo "RC=$?"
echo "PLACEHOLDER=$(grep -rlaF __spack_path_placeholder__ /opt/c | tr '\\n' ' ')"
echo "PREFIX_LEFT=$(grep -rlaF ${q(tree.buildPrefix)} /opt/c | tr '\\n' ' ')"
echo "LINES_LEFT=$(grep -rhaF ${q(tree.buildPrefix)} /opt/c --exclude=build-prefix | tr '\\n' '|')"
echo "PATHS=$(cat /opt/c/view/share/greet/paths.txt | tr '\\n' '|')"
echo "LIBS=$(grep '^Libs:' /opt/c/view/lib/pkgconfig/greet.pc)"
echo "GREET=$(env -i /opt/c/view/bin/greet | tr '\\n' '|')"
`);
    expect(run.values.SHIPPED_PLACEHOLDER).toBe("");
    expect(run.values.RC, run.stderr).toBe("0");
    expect(run.values.PLACEHOLDER).toBe("");
    // Only the provenance record, and the one word the boundary rule leaves (another path ending in the prefix).
    expect(run.values.PREFIX_LEFT?.trim().split(" ").sort()).toEqual([
      "/opt/c/.stack-factory/build-prefix",
      "/opt/c/view/share/greet/paths.txt",
    ]);
    expect(run.values.LINES_LEFT).toBe(`elsewhere=/mnt${tree.buildPrefix}/share|`);
    expect(run.values.PATHS).toBe(`here=/opt/c/view/share|elsewhere=/mnt${tree.buildPrefix}/share|`);
    expect(run.values.LIBS).toBe("Libs: -L/opt/c/view/lib -lgreet");
    expect(run.values.GREET).toBe(tree.greetOutput("/opt/c").replace(/\n/g, "|"));
  });

  it("keeps DT_RPATH through packing and install: a decoy libgreet.so in LD_LIBRARY_PATH is not loaded", async () => {
    const readelf = async (file: string) => String((await execa("readelf", ["-d", file])).stdout);
    expect(await readelf(join(tree.top, "view/bin/greet"))).toMatch(
      /\(RPATH\)\s+Library rpath: \[\$ORIGIN\/\.\.\/lib\]/,
    );
    const decoys = join(tree.root, "decoys");
    await execa("mkdir", ["-p", decoys]);
    await execa("sh", [
      "-c",
      `printf '%s\\n' '#include <unistd.h>' '__attribute__((constructor)) static void decoy(void) { write(2, "DECOY\\n", 6); _exit(66); }' >"$1/decoy.c" && gcc -shared -fPIC -Wl,-soname,libgreet.so -o "$1/libgreet.so" "$1/decoy.c"`,
      "sh",
      decoys,
    ]);
    const run = await inContainer(
      `
bash /pkg/install.sh --prefix /opt/d >/dev/null; echo "RC=$?"
env -i LD_PRELOAD=/decoys/libgreet.so /bin/true 2>/dev/null; echo "LOADED_RC=$?"
echo "DECOYED=$(env -i LD_LIBRARY_PATH=/decoys /opt/d/view/bin/greet 2>&1 | tr '\\n' '|'; echo "rc=\${PIPESTATUS[0]}")"
`,
      TEST_IMAGE,
      [`${decoys}:/decoys:ro`],
    );
    expect(run.values.RC, run.stderr).toBe("0");
    // The control: the decoy ends any process that loads it.
    expect(run.values.LOADED_RC).toBe("66");
    expect(run.values.DECOYED).toBe(`${tree.greetOutput("/opt/d").replace(/\n/g, "|")}rc=0`);
  });

  it("makes the view's symlinks to system paths on the node, and refuses hostile records of them", async () => {
    /** A copy of the tree whose system-links.tsv (and node requirement) says `links`, listed in SHA256SUMS. */
    const variant = async (name: string, links: string, requirement = "") => {
      const copy = join(tree.root, name);
      await cp(tree.top, copy, { recursive: true, verbatimSymlinks: true });
      await writeFile(join(copy, ".stack-factory/system-links.tsv"), links);
      if (requirement !== "") await appendFile(join(copy, ".stack-factory/node-requirements.tsv"), requirement);
      const sums = await execa(
        "sha256sum",
        ["./.stack-factory/system-links.tsv", "./.stack-factory/node-requirements.tsv"],
        {
          cwd: copy,
        },
      );
      const kept = (await readFile(join(copy, "SHA256SUMS"), "utf8"))
        .split("\n")
        .filter(
          (l) => l !== "" && !l.includes("./.stack-factory/system-links.tsv") && !l.includes("node-requirements"),
        );
      await writeFile(join(copy, "SHA256SUMS"), `${[...kept, sums.stdout].join("\n")}\n`);
      return copy;
    };
    const install = `bash /pkg/install.sh --prefix /opt/l; echo "RC=$?"; echo "OPT=$(ls -A /opt)"; echo "TMP=$(ls -A /tmp | tr '\\n' ' ')"`;
    const good = await inContainer(
      `${install}\necho "LINK=$(readlink /opt/l/view/bin/sh-link)"\necho "RUN=$(/opt/l/view/bin/sh-link -c 'echo ran')"`,
      TEST_IMAGE,
      [],
      await variant("links-good", "view/bin/sh-link\t/usr/bin/dash\n", "system-file\t/usr/bin/dash\n"),
    );
    expect(good.values.RC, good.stderr).toBe("0");
    expect(good.values.LINK).toBe("/usr/bin/dash");
    expect(good.values.RUN).toBe("ran");
    const missing = await inContainer(
      install,
      TEST_IMAGE,
      [],
      await variant("links-missing", "view/bin/py\t/usr/bin/python3.99\n", "system-file\t/usr/bin/python3.99\n"),
    );
    expect(missing.values.RC).toBe("1");
    expect(missing.stderr).toContain("/usr/bin/python3.99 is needed");
    expect(missing.values.OPT).toBe("");
    for (const [name, links, message] of [
      ["links-up", "view/../../tmp/evil\t/usr/bin/dash\n", "unsafe path 'view/../../tmp/evil'"],
      ["links-outside", "install.sh.bak\t/usr/bin/dash\n", "'install.sh.bak' is not a path in view/"],
      ["links-shell", "view/bin/x\t/usr/bin/$(touch /tmp/pwned)\n", "bad target '/usr/bin/$(touch /tmp/pwned)'"],
      ["links-relative", "view/bin/x\tusr/bin/dash\n", "bad target 'usr/bin/dash'"],
      ["links-dotdot-target", "view/bin/x\t/usr/../etc/shadow\n", "bad target '/usr/../etc/shadow'"],
      ["links-existing", "view/bin/greet\t/usr/bin/dash\n", "'view/bin/greet' already exists in the tree"],
      ["links-no-dir", "view/nowhere/x\t/usr/bin/dash\n", "the directory of 'view/nowhere/x' is not in the tree"],
    ] as const) {
      const run = await inContainer(install, TEST_IMAGE, [], await variant(name, links));
      expect(run.values.RC, `${name}: ${run.stderr}`).toBe("1");
      expect(run.stderr, name).toContain(message);
      expect(run.values.OPT, name).toBe("");
      expect(run.values.TMP, name).toBe("");
    }
  });

  it("records what the tree needs from a node and refuses an older glibc before copying anything", async () => {
    const requirements = await readFile(join(tree.top, ".stack-factory/node-requirements.tsv"), "utf8");
    expect(requirements).toContain("machine\t62\tx86_64\n");
    expect(requirements).toContain("version\tlibc.so.6\tGLIBC_2.34\n");
    expect(requirements).toContain("library\tlibz.so.1\n");
    const portability = (
      tree.prepareReport as { portability: { hazards: unknown[]; highestVersions: Record<string, string> } }
    ).portability;
    expect(portability.hazards).toEqual([{ library: "libz.so.1", neededBy: ["lib/libgreet.so"] }]);
    expect(portability.highestVersions.GLIBC).toBe("GLIBC_2.34");

    const old = await inContainer(
      `
echo "GLIBC=$(ldd --version | head -n 1)"
bash /pkg/install.sh --prefix /opt/old; echo "RC=$?"
bash /pkg/install.sh --prefix /opt/old --dry-run; echo "RC_DRY=$?"
echo "OPT=$(ls -A /opt)"
`,
      OLD_IMAGE,
    );
    expect(old.values.GLIBC).toContain("2.31");
    expect(old.values.RC).toBe("1");
    expect(old.values.RC_DRY).toBe("1");
    expect(old.stderr).toContain("this node cannot run hello 1.0 (x86_64_v3)");
    expect(old.stderr).toMatch(
      /libc\.so\.6 does not define GLIBC_2\.34 \(the newest GLIBC version it defines is GLIBC_2\.30\)/,
    );
    expect(old.stderr).toContain("The tree was built on stack-factory-test/debian:bookworm");
    expect(old.stderr).toContain("debian 11");
    expect(old.values.OPT).toBe("");

    const noZlib = await inContainer(`
rm -f /lib/x86_64-linux-gnu/libz.so.1* /usr/lib/x86_64-linux-gnu/libz.so.1*
bash /pkg/install.sh --prefix /opt/z; echo "RC=$?"
echo "OPT=$(ls -A /opt)"
`);
    expect(noZlib.values.RC).toBe("1");
    expect(noZlib.stderr).toContain("libz.so.1 is needed and not found");
    expect(noZlib.values.OPT).toBe("");
  });
});

/**
 * One owner for the tarball's names: src/package/layout.ts. The templates that run in the container or on the
 * node (install.sh, pack-tree.py, prepare-relocation.py) get them when rendered or run, and spell none themselves.
 */
import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { LAYOUT, PREPARE_OUTPUTS } from "../../src/package/layout.js";
import { prepareArgv } from "../../src/package/prepare-args.js";
import { installLayout, loadInstallTemplate, renderInstallScript } from "../../src/render/install-script.js";

/** Every name of the tarball, and each piece of a name under a directory (`relocate.tsv`, `.stack-factory`). */
function layoutNames(): { name: string; directory: boolean }[] {
  const names = new Map<string, boolean>();
  for (const value of [...Object.values(LAYOUT), ...Object.values(PREPARE_OUTPUTS)]) {
    for (const piece of value.split("/")) if (!names.has(piece)) names.set(piece, false);
  }
  // A bare word (view, modules, data) is a layout name only as a path component: `view/bin`, `$PREFIX/view`.
  for (const name of names.keys()) if (/^[a-z]+$/.test(name)) names.set(name, true);
  return [...names].map(([name, directory]) => ({ name, directory }));
}

const regexLiteral = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Code without its comments: shell and Python `#` comments, and Python docstrings. */
function codeOf(text: string, language: "sh" | "py"): string[] {
  const source = language === "py" ? text.replace(/"""[\s\S]*?"""/g, (block) => block.replace(/[^\n]/g, "")) : text;
  return source.split("\n").map((line) => line.replace(/(^|\s)#(\s|!|$).*$/, ""));
}

/** `file:line: name` for every layout name the text spells outside comments. */
function spelledNames(file: string, text: string, language: "sh" | "py", allowed: string[] = []): string[] {
  const patterns = layoutNames()
    .filter(({ name }) => !allowed.includes(name))
    .map(({ name, directory }) => ({
      name,
      pattern: directory
        ? new RegExp(`(?<![\\w.$-])${regexLiteral(name)}/|/${regexLiteral(name)}(?![\\w.-])`)
        : new RegExp(`(?<![\\w-])${regexLiteral(name)}(?![\\w-])`),
    }));
  const found: string[] = [];
  codeOf(text, language).forEach((line, i) => {
    for (const { name, pattern } of patterns) if (pattern.test(line)) found.push(`${file}:${i + 1}: ${name}`);
  });
  return found;
}

describe("the tarball's names have one owner (src/package/layout.ts)", () => {
  it("finds a name a template spells by hand, and not one in a comment or a rendered variable", () => {
    const sh = [
      "# the index: .stack-factory/relocate.tsv",
      "RELOCATE_INDEX=<%= it.layout.relocateIndex %>",
      "RELOCATE_INDEX=.stack-factory/relocate.tsv",
      'bin="$ROOT/view/bin"',
      'say "the view is relocated"',
      'cat "$PREFIX/$VIEW_DIR/x"',
    ].join("\n");
    expect(spelledNames("x.sh", sh, "sh")).toEqual(["x.sh:3: .stack-factory", "x.sh:3: relocate.tsv", "x.sh:4: view"]);
    const py = ['"""Writes SHA256SUMS."""', 'CHECKSUMS = "SHA256SUMS"', 'out = job.layout["checksums"]  # SHA256SUMS'];
    expect(spelledNames("x.py", py.join("\n"), "py")).toEqual(["x.py:2: SHA256SUMS"]);
  });

  it("install.sh.eta, pack-tree.py and prepare-relocation.py spell none of the layout's names", async () => {
    const read = (path: string) => readFile(path, "utf8");
    // The installer names itself in its messages (`install.sh: error: ...`), as any program does.
    expect([
      ...spelledNames("templates/install.sh.eta", await read("templates/install.sh.eta"), "sh", [LAYOUT.installScript]),
      ...spelledNames("templates/pack-tree.py", await read("templates/pack-tree.py"), "py"),
      ...spelledNames("templates/prepare-relocation.py", await read("templates/prepare-relocation.py"), "py"),
    ]).toEqual([]);
  });

  it("install.sh reads relocate.tsv in one function, which the install and the dry run call", async () => {
    const template = await loadInstallTemplate();
    // No loop of its own reads the index file: only read_relocate_index, which reads the file it is given.
    expect(template.match(/<\s*"[^"]*\$RELOCATE_INDEX"/g)).toBeNull();
    expect(template.match(/^read_relocate_index\(\) \{/gm)).toHaveLength(1);
    expect(template.match(/read_relocate_index "\$(ROOT|SRC)\/\$RELOCATE_INDEX"/g)).toEqual([
      'read_relocate_index "$ROOT/$RELOCATE_INDEX"',
      'read_relocate_index "$SRC/$RELOCATE_INDEX"',
    ]);
  });

  it("renders every name into install.sh from the layout, shell-quoted", async () => {
    const script = renderInstallScript(
      { stackName: "s", version: "1", target: "zen4", defaultPrefix: "/apps/s", moduleName: "s" },
      await loadInstallTemplate(),
    );
    const layout = installLayout();
    expect(layout.relocateIndex).toBe(`'${LAYOUT.relocateIndex}'`);
    for (const [variable, key] of [
      ["VIEW_DIR", "view"],
      ["MODULES_DIR", "modules"],
      ["RELOCATE_INDEX", "relocateIndex"],
      ["NODE_REQUIREMENTS", "nodeRequirements"],
      ["SYSTEM_LINKS", "systemLinks"],
      ["INSTALLED_PREFIX_FILE", "installedPrefix"],
      ["BUILD_PREFIX_FILE", "buildPrefix"],
      ["MARKER_FILE", "installedMarker"],
      ["CHECKSUMS_FILE", "checksums"],
    ] as const) {
      expect(script).toContain(`\n${variable}=${layout[key]}\n`);
    }
    expect(script).toContain(`\nMODULE_FILES=('${LAYOUT.modules}/s/1.lua' '${LAYOUT.modules}/s/1')\n`);
  });

  it("gives prepare-relocation.py every name it writes on its command line", () => {
    const argv = prepareArgv("templates/prepare-relocation.py", { view: "/v", stage: "/s", top: "t" });
    const layout = JSON.parse(argv[argv.indexOf("--layout") + 1]!) as Record<string, string>;
    expect(layout).toEqual({ ...LAYOUT, ...PREPARE_OUTPUTS });
  });
});

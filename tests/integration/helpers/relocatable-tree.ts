import { createHash } from "node:crypto";
import { chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, symlink, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { execa } from "execa";
import { BUILD_PREFIX_FILE, NODE_REQUIREMENTS_FILE, RELOCATE_INDEX } from "../../../src/package/layout.js";
import { loadInstallTemplate, renderInstallScript } from "../../../src/render/install-script.js";
import { loadModuleTemplate, MODULE_SYSTEMS, modulePath, renderModule } from "../../../src/render/module.js";

/**
 * A directory shaped like a packed tarball's top directory: a view compiled on the host with gcc from
 * tests/fixtures/relocation/ at its build path, shaped the way Spack leaves a copy view (a Spack-shortened RPATH with
 * dead placeholder bytes, sbang shebangs), prepared by the production templates/prepare-relocation.py (the one
 * writer of the relocation index), then moved under the top directory with install.sh, the module and SHA256SUMS.
 */
export interface RelocatableTree {
  /** The temp directory holding `top` (removed by `remove`). */
  root: string;
  /** The top directory: install.sh, view/, modules/, .stack-factory/, SHA256SUMS. */
  top: string;
  /** The view's path at "build" time (a real directory on the host while it was prepared). */
  buildPrefix: string;
  stackName: string;
  version: string;
  target: string;
  moduleName: string;
  defaultPrefix: string;
  /** prepare.json as prepare-relocation.py wrote it. */
  prepareReport: Record<string, unknown>;
  /** `<prefix>/view<suffix>` as a relocated binary string reads: front-padded with `/` to the build prefix's length. */
  binaryPath(prefix: string, suffix?: string): string;
  /** What `view/bin/greet` prints once installed at `prefix`. */
  greetOutput(prefix: string): string;
  /** The payload appended to `view/bin/selfextract` after its text header (byte-exact after install). */
  payload: Buffer;
  remove(): Promise<void>;
}

export interface TreeOptions {
  description?: string;
  envVars?: Record<string, string>;
  defaultPrefix?: string;
  /** The target the tree says it is built for (default x86_64_v3; the code is generic x86_64 either way). */
  target?: string;
  /** Length of the build prefix (default 232: installs at prefixes up to 227 characters). */
  buildPrefixLength?: number;
}

const DEFAULT_STACK = { stackName: "hello", version: "1.0", target: "x86_64_v3", moduleName: "hello" };
const FIXTURES = resolve("tests/fixtures/relocation");
const PREPARE = resolve("templates/prepare-relocation.py");
/** Where Spack's sbang lives in the build container (not shipped). */
const SBANG = "/sf/install/bin/sbang";
/** A padded install-tree path as Spack writes it before relocation. */
const PLACEHOLDER_RPATH = `/sf/install/${"__spack_path_placeholder__/".repeat(12)}lib`;

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

async function write(path: string, content: string | Buffer, mode?: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, content);
  if (mode !== undefined) await chmod(path, mode);
}

const gcc = (args: string[]) => execa("gcc", args);

/**
 * Shortens an RPATH in place the way Spack relocates a copy view: the new string and its NUL are written over the
 * old one, whose tail stays behind in .dynstr.
 */
async function shortenInPlace(file: string, from: string, to: string): Promise<void> {
  const bytes = await readFile(file);
  const at = bytes.indexOf(Buffer.from(`${from}\0`));
  if (at < 0) throw new Error(`${file} does not hold ${from}`);
  if (to.length >= from.length) throw new Error("the new RPATH must be shorter");
  Buffer.from(`${to}\0`).copy(bytes, at);
  await writeFile(file, bytes);
}

export async function buildRelocatableTree(options: TreeOptions = {}): Promise<RelocatableTree> {
  const STACK = { ...DEFAULT_STACK, target: options.target ?? DEFAULT_STACK.target };
  const root = await mkdtemp(join(tmpdir(), "sf-tree-"));
  const top = join(root, `${STACK.stackName}-${STACK.version}-${STACK.target}`);
  const defaultPrefix = options.defaultPrefix ?? "/opt/stacks/hello/1.0";
  // The view as Spack makes it: <dir>/<name> -> ._<name>/<hash>, the real path padded to the wanted length.
  const hash = "0123456789abcdefghijklmnopqrstuv";
  const viewsDir = join(root, "build");
  const tail = `/._${STACK.stackName}/${hash}`;
  const length = options.buildPrefixLength ?? 232;
  const padded = join(viewsDir, "p".repeat(Math.max(1, length - viewsDir.length - 1 - tail.length)));
  const real = `${padded}${tail}`;
  if (real.length !== length) throw new Error(`build prefix ${real} is ${real.length} characters, not ${length}`);
  const link = join(padded, STACK.stackName);
  const buildPrefix = real;
  const define = `-DPREFIX="${buildPrefix}"`;
  const src = (name: string) => join(FIXTURES, name);

  await mkdir(join(real, "lib"), { recursive: true });
  await mkdir(join(real, "bin"), { recursive: true });
  await symlink(`._${STACK.stackName}/${hash}`, link);

  await gcc([
    "-shared",
    "-fPIC",
    "-O1",
    define,
    "-Wl,-soname,libgreet.so",
    "-o",
    join(real, "lib/libgreet.so"),
    src("greet.c"),
    "-l:libz.so.1",
  ]);
  await gcc([
    "-O1",
    "-o",
    join(real, "bin/greet"),
    src("main.c"),
    `-L${join(real, "lib")}`,
    "-lgreet",
    // DT_RPATH, as Spack's compiler wrapper links (the linker's default would be DT_RUNPATH).
    "-Wl,--disable-new-dtags",
    `-Wl,-rpath,${PLACEHOLDER_RPATH}`,
  ]);
  await shortenInPlace(join(real, "bin/greet"), PLACEHOLDER_RPATH, `${buildPrefix}/lib`);
  for (const level of ["O0", "O2", "Os"]) {
    await gcc([`-${level}`, define, "-o", join(real, `bin/tails-${level}`), src("tails.c")]);
  }
  await gcc(["-O2", "-o", join(real, "bin/tinyterp"), src("tinyterp.c")]);

  await write(join(real, "lib/lib-data.txt"), "data-ok\n");
  await write(
    join(real, "lib/pkgconfig/greet.pc"),
    `prefix=${buildPrefix}\nlibdir=\${prefix}/lib\nincludedir=\${prefix}/include\n\nName: greet\nDescription: greeting library\nVersion: 1.0\nLibs: -L${buildPrefix}/lib -lgreet\nCflags: -I\${includedir}\n`,
  );
  // A word that only ends with the prefix is another path: Spack's boundary rule leaves it alone.
  await write(join(real, "share/greet/paths.txt"), `here=${buildPrefix}/share\nelsewhere=/mnt${buildPrefix}/share\n`);
  await write(join(real, "bin/greet-config"), `#!/bin/sh\necho "${buildPrefix}"\n`, 0o755);
  // Spack's sbang form (the interpreter's path is longer than the kernel reads), and a plain shebang into the view.
  await write(
    join(real, "bin/long-script"),
    `#!/bin/sh ${SBANG}\n#!${buildPrefix}/bin/tinyterp -v\nsay hello from a long shebang\n`,
    0o755,
  );
  await write(join(real, "bin/plain-script"), `#!${buildPrefix}/bin/tinyterp -p\nsay plain shebang\n`, 0o755);
  // A text header longer than 8 KiB naming the prefix, then a binary payload (NULs, and bytes sed would mangle).
  const header = `#!/bin/sh\n# ${"self-extracting archive header ".repeat(300)}\nPREFIX=${buildPrefix}\nexit 0\n__PAYLOAD__\n`;
  const payload = Buffer.concat([
    Buffer.from([0, 1, 2, 0x0a, 0xff, 0xfe, 0]),
    createHash("sha512").update("payload").digest(),
    Buffer.from(`\n${buildPrefix}\n`),
    Buffer.alloc(64, 0x0a),
  ]);
  await write(join(real, "bin/selfextract"), Buffer.concat([Buffer.from(header), payload]), 0o755);
  await write(join(real, "share/greet/hello.txt"), "hello\n");
  await mkdir(join(real, ".spack/greet"), { recursive: true });
  await write(join(real, ".spack/greet/spec.json"), `{"prefix": "${PLACEHOLDER_RPATH}"}\n`);

  const stage = join(root, "stage");
  const prepared = await execa("python3", [PREPARE, "--view", link, "--stage", stage, "--top", STACK.stackName], {
    reject: false,
  });
  if (prepared.exitCode !== 0) throw new Error(`prepare-relocation.py failed:\n${prepared.stdout}\n${prepared.stderr}`);
  const prepareReport = JSON.parse(await readFile(join(stage, "prepare.json"), "utf8")) as Record<string, unknown>;

  await mkdir(top, { recursive: true });
  await rename(real, join(top, "view"));
  await write(join(top, `data/${STACK.stackName}_assets/README`), "assets\n");
  const moduleInput = {
    ...STACK,
    defaultPrefix,
    envVars: options.envVars ?? {},
    description: options.description ?? "A greeting stack",
    specs: ["hello@2.12"],
  };
  for (const system of MODULE_SYSTEMS) {
    const text = renderModule(moduleInput, await loadModuleTemplate(undefined, system), system);
    await write(join(top, modulePath(system, STACK.moduleName, STACK.version)), text);
  }
  await write(
    join(top, "install.sh"),
    renderInstallScript(
      { ...STACK, defaultPrefix, baseImage: "stack-factory-test/debian:bookworm" },
      await loadInstallTemplate(),
    ),
    0o755,
  );
  await write(join(top, BUILD_PREFIX_FILE), `${buildPrefix}\n`);
  await write(join(top, RELOCATE_INDEX), await readFile(join(stage, "relocate.tsv")));
  if (existsSync(join(stage, "node-requirements.tsv"))) {
    await write(join(top, NODE_REQUIREMENTS_FILE), await readFile(join(stage, "node-requirements.tsv")));
  }

  const sums: string[] = [];
  for (const path of await listFiles(top)) {
    const digest = createHash("sha256")
      .update(await readFile(join(top, path)))
      .digest("hex");
    sums.push(`${digest}  ./${path}\n`);
  }
  await write(join(top, "SHA256SUMS"), sums.join(""));

  const binaryPath = (prefix: string, suffix = "") =>
    `${"/".repeat(buildPrefix.length - prefix.length - 5)}${prefix}/view${suffix}`;
  return {
    root,
    top,
    buildPrefix,
    ...STACK,
    defaultPrefix,
    prepareReport,
    binaryPath,
    greetOutput: (prefix) => `${binaryPath(prefix, "/share/greet")}\n${binaryPath(prefix)}\n`,
    payload,
    remove: () => rm(root, { recursive: true, force: true }),
  };
}

import { createHash } from "node:crypto";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { execa } from "execa";
import { loadInstallTemplate, renderInstallScript } from "../../../src/render/install-script.js";
import { loadModuleTemplate, renderModule } from "../../../src/render/module.js";

/** A directory shaped like a packed tarball's top directory, built on the host with gcc. */
export interface RelocatableTree {
  /** The temp directory holding `top` (removed by `remove`). */
  root: string;
  /** The top directory: install.sh, view/, modules/, .stack-factory/, SHA256SUMS. */
  top: string;
  /** The view's path at "build" time; compiled into libgreet.so and written into the text files. */
  buildPrefix: string;
  stackName: string;
  version: string;
  target: string;
  moduleName: string;
  defaultPrefix: string;
  /** What `view/bin/greet` prints once installed at `prefix`. */
  greetOutput(prefix: string): string;
  remove(): Promise<void>;
}

export interface TreeOptions {
  description?: string;
  envVars?: Record<string, string>;
  defaultPrefix?: string;
}

const STACK = { stackName: "hello", version: "1.0", target: "x86_64_v3", moduleName: "hello" };

/** A 180-character build prefix, padded the way the factory pads its build prefix. */
export function makeBuildPrefix(): string {
  const head = "/sf/view/stack-factory-build-prefix";
  const tail = `/${STACK.stackName}-${STACK.version}-${STACK.target}`;
  return `${head}${"_".repeat(180 - head.length - tail.length)}${tail}`;
}

const LIBRARY_C = (buildPrefix: string) => `
const char *greet_data_dir(void) { return "${buildPrefix}/share/greet"; }
const char *greet_prefix(void) { return "${buildPrefix}"; }
`;

const PROGRAM_C = `
#include <stdio.h>
const char *greet_data_dir(void);
const char *greet_prefix(void);
int main(void) {
  printf("%s\\n%s\\n", greet_data_dir(), greet_prefix());
  return 0;
}
`;

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

/** relocate.tsv lines for one file, or undefined when it does not contain the build prefix. */
function indexLine(path: string, content: Buffer, buildPrefix: string): string | undefined {
  const needle = Buffer.from(buildPrefix);
  let at = content.indexOf(needle);
  if (at < 0) return undefined;
  if (!content.includes(0)) return `text\t${path}`;
  const occurrences: string[] = [];
  while (at >= 0) {
    const end = content.indexOf(0, at);
    if (end < 0) throw new Error(`${path}: build prefix at ${at} is not NUL-terminated`);
    const suffix = content.subarray(at + needle.length, end).toString("hex");
    occurrences.push(`${at}:${end - at}:${suffix}`);
    at = content.indexOf(needle, end);
  }
  return `binary\t${path}\t${occurrences.join(",")}`;
}

async function write(path: string, content: string | Buffer, mode?: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, content);
  if (mode !== undefined) await chmod(path, mode);
}

export async function buildRelocatableTree(options: TreeOptions = {}): Promise<RelocatableTree> {
  const root = await mkdtemp(join(tmpdir(), "sf-tree-"));
  const top = join(root, `${STACK.stackName}-${STACK.version}-${STACK.target}`);
  const buildPrefix = makeBuildPrefix();
  const defaultPrefix = options.defaultPrefix ?? "/opt/stacks/hello/1.0";
  const view = join(top, "view");

  const src = join(root, "src");
  await write(join(src, "greet.c"), LIBRARY_C(buildPrefix));
  await write(join(src, "main.c"), PROGRAM_C);
  await mkdir(join(view, "lib"), { recursive: true });
  await mkdir(join(view, "bin"), { recursive: true });
  await execa("gcc", ["-shared", "-fPIC", "-O1", "-Wl,-soname,libgreet.so", "-o", join(view, "lib/libgreet.so"), join(src, "greet.c")]);
  await execa("gcc", [
    "-O1",
    "-o",
    join(view, "bin/greet"),
    join(src, "main.c"),
    `-L${join(view, "lib")}`,
    "-lgreet",
    "-Wl,-rpath,$ORIGIN/../lib",
  ]);

  await write(
    join(view, "lib/pkgconfig/greet.pc"),
    `prefix=${buildPrefix}\nlibdir=\${prefix}/lib\nincludedir=\${prefix}/include\n\nName: greet\nDescription: greeting library\nVersion: 1.0\nLibs: -L\${libdir} -lgreet\n`,
  );
  await write(join(view, "bin/greet-config"), `#!/bin/sh\necho "${buildPrefix}"\n`, 0o755);
  await write(join(view, "share/greet/hello.txt"), "hello\n");
  await write(join(top, `data/${STACK.stackName}_assets/README`), "assets\n");

  const moduleText = renderModule(
    {
      ...STACK,
      defaultPrefix,
      envVars: options.envVars ?? {},
      description: options.description ?? "A greeting stack",
      specs: ["hello@2.12"],
    },
    await loadModuleTemplate(),
  );
  await write(join(top, `modules/${STACK.moduleName}/${STACK.version}.lua`), moduleText);
  await write(join(top, "install.sh"), renderInstallScript({ ...STACK, defaultPrefix }, await loadInstallTemplate()), 0o755);
  await write(join(top, ".stack-factory/build-prefix"), `${buildPrefix}\n`);

  const index: string[] = [];
  for (const path of await listFiles(top)) {
    if (path.startsWith(".stack-factory/")) continue;
    const line = indexLine(path, await readFile(join(top, path)), buildPrefix);
    if (line !== undefined) index.push(line);
  }
  await write(join(top, ".stack-factory/relocate.tsv"), index.map((l) => `${l}\n`).join(""));

  const sums: string[] = [];
  for (const path of await listFiles(top)) {
    const hash = createHash("sha256").update(await readFile(join(top, path))).digest("hex");
    sums.push(`${hash}  ./${path}\n`);
  }
  await write(join(top, "SHA256SUMS"), sums.join(""));

  return {
    root,
    top,
    buildPrefix,
    ...STACK,
    defaultPrefix,
    greetOutput: (prefix) => `${prefix}/view/share/greet\n${prefix}/view\n`,
    remove: () => rm(root, { recursive: true, force: true }),
  };
}

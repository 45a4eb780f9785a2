/**
 * Relocation benchmark: what a user does with a stack tarball (`tar -xzf` then `install.sh --prefix DIR`) against
 * `tar -xzf` alone, on one tarball of >= 1 GB and >= 10,000 files shaped like a packed stack: a view with text files
 * holding the build prefix, binaries with NUL-terminated copies of it, ELF executables in view/bin for the self-test,
 * the relocation index, the module, the manifest and SHA256SUMS, all packed as the factory packs (packOnHost: pack-tree.py and GNU tar). Run with bench/run.sh.
 *   BENCH_SIZE_MB (default 1024), BENCH_FILES (default 10000), BENCH_EXECUTABLES (default 200),
 *   BENCH_DIR (default /tmp/stack-factory-relocate-<size>mb-<files>)
 * The view is reused when it exists with the same parameters, the tarball as long as install.sh and the module
 * render the same. After each install the benchmark checks that the relocation happened: no file outside
 * .stack-factory/ and manifest.json still holds the build prefix, every binary occurrence reads `<prefix>/view`
 * front-padded with `/` to the build prefix's length (its suffix untouched), and the installed SHA256SUMS matches.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, mkdir, open, readFile, rm, stat, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { LAYOUT, moduleFile } from "../src/package/layout.js";
import { buildManifest } from "../src/package/manifest.js";
import { parseRelocateIndex } from "../src/package/relocation-index.js";
import { loadInstallTemplate, renderInstallScript } from "../src/render/install-script.js";
import { loadModuleTemplate, renderModule } from "../src/render/module.js";
import { packOnHost } from "../tests/helpers/pack-on-host.js";
import { prng, textBlock } from "./text-data.js";

const MB = 1024 * 1024;
const STACK = {
  stackName: "bench",
  version: "1.0",
  target: "x86_64_v3",
  moduleName: "bench",
  defaultPrefix: "/opt/stacks/bench/1.0",
};
const TOP = `${STACK.stackName}-${STACK.version}-${STACK.target}`;

/** The build prefix as the factory makes it: padded to 140+ characters, then Spack's `._<name>/<hash>` tail. */
const BUILD_PREFIX = (() => {
  const head = "/sf/view/stack-factory-build-prefix";
  const tail = `/._${TOP}/0123456789abcdefghijklmnopqrstuv`;
  return `${head}${"_".repeat(Math.max(0, 140 - head.length - tail.length))}${tail}`;
})();

interface Params {
  sizeMb: number;
  files: number;
  /** ELF executables in view/bin (ldd runs on each in the self-test). */
  executables: number;
}

/** Text of about `size` bytes with `count` lines naming paths under the build prefix, spread through it. */
function relocatableText(base: Buffer, size: number, count: number, random: () => number): Buffer {
  const parts: Buffer[] = [];
  const step = Math.max(1, Math.floor(size / count));
  for (let i = 0; i < count; i++) {
    const offset = Math.floor(random() * Math.max(1, base.length - step));
    parts.push(base.subarray(offset, offset + step));
    parts.push(Buffer.from(`\nprefix=${BUILD_PREFIX}/lib/pkg${i}:${BUILD_PREFIX}/share\n`));
  }
  return Buffer.concat(parts);
}

/**
 * Random bytes with `count` NUL-terminated C strings `<build prefix><suffix>` spread through them; returns the body
 * and its relocate.tsv offsets (where each build prefix starts).
 */
function relocatableBinary(size: number, count: number, tag: string): { body: Buffer; occurrences: string[] } {
  const body = randomBytes(size);
  const occurrences: string[] = [];
  const step = Math.floor(size / count);
  for (let i = 0; i < count; i++) {
    const suffix = `/lib/${tag}/data${i}`;
    const string = Buffer.from(`${BUILD_PREFIX}${suffix}\0`);
    if (step < string.length + 1) throw new Error(`a ${size}-byte binary cannot hold ${count} strings`);
    const offset = i * step + 1;
    string.copy(body, offset);
    body[offset - 1] = 0;
    occurrences.push(String(offset));
  }
  return { body, occurrences };
}

/**
 * The view: 40 large files hold 70% of the bytes (half text, half random), the rest is spread over small files.
 * One large file in four, 8% of the small files (text) and 2% (binary) hold the build prefix; view/bin holds
 * copies of a system ELF executable. Returns relocate.tsv.
 */
async function makeView(view: string, params: Params): Promise<string> {
  const random = prng(4242);
  const total = params.sizeMb * MB;
  const large = 40;
  const largeSize = Math.floor((total * 0.7) / large);
  const small = Math.max(params.files - large - params.executables, 1);
  const smallSize = Math.floor((total * 0.3) / small);
  const index: string[] = [];
  const text = textBlock(random, Math.max(smallSize * 4, 1 << 20));

  for (let i = 0; i < large; i++) {
    const dir = `lib/pkg${i % 8}`;
    await mkdir(join(view, dir), { recursive: true });
    const isText = i % 2 === 0;
    const path = `${dir}/large${i}.${isText ? "txt" : "so"}`;
    const relocatable = i % 4 < 2;
    if (isText) {
      const body = relocatable
        ? relocatableText(text, largeSize, 64, random)
        : Buffer.concat(Array.from({ length: Math.ceil(largeSize / text.length) }, () => text)).subarray(0, largeSize);
      await writeFile(join(view, path), body);
      if (relocatable) index.push(`text\tview/${path}`);
    } else if (relocatable) {
      const { body, occurrences } = relocatableBinary(largeSize, 8, `pkg${i}`);
      await writeFile(join(view, path), body);
      index.push(`binary\tview/${path}\t${occurrences.join(",")}`);
    } else {
      await writeFile(join(view, path), randomBytes(largeSize));
    }
  }

  const elf = ["/usr/bin/true", "/bin/true"].find((p) => existsSync(p));
  if (elf === undefined) throw new Error("no /usr/bin/true to copy into view/bin");
  await mkdir(join(view, "bin"), { recursive: true });
  for (let i = 0; i < params.executables; i++) await copyFile(elf, join(view, "bin", `tool${i}`));

  for (let i = 0; i < small; i++) {
    const dir = `share/d${i % 100}/e${i % 7}`;
    if (i < 700) await mkdir(join(view, dir), { recursive: true });
    const size = Math.max(64, Math.floor(smallSize * (0.5 + random())));
    const kind = i % 50;
    if (kind < 4) {
      const path = `${dir}/f${i}.cfg`;
      await writeFile(join(view, path), relocatableText(text, size, 2, random));
      index.push(`text\tview/${path}`);
    } else if (kind === 4) {
      const path = `${dir}/f${i}.so`;
      const { body, occurrences } = relocatableBinary(Math.max(size, 1024), 1 + (i % 3), `s${i}`);
      await writeFile(join(view, path), body);
      index.push(`binary\tview/${path}\t${occurrences.join(",")}`);
    } else if (kind % 2 === 0) {
      const offset = Math.floor(random() * (text.length - Math.min(size, text.length)));
      await writeFile(join(view, `${dir}/f${i}.txt`), text.subarray(offset, offset + size));
    } else {
      await writeFile(join(view, `${dir}/f${i}.bin`), randomBytes(size));
    }
  }
  return index.map((line) => `${line}\n`).join("");
}

/**
 * Builds the view in `<dir>/source` (kept for the next run with the same parameters) and packs it with the current
 * install script and module (pigz when present) into `<dir>/<TOP>.tar.gz`, unless that tarball is there already.
 */
async function makeTarball(dir: string, params: Params): Promise<string> {
  const tarball = join(dir, `${TOP}.tar.gz`);
  const source = join(dir, "source");
  const view = join(source, "view");
  const viewMarker = join(source, ".bench-complete");
  // index: the relocate.tsv format (2: binary occurrences as offsets of the prefix).
  const wantedView = JSON.stringify({ ...params, prefix: BUILD_PREFIX, index: 2 });
  if ((await readFile(viewMarker, "utf8").catch(() => "")) !== wantedView) {
    await rm(dir, { recursive: true, force: true });
    await mkdir(view, { recursive: true });
    process.stderr.write(`creating ${params.files} files (${params.sizeMb} MB) in ${view}\n`);
    await writeFile(join(source, "relocate.tsv"), await makeView(view, params));
    await writeFile(viewMarker, wantedView);
  }
  const relocateIndex = await readFile(join(source, "relocate.tsv"), "utf8");
  const module = renderModule(
    { ...STACK, envVars: {}, description: "relocation benchmark", specs: ["bench@1.0"] },
    await loadModuleTemplate(),
  );
  const install = renderInstallScript(STACK, await loadInstallTemplate());
  // The tarball is packed again whenever the install script or the module changes.
  const marker = join(dir, ".bench-tarball");
  const wanted = createHash("sha256").update(wantedView).update(install).update(module).digest("hex");
  if ((await readFile(marker, "utf8").catch(() => "")) === wanted) return tarball;
  const manifest = buildManifest({
    stack: { name: STACK.stackName, version: STACK.version, file: "/bench.yaml", description: "relocation benchmark" },
    target: STACK.target,
    compiler: "os",
    baseImage: "debian:bookworm",
    specs: [],
    buildPrefix: BUILD_PREFIX,
    relocateIndex,
  });
  process.stderr.write(`packing ${tarball}\n`);
  await packOnHost({
    view,
    top: TOP,
    outDir: dir,
    compression: "gzip",
    files: {
      [LAYOUT.installScript]: { content: install, mode: 0o755 },
      [moduleFile(STACK.moduleName, STACK.version)]: module,
      [LAYOUT.relocateIndex]: relocateIndex,
      [LAYOUT.buildPrefix]: `${BUILD_PREFIX}\n`,
      // What a real tree records: install.sh checks the node's libc before copying (x86_64 hosts only).
      ...(process.arch === "x64"
        ? {
            [LAYOUT.nodeRequirements]:
              "machine\t62\tx86_64\nlibrary\tlibc.so.6\nversion\tlibc.so.6\tGLIBC_2.2.5\nversion\tlibc.so.6\tGLIBC_2.34\n",
          }
        : {}),
    },
    manifest,
  });
  await writeFile(marker, wanted);
  return tarball;
}

async function timed(script: string, ...args: string[]): Promise<{ seconds: number; stdout: string }> {
  const started = process.hrtime.bigint();
  const run = await execa("bash", ["-c", script, "bench", ...args]);
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, stdout: run.stdout };
}

/** Empties `dir` and flushes dirty pages, so that one run's writeback does not land in the next run's time. */
async function fresh(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await execa("sync");
}

/** The install at `prefix` holds no build prefix outside .stack-factory/ and manifest.json, and the binaries were rewritten. */
async function verifyInstall(prefix: string, tsv: string): Promise<string> {
  const left = await execa(
    "grep",
    ["-rlF", `--exclude-dir=${LAYOUT.metadata}`, `--exclude=${LAYOUT.manifest}`, BUILD_PREFIX, prefix],
    { reject: false },
  );
  if (left.exitCode !== 1) throw new Error(`the build prefix is still in:\n${left.stdout}${left.stderr}`);
  const to = Buffer.from(`${prefix}/view`);
  let strings = 0;
  let text = 0;
  for (const entry of parseRelocateIndex(tsv)) {
    if (entry.kind === "text") {
      const body = await readFile(join(prefix, entry.path));
      if (!body.includes(`${prefix}/view/lib/pkg`)) throw new Error(`${entry.path} does not name ${prefix}/view`);
      text += 1;
      continue;
    }
    const handle = await open(join(prefix, entry.path));
    try {
      const wanted = Buffer.from(`${"/".repeat(BUILD_PREFIX.length - to.length)}${to}`);
      for (const offset of entry.offsets) {
        const got = Buffer.alloc(wanted.length + 5);
        await handle.read(got, 0, got.length, offset);
        if (
          !got.subarray(0, wanted.length).equals(wanted) ||
          got.subarray(wanted.length).toString("latin1") !== "/lib/"
        ) {
          throw new Error(`${entry.path} at ${offset}: ${JSON.stringify(got.toString("latin1"))}`);
        }
        strings += 1;
      }
    } finally {
      await handle.close();
    }
  }
  const sums = await execa("sha256sum", ["-c", "--quiet", "--strict", "SHA256SUMS"], { cwd: prefix, reject: false });
  if (sums.exitCode !== 0) throw new Error(`the installed SHA256SUMS does not match:\n${sums.stdout}${sums.stderr}`);
  return `${text} text files and ${strings} binary strings relocated to ${prefix}/view; no build prefix left; SHA256SUMS matches`;
}

interface Row {
  name: string;
  seconds: number;
}

async function main(): Promise<void> {
  const params: Params = {
    sizeMb: Number(process.env["BENCH_SIZE_MB"] ?? 1024),
    files: Number(process.env["BENCH_FILES"] ?? 10000),
    executables: Number(process.env["BENCH_EXECUTABLES"] ?? 200),
  };
  const dir = process.env["BENCH_DIR"] ?? `/tmp/stack-factory-relocate-${params.sizeMb}mb-${params.files}`;
  const tarball = await makeTarball(dir, params);
  const { size } = await stat(tarball);
  const unpacked = join(dir, "unpacked");
  const prefix = join(dir, "installed");
  // Warm the page cache with the tarball.
  await execa("bash", ["-c", `cat "$1" > /dev/null`, "bench", tarball]);

  const rows: Row[] = [];
  await fresh(unpacked);
  const extract = await timed(`tar -xzf "$1" -C "$2"`, tarball, unpacked);
  rows.push({ name: "tar -xzf", seconds: extract.seconds });
  const tsv = await readFile(join(unpacked, TOP, LAYOUT.relocateIndex), "utf8");
  const bytes = Number((await execa("du", ["-sb", join(unpacked, TOP)])).stdout.split(/\s/)[0]);
  const files = Number((await execa("bash", ["-c", `find "$1" -type f | wc -l`, "bench", join(unpacked, TOP)])).stdout);

  await fresh(unpacked);
  await rm(prefix, { recursive: true, force: true });
  const both = await timed(
    `tar -xzf "$1" -C "$2" && exec "$2/$3/install.sh" --prefix "$4"`,
    tarball,
    unpacked,
    TOP,
    prefix,
  );
  rows.push({ name: "tar -xzf + install.sh --prefix", seconds: both.seconds });
  const checked = await verifyInstall(prefix, tsv);

  await execa("sync");
  await rm(prefix, { recursive: true, force: true });
  await execa("sync");
  const alone = await timed(`exec "$1/$2/install.sh" --prefix "$3"`, unpacked, TOP, prefix);
  rows.push({ name: "install.sh --prefix (unpacked tree)", seconds: alone.seconds });
  await verifyInstall(prefix, tsv);

  await rm(unpacked, { recursive: true, force: true });
  await rm(prefix, { recursive: true, force: true });
  const binaries = parseRelocateIndex(tsv).filter((e) => e.kind === "binary").length;
  process.stdout.write(
    `tarball: ${tarball}, ${(size / MB).toFixed(0)} MB; unpacked ${files} files, ${(bytes / MB).toFixed(0)} MB; ` +
      `relocate.tsv: ${tsv.split("\n").length - 1 - binaries} text, ${binaries} binary files; ${params.executables} executables; ` +
      `build prefix ${BUILD_PREFIX.length} characters; ${cpus().length} CPUs\n${checked}\n\n`,
  );
  const lines = [
    "| run | seconds | × tar -xzf |",
    "|---|---:|---:|",
    ...rows.map((r) => `| ${r.name} | ${r.seconds.toFixed(2)} | ${(r.seconds / rows[0]!.seconds).toFixed(2)} |`),
  ];
  process.stdout.write(`${lines.join("\n")}\n\n${alone.stdout.split("\n").slice(0, 2).join("\n")}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});

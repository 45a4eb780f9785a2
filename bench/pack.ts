/**
 * Packing benchmark: packTarball against `tar -c | <compressor>` on one tree of >= 1 GB and >= 10,000 files
 * (half compressible text, half random bytes), plus the packer's peak RSS. Run with bench/run.sh.
 *   BENCH_SIZE_MB (default 1024), BENCH_FILES (default 10000), BENCH_DIR (default /tmp/stack-factory-bench-...)
 * The tree is reused when it exists with the same parameters. Each packer run is a child process, so its
 * peak RSS is its own.
 */
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import type { Readable } from "node:stream";
import { buildManifest } from "../src/package/manifest.js";
import { packTarball } from "../src/package/pack.js";
import type { Compression, CompressorPreference } from "../src/package/compressor.js";
import { prng, textBlock } from "./text-data.js";

const MB = 1024 * 1024;

interface Params {
  sizeMb: number;
  files: number;
}


async function writeLarge(path: string, size: number, text: boolean, random: () => number): Promise<void> {
  const out = createWriteStream(path);
  let left = size;
  const block = text ? textBlock(random, MB) : undefined;
  while (left > 0) {
    const n = Math.min(MB, left);
    const chunk = text ? block!.subarray(0, n) : randomBytes(n);
    if (!out.write(chunk)) await new Promise<void>((r) => out.once("drain", () => r()));
    left -= n;
  }
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
}

/** Builds the tree: 40 large files hold 70% of the bytes, the rest is spread over the small files. */
async function makeTree(dir: string, params: Params): Promise<void> {
  const marker = join(dir, ".bench-complete");
  const wanted = JSON.stringify(params);
  if ((await readFile(marker, "utf8").catch(() => "")) === wanted) return;
  await rm(dir, { recursive: true, force: true });
  const random = prng(12345);
  const total = params.sizeMb * MB;
  const large = 40;
  const largeSize = Math.floor((total * 0.7) / large);
  const small = Math.max(params.files - large, 1);
  const smallSize = Math.floor((total * 0.3) / small);
  process.stderr.write(`creating ${params.files} files (${params.sizeMb} MB) in ${dir}\n`);
  for (let i = 0; i < large; i++) {
    const sub = join(dir, "lib", `pkg${i % 8}`);
    await mkdir(sub, { recursive: true });
    await writeLarge(join(sub, `large${i}.${i % 2 ? "so" : "txt"}`), largeSize, i % 2 === 0, random);
  }
  const text = textBlock(random, Math.max(smallSize * 2, 4096));
  for (let i = 0; i < small; i++) {
    const sub = join(dir, "share", `d${i % 100}`, `e${i % 7}`);
    if (i < 700) await mkdir(sub, { recursive: true });
    const size = Math.max(1, Math.floor(smallSize * (0.5 + random())));
    const offset = Math.floor(random() * (text.length - Math.min(size, text.length)));
    const body = i % 2 === 0 ? text.subarray(offset, offset + size) : randomBytes(size);
    await writeFile(join(sub, `f${i}.${i % 2 === 0 ? "txt" : "bin"}`), body);
  }
  await writeFile(marker, wanted);
}

/** Child mode: packs the tree once, prints {seconds, maxRssMb, bytes}. */
async function child(dir: string, outDir: string, compression: Compression, preference: CompressorPreference): Promise<void> {
  const started = process.hrtime.bigint();
  const manifest = buildManifest({
    stack: { name: "bench", version: "1", file: "/bench.yaml", description: "benchmark" },
    target: "x86_64_v3",
    compiler: "os",
    baseImage: "debian:bookworm",
    specs: [],
    buildPrefix: dir,
    relocateIndex: "",
  });
  // `tar -c` of the directory gives the same entry names as the engine's getArchive: `<basename>/...`.
  // execa's stdout flows at once: hand it to the packer in the same tick.
  const tar = execa("tar", ["-cf", "-", "-C", dirname(dir), basename(dir)], { stdout: "pipe", buffer: { stdout: false } });
  tar.catch(() => {});
  const result = await packTarball({
    view: tar.stdout as Readable,
    top: "bench-1-x86_64_v3",
    outDir,
    compression,
    compressor: preference,
    files: { "install.sh": { content: "#!/bin/bash\n", mode: 0o755 } },
    manifest,
  });
  await tar;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const maxRssMb = process.resourceUsage().maxRSS / 1024;
  process.stdout.write(`${JSON.stringify({ seconds, maxRssMb, bytes: result.bytes, compressor: result.compressor })}\n`);
}

interface Row {
  name: string;
  seconds: number;
  bytes: number;
  maxRssMb?: number;
}

async function ours(dir: string, outDir: string, compression: Compression, preference: CompressorPreference): Promise<Row> {
  const self = fileURLToPath(import.meta.url);
  const run = await execa(process.execPath, [self, "--child", dir, outDir, compression, preference]);
  const report = JSON.parse(run.stdout.trim().split("\n").pop()!) as { seconds: number; maxRssMb: number; bytes: number; compressor: string };
  await rm(outDir, { recursive: true, force: true });
  return { name: `packTarball (${report.compressor})`, seconds: report.seconds, bytes: report.bytes, maxRssMb: report.maxRssMb };
}

async function baseline(dir: string, outFile: string, compressor: string): Promise<Row> {
  const started = process.hrtime.bigint();
  const script = `set -o pipefail; tar -cf - -C "$1" "$2" | ${compressor} > "$3"`;
  await execa("bash", ["-c", script, "bench", dirname(dir), basename(dir), outFile]);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const { size } = await stat(outFile);
  await rm(outFile, { force: true });
  return { name: `tar -c | ${compressor}`, seconds, bytes: size };
}

function table(rows: Row[], inputBytes: number, pairs: [number, number][]): string {
  const lines = [
    "| run | seconds | MB/s (input) | output MB | ratio | peak RSS MB |",
    "|---|---:|---:|---:|---:|---:|",
    ...rows.map(
      (r) =>
        `| ${r.name.replace(/\|/g, "\\|")} | ${r.seconds.toFixed(2)} | ${(inputBytes / MB / r.seconds).toFixed(0)} | ${(r.bytes / MB).toFixed(1)} | ${(r.bytes / inputBytes).toFixed(3)} | ${r.maxRssMb === undefined ? "" : r.maxRssMb.toFixed(0)} |`,
    ),
    "",
    ...pairs.map(([o, b]) => `${rows[o]!.name} takes ${(rows[o]!.seconds / rows[b]!.seconds).toFixed(2)}x the time of ${rows[b]!.name}`),
  ];
  return lines.join("\n");
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === "--child") {
    await child(args[1]!, args[2]!, args[3] as Compression, args[4] as CompressorPreference);
    return;
  }
  const params: Params = { sizeMb: Number(process.env["BENCH_SIZE_MB"] ?? 1024), files: Number(process.env["BENCH_FILES"] ?? 10000) };
  const dir = process.env["BENCH_DIR"] ?? `/tmp/stack-factory-bench-${params.sizeMb}mb-${params.files}/view`;
  await makeTree(dir, params);
  const du = await execa("du", ["-sb", dir]);
  const inputBytes = Number(du.stdout.split(/\s/)[0]);
  const work = join(dirname(dir), "out");
  await mkdir(work, { recursive: true });
  // Warm the page cache so the first run is not penalised.
  await execa("bash", ["-c", `tar -cf - -C "$1" "$2" > /dev/null`, "bench", dirname(dir), basename(dir)]);

  const rows: Row[] = [];
  rows.push(await baseline(dir, join(work, "b.tar.gz"), "gzip -6"));
  rows.push(await ours(dir, join(work, "zlib"), "gzip", "builtin"));
  rows.push(await baseline(dir, join(work, "b.tar.gz"), "pigz -6"));
  rows.push(await ours(dir, join(work, "pigz"), "gzip", "auto"));
  rows.push(await baseline(dir, join(work, "b.tar.zst"), "zstd -3 -T0"));
  rows.push(await ours(dir, join(work, "zstd"), "zstd", "auto"));
  const cpus = (await import("node:os")).cpus().length;
  process.stdout.write(`tree: ${dir}, ${params.files} files, ${(inputBytes / MB).toFixed(0)} MB; ${cpus} CPUs\n\n`);
  process.stdout.write(`${table(rows, inputBytes, [[1, 0], [3, 2], [5, 4]])}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});

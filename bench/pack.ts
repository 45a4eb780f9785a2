/**
 * Packing benchmark, on one tree of >= 1 GB and >= 10,000 files (half compressible text, half random bytes).
 * The factory packs inside the build container (packInContainer): it is timed against issue 23's naive work in the
 * same container, `tar -c | <compressor>` of the same tree into a file and then `sha256sum` of every file, timed
 * together; one compression after the other, each in one child process that reports its peak RSS; and
 * packInContainer writing into an output directory the container shares (sharedOutDir), the figure that counts.
 * BENCH_HOST=1 adds the same packer run on this machine (packOnHost: pack-tree.py and GNU tar here) against the
 * same commands run here. Run with bench/run.sh.
 *   BENCH_SIZE_MB (default 1024), BENCH_FILES (default 10000), BENCH_DIR (default /tmp/stack-factory-bench-...),
 *   BENCH_REPEAT (default 1: runs of each pair, alternating; the table shows the fastest of each),
 *   BENCH_ONLY (gzip,pigz,zstd: the pairs to run), BENCH_IMAGE (default: built from the test image).
 * The tree is reused when it exists with the same parameters; it is bind-mounted read-only into the container.
 */
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { connectEngine, startContainer } from "../src/docker/index.js";
import { packInContainer, type PackContainer } from "../src/package/container-pack.js";
import { NoNetworkContainer } from "./no-network-container.js";
import { buildManifest } from "../src/package/manifest.js";
import type { Compression } from "../src/package/compressor.js";
import { packOnHost } from "../tests/helpers/pack-on-host.js";
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

function benchManifest(dir: string) {
  return buildManifest({
    stack: { name: "bench", version: "1", file: "/bench.yaml", description: "benchmark" },
    target: "x86_64_v3",
    compiler: "os",
    baseImage: "debian:bookworm",
    specs: [],
    buildPrefix: dir,
    relocateIndex: "",
  });
}

const GENERATED = { "install.sh": { content: "#!/bin/bash\n", mode: 0o755 } };

type GzipProgram = "pigz" | "gzip";

/** Child mode (host): packs the tree once with packOnHost, prints {seconds, maxRssMb, bytes}. */
async function child(dir: string, outDir: string, compression: Compression, gzipProgram: GzipProgram): Promise<void> {
  const started = process.hrtime.bigint();
  const result = await packOnHost({
    view: dir,
    top: "bench-1-x86_64_v3",
    outDir,
    compression,
    gzipProgram,
    files: GENERATED,
    manifest: benchManifest(dir),
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const maxRssMb = process.resourceUsage().maxRSS / 1024;
  process.stdout.write(
    `${JSON.stringify({ seconds, maxRssMb, bytes: result.bytes, compressor: result.compressor })}\n`,
  );
}

/** The container the tree is packed in: the test image with the packing tools, the tree mounted read-only. */
const IMAGE_DOCKERFILE = (base: string) => `FROM ${base}
RUN apt-get update && apt-get install -y --no-install-recommends tar gzip pigz zstd python3 && rm -rf /var/lib/apt/lists/*
`;
const MOUNT = "/sf/bench";
const OUT = "/sf/stage/baseline.out";
const SUMS = "/sf/stage/baseline.sums";

/**
 * Issue 23's naive work, timed as one: `tar -c | <compressor>` of the tree into a file, THEN `sha256sum` of every
 * file of the tree (one sha256sum after the other, as a shell user would write it); prints the tarball's size.
 */
function naiveScript(tree: string, command: string): string {
  return [
    "set -o pipefail",
    `tar -cf - -C ${MOUNT} ${tree} | ${command} > ${OUT}`,
    `(cd ${MOUNT} && find ${tree} -type f -print0 | xargs -0 sha256sum > ${SUMS})`,
    `stat -c %s ${OUT}`,
  ].join(" && ");
}

async function ensureImage(): Promise<string> {
  if (process.env["BENCH_IMAGE"]) return process.env["BENCH_IMAGE"];
  const base = process.env["STACK_FACTORY_TEST_IMAGE"] ?? "stack-factory-test/debian:bookworm";
  const dockerfile = IMAGE_DOCKERFILE(base);
  const { createHash } = await import("node:crypto");
  const tag = `stack-factory-bench/packer:${createHash("sha256").update(dockerfile).digest("hex").slice(0, 12)}`;
  const present = await execa("docker", ["image", "inspect", tag], { reject: false });
  if (present.exitCode !== 0) {
    process.stderr.write(`building ${tag} from ${base}\n`);
    // Host network: apt reaches its mirror even where the engine's default bridge has no route out.
    await execa("docker", ["build", "--network", "host", "-q", "-t", tag, "-"], { input: dockerfile });
  }
  return tag;
}

interface Pair {
  /** `tar -c | <command>` */
  command: string;
  compression: Compression;
  gzipProgram: "pigz" | "gzip";
}

const PAIRS: Record<string, Pair> = {
  gzip: { command: "gzip -6", compression: "gzip", gzipProgram: "gzip" },
  pigz: { command: "pigz -6", compression: "gzip", gzipProgram: "pigz" },
  zstd: { command: "zstd -3 -T0", compression: "zstd", gzipProgram: "pigz" },
};

/** CPU seconds used so far: by the container (its cgroup), by the engine (dockerd and its children), by this process. */
interface Cpu {
  container: number;
  engine: number;
  node: number;
}

async function cpuNow(containerId: string): Promise<Cpu> {
  const read = (path: string) => readFile(path, "utf8").catch(() => "");
  const cgroup =
    (await read(`/sys/fs/cgroup/cpuacct/docker/${containerId}/cpuacct.usage`)) ||
    (await read(`/sys/fs/cgroup/system.slice/docker-${containerId}.scope/cpu.stat`));
  const container = cgroup.startsWith("usage_usec")
    ? Number(/usage_usec (\d+)/.exec(cgroup)?.[1] ?? 0) / 1e6
    : Number(cgroup || 0) / 1e9;
  let engine = 0;
  const pid = (await execa("pgrep", ["-xo", "dockerd"], { reject: false })).stdout.trim();
  const stat = pid ? await read(`/proc/${pid}/stat`) : "";
  if (stat) {
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    engine = (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / 100;
  }
  const usage = process.resourceUsage();
  return { container, engine, node: (usage.userCPUTime + usage.systemCPUTime) / 1e6 };
}

const cpuDelta = (a: Cpu, b: Cpu): Cpu => ({
  container: b.container - a.container,
  engine: b.engine - a.engine,
  node: b.node - a.node,
});

async function timed<T>(containerId: string, run: () => Promise<T>): Promise<{ seconds: number; cpu: Cpu; value: T }> {
  const before = await cpuNow(containerId);
  const started = process.hrtime.bigint();
  const value = await run();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { seconds, cpu: cpuDelta(before, await cpuNow(containerId)), value };
}

async function inContainer(container: PackContainer, argv: string[]): Promise<string> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const { exitCode } = await container.exec(argv, { onStdout: (c) => out.push(c), onStderr: (c) => err.push(c) });
  if (exitCode !== 0) throw new Error(`${argv.join(" ")}: exit code ${exitCode}: ${Buffer.concat(err).toString()}`);
  return Buffer.concat(out).toString();
}

type Mount = { host: string; container: string; readOnly: boolean };

/** A build container as the factory starts them, or one without a network when the engine cannot attach one. */
async function startBenchContainer(
  image: string,
  mounts: Mount[],
): Promise<PackContainer & { id: string; remove(): Promise<void> }> {
  try {
    return await startContainer(await connectEngine(), { image, mounts });
  } catch (error) {
    process.stderr.write(
      `a factory container did not start (${(error as Error).message.split("\n")[0]}); using one without a network\n`,
    );
    return await NoNetworkContainer.start(image, mounts);
  }
}

/**
 * Child mode (container): in one container, the naive work (`tar -c | <command>` of the tree into a file in the
 * container, then sha256sum of every file), then packInContainer of the same tree copied out into outDir on this
 * machine, then packInContainer writing into outDir shared with the container, `repeat` times alternating; prints
 * the runs and this process's peak RSS.
 */
async function containerChild(dir: string, outDir: string, pairName: string, repeat: number): Promise<void> {
  const pair = PAIRS[pairName]!;
  const image = await ensureImage();
  const mount = { host: dirname(dir), container: MOUNT, readOnly: true };
  // The output directory shared with the container, for the run that writes the tarball straight into it.
  await mkdir(outDir, { recursive: true });
  const shared = { host: outDir, container: "/sf/out", readOnly: false };
  const container = await startBenchContainer(image, [mount, shared]);
  try {
    const view = `${MOUNT}/${basename(dir)}`;
    await inContainer(container, ["mkdir", "-p", "/sf/stage"]);
    // Warm the page cache from inside, as both runs read it.
    await inContainer(container, ["sh", "-c", `tar -cf - -C ${MOUNT} ${basename(dir)} > /dev/null`]);
    const baseline: number[] = [];
    const ours: number[] = [];
    const baselineCpu: Cpu[] = [];
    const oursCpu: Cpu[] = [];
    const direct: number[] = [];
    const directCpu: Cpu[] = [];
    let baselineBytes = 0;
    let result: Awaited<ReturnType<typeof packInContainer>> | undefined;
    for (let i = 0; i < repeat; i++) {
      const b = await timed(container.id, () =>
        inContainer(container, ["bash", "-c", naiveScript(basename(dir), pair.command)]),
      );
      baseline.push(b.seconds);
      baselineCpu.push(b.cpu);
      baselineBytes = Number(b.value.trim());
      await inContainer(container, ["rm", "-f", OUT, SUMS]);
      const o = await timed(container.id, () =>
        packInContainer({
          container,
          view,
          top: "bench-1-x86_64_v3",
          outDir,
          compression: pair.compression,
          gzipProgram: pair.gzipProgram,
          checkDigest: process.env["BENCH_CHECK_DIGEST"] === "1",
          files: GENERATED,
          manifest: benchManifest(view),
        }),
      );
      ours.push(o.seconds);
      oursCpu.push(o.cpu);
      result = o.value;
      await rm(result.path);
      const d = await timed(container.id, () =>
        packInContainer({
          container,
          view,
          top: "bench-1-x86_64_v3",
          outDir,
          sharedOutDir: shared.container,
          compression: pair.compression,
          gzipProgram: pair.gzipProgram,
          files: GENERATED,
          manifest: benchManifest(view),
        }),
      );
      direct.push(d.seconds);
      directCpu.push(d.cpu);
      if (d.value.sha256 !== result.sha256) throw new Error(`the shared-directory tarball differs from the copied one`);
      await rm(d.value.path);
    }
    await rm(outDir, { recursive: true, force: true });
    const maxRssMb = process.resourceUsage().maxRSS / 1024;
    process.stdout.write(
      `${JSON.stringify({ baseline, ours, direct, baselineCpu, oursCpu, directCpu, baselineBytes, bytes: result!.bytes, compressor: result!.compressor, maxRssMb })}\n`,
    );
  } finally {
    await container.remove();
  }
}

/** The 1, 5 and 15 minute load averages of this machine, as `uptime` shows them. */
async function loadAverage(): Promise<string> {
  return (await readFile("/proc/loadavg", "utf8")).split(" ").slice(0, 3).join(" ");
}

interface Row {
  name: string;
  seconds: number;
  bytes: number;
  maxRssMb?: number;
  cpu?: Cpu;
}

async function ours(dir: string, outDir: string, compression: Compression, gzipProgram: GzipProgram): Promise<Row> {
  const self = fileURLToPath(import.meta.url);
  const run = await execa(process.execPath, [self, "--child", dir, outDir, compression, gzipProgram]);
  const report = JSON.parse(run.stdout.trim().split("\n").pop()!) as {
    seconds: number;
    maxRssMb: number;
    bytes: number;
    compressor: string;
  };
  await rm(outDir, { recursive: true, force: true });
  return {
    name: `packOnHost (${report.compressor})`,
    seconds: report.seconds,
    bytes: report.bytes,
    maxRssMb: report.maxRssMb,
  };
}

async function baseline(dir: string, outFile: string, compressor: string): Promise<Row> {
  const started = process.hrtime.bigint();
  // The same naive work as in the container: the pipeline into a file, then sha256sum of every file.
  const script = [
    "set -o pipefail",
    `tar -cf - -C "$1" "$2" | ${compressor} > "$3"`,
    `(cd "$1" && find "$2" -type f -print0 | xargs -0 sha256sum > "$3.sums")`,
  ].join(" && ");
  await execa("bash", ["-c", script, "bench", dirname(dir), basename(dir), outFile]);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const { size } = await stat(outFile);
  await rm(outFile, { force: true });
  await rm(`${outFile}.sums`, { force: true });
  return { name: `host: tar -c | ${compressor} > file, then sha256sum of every file`, seconds, bytes: size };
}

function table(rows: Row[], inputBytes: number, pairs: [number, number][]): string {
  const baselineOf = new Map(pairs.map(([o, b]) => [o, b]));
  const times = (i: number): string => {
    const b = baselineOf.get(i);
    return b === undefined ? "" : (rows[i]!.seconds / rows[b]!.seconds).toFixed(2);
  };
  const lines = [
    "| run | seconds | × baseline | MB/s (input) | output MB | ratio | peak RSS MB | CPU s: container + engine + node |",
    "|---|---:|---:|---:|---:|---:|---:|---|",
    ...rows.map(
      (r, i) =>
        `| ${r.name.replace(/\|/g, "\\|")} | ${r.seconds.toFixed(2)} | ${times(i)} | ${(inputBytes / MB / r.seconds).toFixed(0)} | ${(r.bytes / MB).toFixed(1)} | ${(r.bytes / inputBytes).toFixed(3)} | ${r.maxRssMb === undefined ? "" : r.maxRssMb.toFixed(0)} | ${r.cpu === undefined ? "" : `${r.cpu.container.toFixed(2)} + ${r.cpu.engine.toFixed(2)} + ${r.cpu.node.toFixed(2)}`} |`,
    ),
    "",
    ...pairs.map(
      ([o, b]) =>
        `${rows[o]!.name} takes ${(rows[o]!.seconds / rows[b]!.seconds).toFixed(2)}x the time of ${rows[b]!.name}`,
    ),
  ];
  return lines.join("\n");
}

/** Runs each compression's container child (the naive work and both packInContainer runs, alternating). */
async function containerRows(
  dir: string,
  work: string,
  only: string[],
  repeat: number,
): Promise<{ rows: Row[]; pairs: [number, number][]; runs: string[] }> {
  const self = fileURLToPath(import.meta.url);
  const rows: Row[] = [];
  const pairs: [number, number][] = [];
  const runs: string[] = [];
  for (const name of only) {
    const loadBefore = await loadAverage();
    const run = await execa(
      process.execPath,
      [self, "--container-child", dir, join(work, name), name, String(repeat)],
      { stderr: "inherit" },
    );
    const report = JSON.parse(run.stdout.trim().split("\n").pop()!) as {
      baseline: number[];
      ours: number[];
      direct: number[];
      baselineCpu: Cpu[];
      oursCpu: Cpu[];
      directCpu: Cpu[];
      baselineBytes: number;
      bytes: number;
      compressor: string;
      maxRssMb: number;
    };
    const best = (xs: number[]) => Math.min(...xs);
    const at = (xs: number[]) => xs.indexOf(best(xs));
    rows.push({
      name: `container: tar -c | ${PAIRS[name]!.command} > file, then sha256sum of every file`,
      seconds: best(report.baseline),
      bytes: report.baselineBytes,
      cpu: report.baselineCpu[at(report.baseline)]!,
    });
    rows.push({
      name: `packInContainer (${report.compressor})`,
      seconds: best(report.ours),
      bytes: report.bytes,
      maxRssMb: report.maxRssMb,
      cpu: report.oursCpu[at(report.ours)]!,
    });
    pairs.push([rows.length - 1, rows.length - 2]);
    rows.push({
      name: `packInContainer, out dir shared (${report.compressor})`,
      seconds: best(report.direct),
      bytes: report.bytes,
      cpu: report.directCpu[at(report.direct)]!,
    });
    pairs.push([rows.length - 1, rows.length - 3]);
    const list = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(", ");
    runs.push(
      `${name}: baseline ${list(report.baseline)} s; packInContainer ${list(report.ours)} s; out dir shared ${list(report.direct)} s; load average ${loadBefore} before, ${await loadAverage()} after`,
    );
  }
  return { rows, pairs, runs };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === "--child") {
    await child(args[1]!, args[2]!, args[3] as Compression, args[4] as GzipProgram);
    return;
  }
  if (args[0] === "--container-child") {
    await containerChild(args[1]!, args[2]!, args[3]!, Number(args[4]));
    return;
  }
  const params: Params = {
    sizeMb: Number(process.env["BENCH_SIZE_MB"] ?? 1024),
    files: Number(process.env["BENCH_FILES"] ?? 10000),
  };
  const dir = process.env["BENCH_DIR"] ?? `/tmp/stack-factory-bench-${params.sizeMb}mb-${params.files}/view`;
  await makeTree(dir, params);
  const du = await execa("du", ["-sb", dir]);
  const inputBytes = Number(du.stdout.split(/\s/)[0]);
  const work = join(dirname(dir), "out");
  await mkdir(work, { recursive: true });
  // Warm the page cache so the first run is not penalised.
  await execa("bash", ["-c", `tar -cf - -C "$1" "$2" > /dev/null`, "bench", dirname(dir), basename(dir)]);

  const repeat = Math.max(1, Number(process.env["BENCH_REPEAT"] ?? 1));
  const only = (process.env["BENCH_ONLY"] ?? "gzip,pigz,zstd").split(",").filter((p) => p in PAIRS);
  const { rows, pairs, runs } = await containerRows(dir, work, only, repeat);
  if (process.env["BENCH_HOST"] === "1") {
    rows.push(await baseline(dir, join(work, "b.tar.gz"), "gzip -6"));
    rows.push(await ours(dir, join(work, "gzip"), "gzip", "gzip"));
    pairs.push([rows.length - 1, rows.length - 2]);
    rows.push(await baseline(dir, join(work, "b.tar.gz"), "pigz -6"));
    rows.push(await ours(dir, join(work, "pigz"), "gzip", "pigz"));
    pairs.push([rows.length - 1, rows.length - 2]);
    rows.push(await baseline(dir, join(work, "b.tar.zst"), "zstd -3 -T0"));
    rows.push(await ours(dir, join(work, "zstd"), "zstd", "pigz"));
    pairs.push([rows.length - 1, rows.length - 2]);
  }
  const cpus = (await import("node:os")).cpus().length;
  process.stdout.write(
    `tree: ${dir}, ${params.files} files, ${(inputBytes / MB).toFixed(0)} MB; ${cpus} CPUs; fastest of ${repeat} run(s)\n\n`,
  );
  process.stdout.write(`${table(rows, inputBytes, pairs)}\n\n${runs.join("\n")}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});

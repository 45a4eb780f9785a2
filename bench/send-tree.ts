/**
 * Sending a tree to an engine of another host (what a run does once per changed Spack, spack-packages, repository or
 * mirror tree): listTree + treeDigest + packTree into the engine's archive API, against `tar -c | docker exec -i
 * CONTAINER tar -x` of the same tree into the same container through the same engine, measured in the same run,
 * alternating. Also the cost of a run that sends nothing (list and digest only). Run with bench/run.sh send-tree.
 *   BENCH_FILES (default 10000), BENCH_SIZE_MB (default 100), BENCH_REPEAT (default 3)
 *   BENCH_ENGINE (default the local engine; e.g. tcp://127.0.0.1:23760 with BENCH_TLS_DIR=/var/lib/stack-factory-docker2-tls/client)
 *   STACK_FACTORY_TEST_IMAGE (default stack-factory-test/debian:bookworm)
 */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { connectEngine, packTree, startContainer } from "../src/docker/index.js";
import { listTree, treeDigest } from "../src/fs/tree.js";
import { prng, textBlock } from "./text-data.js";

const files = Number(process.env["BENCH_FILES"] ?? 10000);
const sizeMb = Number(process.env["BENCH_SIZE_MB"] ?? 100);
const repeat = Number(process.env["BENCH_REPEAT"] ?? 3);
const image = process.env["STACK_FACTORY_TEST_IMAGE"] ?? "stack-factory-test/debian:bookworm";
const url = process.env["BENCH_ENGINE"];
const tlsDir = process.env["BENCH_TLS_DIR"];

/** A tree shaped like a package repository: many small text files in many directories, a few larger ones. */
async function makeTree(dir: string): Promise<void> {
  const marker = join(dir, ".bench-complete");
  const wanted = JSON.stringify({ files, sizeMb });
  if ((await readFile(marker, "utf8").catch(() => "")) === wanted) return;
  const random = prng(7);
  const text = textBlock(random, 1 << 20);
  const per = Math.max(1, Math.floor((sizeMb * (1 << 20)) / files));
  for (let i = 0; i < files; i++) {
    const sub = join(dir, "packages", `p${i % 900}`);
    if (i < 900) await mkdir(sub, { recursive: true });
    const size = Math.max(1, Math.floor(per * (0.2 + 1.6 * random())));
    const body = i % 10 === 0 ? randomBytes(size) : text.subarray(0, Math.min(size, text.length));
    await writeFile(join(sub, `f${i}.py`), body);
  }
  await writeFile(marker, wanted);
}

function dockerArgs(): string[] {
  if (url === undefined) return [];
  const tls =
    tlsDir === undefined
      ? []
      : [
          "--tlsverify",
          "--tlscacert",
          join(tlsDir, "ca.pem"),
          "--tlscert",
          join(tlsDir, "cert.pem"),
          "--tlskey",
          join(tlsDir, "key.pem"),
        ];
  return ["-H", url, ...tls];
}

async function main(): Promise<void> {
  const dir = join(tmpdir(), `stack-factory-bench-tree-${files}-${sizeMb}`);
  await makeTree(dir);
  const engine = await connectEngine(url === undefined ? {} : { endpoint: { url, ...(tlsDir ? { tlsDir } : {}) } });
  const container = await startContainer(engine, { image, user: "0:0" });
  const run = async (argv: string[]) => {
    const { exitCode } = await container.exec(argv);
    if (exitCode !== 0) throw new Error(`${argv.join(" ")}: exit ${exitCode}`);
  };
  const ours: number[] = [];
  const base: number[] = [];
  const idle: number[] = [];
  try {
    for (let i = 0; i < repeat; i++) {
      await run(["rm", "-rf", "/tmp/ours", "/tmp/base"]);
      await run(["mkdir", "-p", "/tmp/ours", "/tmp/base"]);
      let t = performance.now();
      const entries = await listTree(dir);
      treeDigest(entries);
      await container.putArchive("/tmp/ours", packTree(entries));
      ours.push((performance.now() - t) / 1000);

      t = performance.now();
      const tar = execa("tar", ["-C", dir, "--exclude=.git", "--exclude=__pycache__", "-cf", "-", "."], {
        buffer: { stdout: false },
      });
      const unpack = execa("docker", [...dockerArgs(), "exec", "-i", container.id, "tar", "-x", "-C", "/tmp/base"]);
      tar.stdout!.pipe(unpack.stdin!);
      await Promise.all([tar, unpack]);
      base.push((performance.now() - t) / 1000);

      t = performance.now();
      treeDigest(await listTree(dir));
      idle.push((performance.now() - t) / 1000);
    }
  } finally {
    await container.remove();
  }
  const best = (xs: number[]) => Math.min(...xs);
  const [load] = (await readFile("/proc/loadavg", "utf8")).split(" ");
  process.stdout.write(
    [
      `tree: ${files} files, ${sizeMb} MB; engine ${engine.where}; best of ${repeat}; load ${load}`,
      "| measure | seconds |",
      "|---|---:|",
      `| factory: list, digest, packTree → putArchive | ${best(ours).toFixed(2)} |`,
      `| baseline: tar -c \\| docker exec -i tar -x | ${best(base).toFixed(2)} |`,
      `| factory / baseline | ${(best(ours) / best(base)).toFixed(2)} |`,
      `| a run that sends nothing (list and digest) | ${best(idle).toFixed(2)} |`,
      "",
    ].join("\n"),
  );
}

await main();

import { mkdir, readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadStack } from "../../src/config/index.js";
import { ensureImage, startContainer, type BuildContainer, type Engine } from "../../src/docker/index.js";
import { BuildError, CancelledError } from "../../src/errors.js";
import { packInContainer, type ContainerPackOptions } from "../../src/package/container-pack.js";
import { buildManifest } from "../../src/package/manifest.js";
import { verifyTarball } from "../../src/package/verify.js";
import { planImage } from "../../src/plan/plan.js";
import { loadTemplates } from "../../src/render/templates.js";
import { requireEngine, requireTestImage } from "./helpers/engine.js";
import { tempDir, writeTestStack } from "./helpers/stack.js";

/**
 * The packer in a real build container (the builder image, its user): the view filled there, packed there,
 * the tarball copied out through the engine API.
 */
const VIEW = "/sf/view/._demo/abc123";
const TOP = "demo-1.0-x86_64_v3";
let engine: Engine;
let image: string;
let work: string;
let container: BuildContainer;

async function run(box: BuildContainer, script: string): Promise<void> {
  const err: Buffer[] = [];
  const { exitCode } = await box.exec(["bash", "-c", script], { onStderr: (c) => err.push(c) });
  expect(exitCode, Buffer.concat(err).toString()).toBe(0);
}

async function startFilled(): Promise<BuildContainer> {
  const box = await startContainer(engine, { image });
  await run(
    box,
    `set -e; mkdir -p ${VIEW}/bin ${VIEW}/lib ${VIEW}/share/empty
     printf '#!/bin/sh\\necho hi\\n' > ${VIEW}/bin/hi; chmod 755 ${VIEW}/bin/hi
     head -c 3000000 /dev/urandom > ${VIEW}/lib/libz.so.1; chmod 555 ${VIEW}/lib/libz.so.1
     ln -s libz.so.1 ${VIEW}/lib/libz.so; echo data > ${VIEW}/share/a; ln ${VIEW}/share/a ${VIEW}/share/b
     printf 'x' > "${VIEW}/share/odd name \\\\ with\\ttab"`,
  );
  return box;
}

function options(overrides: Partial<ContainerPackOptions> = {}): ContainerPackOptions {
  return {
    container,
    view: VIEW,
    top: TOP,
    outDir: join(work, "out"),
    files: {
      "install.sh": { content: "#!/bin/bash\necho install\n", mode: 0o755 },
      "modules/demo/1.0.lua": "-- module\n",
    },
    manifest: buildManifest({
      stack: { name: "demo", version: "1.0", file: "/demo.yaml", description: "demo" },
      target: "x86_64_v3",
      compiler: "os",
      baseImage: "test",
      specs: [],
      buildPrefix: VIEW,
      relocateIndex: "",
    }),
    ...overrides,
  };
}

beforeAll(async () => {
  engine = await requireEngine();
  await requireTestImage(engine);
  work = await tempDir("container-pack");
  const stack = await loadStack(await writeTestStack(work));
  const planned = planImage(stack, await loadTemplates());
  await ensureImage(engine, { tag: planned.tag, files: planned.files });
  image = planned.tag;
  container = await startFilled();
});

afterAll(async () => {
  await container?.remove();
  if (work) await rm(work, { recursive: true, force: true });
});

describe("packInContainer in a build container", () => {
  it("packs the same bytes twice, with zstd and with pigz, and verify accepts them", async () => {
    for (const compression of ["zstd", "gzip"] as const) {
      const first = await packInContainer(options({ compression }));
      const bytes = await readFile(first.path);
      const second = await packInContainer(options({ compression, checkDigest: true }));
      expect((await readFile(second.path)).equals(bytes)).toBe(true);
      expect(first.compressor).toBe(compression === "zstd" ? "zstd -3 -T0" : "pigz -6 -n");
      const report = await verifyTarball(second.path);
      expect(report.problems).toEqual([]);
      expect(report.files).toBe(first.files);
    }
    const names = (await execa("tar", ["-tzf", join(work, "out", `${TOP}.tar.gz`)])).stdout.split("\n");
    expect(names.slice(0, 2)).toEqual([`${TOP}/`, `${TOP}/install.sh`]);
    expect(names.slice(-2)).toEqual([`${TOP}/manifest.json`, `${TOP}/SHA256SUMS`]);
    expect(names).toContain(`${TOP}/view/share/empty/`);
    expect((await readdir(join(work, "out"))).sort()).toEqual([
      `${TOP}.tar.gz`,
      `${TOP}.tar.gz.sha256`,
      `${TOP}.tar.zst`,
      `${TOP}.tar.zst.sha256`,
    ]);
  });

  it("fails, leaving no tarball, when a view file cannot be read", async () => {
    const out = join(work, "fail");
    await run(container, `touch ${VIEW}/share/locked && chmod 000 ${VIEW}/share/locked`);
    try {
      const error = await packInContainer(options({ outDir: out })).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BuildError);
      expect((error as Error).message).toMatch(/locked/);
      expect(await readdir(out)).toEqual([]);
    } finally {
      await run(container, `rm -f ${VIEW}/share/locked`);
    }
  });

  it("leaves no tarball and no container when cancelled mid-way", async () => {
    const box = await startFilled();
    await run(box, `head -c 400000000 /dev/urandom > ${VIEW}/big.bin`);
    const out = join(work, "cancel");
    await mkdir(out);
    const controller = new AbortController();
    const pending = packInContainer(
      options({ container: box, outDir: out, compression: "gzip", gzipProgram: "gzip", signal: controller.signal }),
    );
    setTimeout(() => controller.abort(), 1500);
    await expect(pending).rejects.toBeInstanceOf(CancelledError);
    expect(await readdir(out)).toEqual([]);
    // Cancelling removes the container; the removal may still be under way.
    let gone = false;
    for (let i = 0; i < 100 && !gone; i++) {
      gone = (await execa("docker", ["inspect", box.id], { reject: false })).exitCode !== 0;
      if (!gone) await new Promise((r) => setTimeout(r, 100));
    }
    expect(gone).toBe(true);
  });
});

/** verify on tarballs made as the factory makes them (pack-tree.py and GNU tar, packOnHost), then damaged. */
import { chmod, link, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Compression } from "../../src/package/compressor.js";
import { buildManifest } from "../../src/package/manifest.js";
import { verifyTarball } from "../../src/package/verify.js";
import { packOnHost } from "../helpers/pack-on-host.js";

let work: string;
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), "sf-verify-packed-"));
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

const manifest = buildManifest({
  stack: { name: "demo", version: "1", file: "/s/demo.yaml", description: "" },
  target: "x86_64_v3",
  compiler: "os",
  baseImage: "debian:bookworm",
  specs: [],
  buildPrefix: "/sf/view/._default/h",
  relocateIndex: "",
});

/** A view with a program, a symlink to it and a hardlink of it, packed with an installer beside it. */
async function goodTarball(compression: Compression = "gzip"): Promise<string> {
  const view = join(work, compression, "h");
  await mkdir(join(view, "bin"), { recursive: true });
  await writeFile(join(view, "bin/tool"), "tool body\n");
  await chmod(join(view, "bin/tool"), 0o755);
  await symlink("tool", join(view, "bin/alias"));
  await link(join(view, "bin/tool"), join(view, "bin/hard"));
  const result = await packOnHost({
    view,
    top: "demo-1-x86_64_v3",
    outDir: join(work, compression),
    compression,
    files: { "install.sh": { content: "#!/bin/bash\n", mode: 0o755 } },
    manifest,
  });
  return result.path;
}

describe("verifyTarball on packed tarballs", () => {
  it("accepts a tarball as the factory packs it, gzip or zstd", async () => {
    for (const compression of ["gzip", "zstd"] as const) {
      const report = await verifyTarball(await goodTarball(compression));
      expect(report.problems).toEqual([]);
      expect(report.ok).toBe(true);
      expect(report.top).toBe("demo-1-x86_64_v3");
      // install.sh, view/bin/tool, view/bin/hard, manifest.json, SHA256SUMS
      expect(report.files).toBe(5);
      expect(report.baseImage).toBe(manifest.base_image);
    }
  });

  it("rejects a tampered file, naming it", async () => {
    const path = await goodTarball();
    const tar = gunzipSync(await readFile(path));
    const at = tar.indexOf("tool body");
    tar.write("TOOL", at);
    await writeFile(path, gzipSync(tar));
    const report = await verifyTarball(path);
    expect(report.ok).toBe(false);
    expect(report.problems.some((p) => p.startsWith("view/bin/tool: sha256") && p.includes("SHA256SUMS"))).toBe(true);
    expect(report.problems.some((p) => p.startsWith("view/bin/tool: sha256") && p.includes("manifest.json"))).toBe(
      true,
    );
    expect(report.problems.some((p) => p.includes("does not match demo-1-x86_64_v3.tar.gz.sha256"))).toBe(true);
  });

  it("rejects a wrong sidecar checksum", async () => {
    const path = await goodTarball();
    await writeFile(`${path}.sha256`, `${"0".repeat(64)}  demo-1-x86_64_v3.tar.gz\n`);
    const report = await verifyTarball(path);
    expect(report.ok).toBe(false);
    expect(report.problems).toEqual([
      expect.stringMatching(/does not match demo-1-x86_64_v3\.tar\.gz\.sha256 \(0{64}\)/),
    ]);
  });

  it("reports a truncated tarball instead of throwing", async () => {
    const truncated = join(work, "truncated.tar.gz");
    await writeFile(truncated, (await readFile(await goodTarball())).subarray(0, 200));
    const cut = await verifyTarball(truncated);
    expect(cut.ok).toBe(false);
    expect(cut.problems.some((p) => p.startsWith("cannot read the archive"))).toBe(true);
  });
});

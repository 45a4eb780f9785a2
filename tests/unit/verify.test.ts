import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { pack as tarPack, type Header } from "tar-stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { InputError } from "../../src/errors.js";
import { buildManifest } from "../../src/package/manifest.js";
import { verifyTarball } from "../../src/package/verify.js";

type Entry = { header: Partial<Header> & { name: string }; body?: string };

async function tarOf(entries: Entry[]): Promise<Buffer> {
  const tar = tarPack();
  for (const { header, body } of entries) tar.entry({ mtime: new Date(0), ...header }, body ?? "");
  tar.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of tar as unknown as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

const sha256 = (data: string | Buffer): string => createHash("sha256").update(data).digest("hex");

let work: string;
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), "sf-verify-"));
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

/** A gzipped archive of `entries` plus consistent SHA256SUMS and manifest.json, so only the crafted entry is wrong. */
async function crafted(name: string, entries: Entry[]): Promise<string> {
  const files: Record<string, string> = {};
  for (const { header, body } of entries) {
    if ((header.type ?? "file") === "file" && body !== undefined)
      files[header.name.replace(/^top\//, "")] = sha256(body);
  }
  const manifestText = JSON.stringify({ ...manifest, files });
  const sums = Object.entries({ ...files, "manifest.json": sha256(manifestText) })
    .map(([p, h]) => `${h}  ${p}\n`)
    .join("");
  const tar = await tarOf([
    { header: { name: "top/", type: "directory" } },
    ...entries,
    { header: { name: "top/manifest.json" }, body: manifestText },
    { header: { name: "top/SHA256SUMS" }, body: sums },
  ]);
  const path = join(work, `${name}.tar.gz`);
  await writeFile(path, gzipSync(tar));
  return path;
}

describe("verifyTarball", () => {
  it("accepts a crafted archive with nothing wrong (the control for the cases below)", async () => {
    const report = await verifyTarball(await crafted("control", [{ header: { name: "top/a.txt" }, body: "a\n" }]));
    expect(report.problems).toEqual([]);
  });

  it.each([
    ["dotdot", { header: { name: "top/../evil" }, body: "x" }, /top\/\.\.\/evil.*'\.\.' in path/],
    ["absolute", { header: { name: "/abs" }, body: "x" }, /"\/abs": absolute path/],
    ["second-top", { header: { name: "other/file" }, body: "x" }, /second top-level entry/],
    [
      "escaping-symlink",
      { header: { name: "top/view/passwd", type: "symlink", linkname: "../../etc/passwd" } },
      /symlink to \.\.\/\.\.\/etc\/passwd leaves top\//,
    ],
    [
      "absolute-symlink",
      { header: { name: "top/passwd", type: "symlink", linkname: "/etc/passwd" } },
      /absolute path \/etc\/passwd/,
    ],
    [
      "escaping-hardlink",
      { header: { name: "top/shadow", type: "link", linkname: "etc/shadow" } },
      /hardlink to etc\/shadow leaves top\//,
    ],
    [
      "char-device",
      { header: { name: "top/null", type: "character-device", devmajor: 1, devminor: 3 } },
      /character-device entries are not allowed/,
    ],
    ["fifo", { header: { name: "top/pipe", type: "fifo" } }, /fifo entries are not allowed/],
  ] as [string, Entry, RegExp][])("rejects %s entries", async (name, entry, pattern) => {
    const report = await verifyTarball(await crafted(name, [entry]));
    expect(report.ok).toBe(false);
    expect(report.problems.some((p) => pattern.test(p))).toBe(true);
  });

  it("rejects a top directory that reads as a command-line option", async () => {
    const tar = await tarOf([
      { header: { name: "--checkpoint-action=exec=touch x/", type: "directory" } },
      { header: { name: "--checkpoint-action=exec=touch x/a.txt" }, body: "a\n" },
    ]);
    const path = join(work, "option-top.tar.gz");
    await writeFile(path, gzipSync(tar));
    const report = await verifyTarball(path);
    expect(report.ok).toBe(false);
    expect(report.problems.some((p) => /top directory starting with '-'/.test(p))).toBe(true);
  });

  it("reports a manifest without its required keys and files missing from SHA256SUMS", async () => {
    const tar = await tarOf([
      { header: { name: "top/", type: "directory" } },
      { header: { name: "top/a.txt" }, body: "a" },
      { header: { name: "top/manifest.json" }, body: JSON.stringify({ format_version: 1, files: {} }) },
      { header: { name: "top/SHA256SUMS" }, body: "" },
    ]);
    const path = join(work, "thin.tar.gz");
    await writeFile(path, gzipSync(tar));
    const report = await verifyTarball(path);
    expect(report.problems).toContain(
      "manifest.json lacks stack, target, compiler, base_image, image_id, spack_commit, specs, build_prefix, relocate, created_by",
    );
    expect(report.problems).toContain("a.txt is not listed in SHA256SUMS");
    expect(report.problems).toContain("a.txt is not listed in manifest.json");
  });

  it("reports unreadable archives instead of throwing, and throws InputError for a missing file", async () => {
    const garbage = join(work, "garbage.tar.gz");
    await writeFile(garbage, "not an archive at all");
    const report = await verifyTarball(garbage);
    expect(report.ok).toBe(false);
    expect(report.problems[0]).toMatch(/not a gzip or zstd file/);
    await expect(verifyTarball(join(work, "missing.tar.gz"))).rejects.toBeInstanceOf(InputError);
  });
});

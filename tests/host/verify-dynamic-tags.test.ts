import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { execa } from "execa";
import { pack as tarPack } from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamicTagReader } from "../../src/package/dynamic-tags.js";
import { buildManifest } from "../../src/package/manifest.js";
import { packTarball } from "../../src/package/pack.js";
import { verifyTarball } from "../../src/package/verify.js";

/**
 * `verify` checks that every ELF file of the view still has the dynamic tag the manifest records (DT_RPATH as Spack
 * links): on programs compiled here with gcc and linked as Spack's compiler wrapper links them.
 */
let work: string;
/** Linked with DT_RPATH; its dynamic segment lies beyond the first 300 KB (a large constant table before it). */
let rpathApp: string;
/** The same program after `patchelf --set-rpath` without --force-rpath: DT_RUNPATH. */
let runpathApp: string;
let small: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "sf-dyntags-"));
  await writeFile(
    join(work, "app.c"),
    "static const char table[300000] = {1};\nint main(int argc, char **argv) { return table[argc] + (argv[0][0] == 0); }\n",
  );
  rpathApp = join(work, "app-rpath");
  await execa("gcc", [
    "-O1",
    "-o",
    rpathApp,
    join(work, "app.c"),
    "-Wl,--disable-new-dtags",
    "-Wl,-rpath,/sf/view/x/lib",
  ]);
  runpathApp = join(work, "app-runpath");
  await copyFile(rpathApp, runpathApp);
  await execa("patchelf", ["--set-rpath", "$ORIGIN/../lib", runpathApp]);
  small = join(work, "small");
  await writeFile(join(work, "small.c"), "int main(void) { return 0; }\n");
  await execa("gcc", ["-o", small, join(work, "small.c")]);
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function readelfTag(file: string): Promise<string> {
  const { stdout } = await execa("readelf", ["-d", file]);
  const tags = [...stdout.matchAll(/\((RPATH|RUNPATH)\)/g)].map((m) => m[1]);
  return tags.sort().join("+") || "none";
}

/** The tag the streaming reader finds when the bytes come in chunks of `size`. */
function streamed(bytes: Buffer, size: number) {
  const reader = new DynamicTagReader();
  for (let at = 0; at < bytes.length; at += size) reader.push(bytes.subarray(at, at + size));
  return reader.finish();
}

async function tarballWith(name: string, app: string, tags: string): Promise<string> {
  const tar = tarPack();
  tar.entry({ name: "h/", type: "directory", mode: 0o755, mtime: new Date(0) });
  tar.entry({ name: "h/bin/", type: "directory", mode: 0o755, mtime: new Date(0) });
  tar.entry({ name: "h/bin/app", mode: 0o755, mtime: new Date(0) }, await readFile(app));
  tar.entry({ name: "h/bin/small", mode: 0o755, mtime: new Date(0) }, await readFile(small));
  tar.entry({ name: "h/share.txt", mode: 0o644, mtime: new Date(0) }, "\x7fELF but short\n");
  tar.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of tar as unknown as AsyncIterable<Buffer>) chunks.push(chunk);
  const out = join(work, name);
  const result = await packTarball({
    view: Readable.from([Buffer.concat(chunks)]),
    top: "demo-1-x86_64_v3",
    outDir: out,
    manifest: buildManifest({
      stack: { name: "demo", version: "1", file: "/s/demo.yaml", description: "" },
      target: "x86_64_v3",
      compiler: "os",
      baseImage: "debian:bookworm",
      specs: [],
      buildPrefix: "/sf/view/._default/h",
      relocateIndex: "",
      dynamicTags: tags,
    }),
  });
  return result.path;
}

describe("dynamic tags of a view's ELF files", () => {
  it("are read from the streamed bytes as readelf reads them, whatever the chunk size", async () => {
    for (const [file, tag] of [
      [rpathApp, "RPATH"],
      [runpathApp, "RUNPATH"],
      [small, "none"],
    ] as const) {
      expect(await readelfTag(file)).toBe(tag);
      const bytes = await readFile(file);
      for (const size of [1 << 20, 4096, 7]) expect(streamed(bytes, size)).toEqual({ elf: true, tag });
    }
    expect(streamed(Buffer.from("#!/bin/sh\n"), 3)).toEqual({ elf: false });
    expect(streamed(Buffer.from("\x7fELF but short\n"), 3)).toEqual({
      elf: true,
      problem: "its ELF header is incomplete",
    });
  });

  it("verify accepts the tags the manifest records", async () => {
    const report = await verifyTarball(
      await tarballWith("good", rpathApp, "view/bin/app\tRPATH\nview/bin/small\tnone\n"),
    );
    expect(report.problems).toEqual([]);
  });

  it("verify refuses a DT_RPATH turned DT_RUNPATH, an ELF file the record misses, and a record of a missing file", async () => {
    const report = await verifyTarball(
      await tarballWith("changed", runpathApp, "view/bin/app\tRPATH\nview/bin/gone\tRPATH\nview/share.txt\tnone\n"),
    );
    expect(report.ok).toBe(false);
    expect(report.problems).toEqual([
      "view/bin/app: linked with RPATH, now RUNPATH (LD_LIBRARY_PATH would override the view's libraries)",
      "view/bin/small: an ELF file that manifest.json's dynamic_tags does not list",
      "view/share.txt: cannot read its dynamic tag: its ELF header is incomplete",
      "manifest.json lists the dynamic tag of view/bin/gone, not an ELF file of the archive",
    ]);
  });
});

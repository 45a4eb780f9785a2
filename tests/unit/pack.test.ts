import { createHash } from "node:crypto";
import {
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  link,
  writeFile,
  chmod,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { execa } from "execa";
import { pack as tarPack } from "tar-stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CancelledError, BuildError } from "../../src/errors.js";
import { buildManifest } from "../../src/package/manifest.js";
import { packTarball, type PackTarballOptions } from "../../src/package/pack.js";
import { buildSbom } from "../../src/package/sbom.js";
import { parseSpecs } from "../../src/package/specs.js";
import { verifyTarball } from "../../src/package/verify.js";

const TOP = "demo-1.0-zen4";
const LONG = `${"deep/".repeat(12)}${"n".repeat(60)}.txt`;

/** A tar stream of `dir` named as the engine's getArchive names it: `<basename>/...`, hardlinks as link entries. */
async function archiveOf(dir: string): Promise<Readable> {
  const base = dir.split("/").pop()!;
  const entries: { name: string; path: string }[] = [];
  const walk = async (path: string, name: string): Promise<void> => {
    entries.push({ name, path });
    if ((await lstat(path)).isDirectory()) {
      for (const child of (await readdir(path)).sort()) await walk(join(path, child), `${name}/${child}`);
    }
  };
  await walk(dir, base);
  const tar = tarPack();
  void (async () => {
    const inodes = new Map<number, string>();
    for (const { name, path } of entries) {
      if (tar.destroyed) return;
      const s = await lstat(path);
      const common = { mode: s.mode, mtime: s.mtime, uid: 1000, gid: 1000, uname: "builder", gname: "builder" };
      if (s.isDirectory()) tar.entry({ ...common, name: `${name}/`, type: "directory" });
      else if (s.isSymbolicLink()) tar.entry({ ...common, name, type: "symlink", linkname: await readlink(path) });
      else if (s.nlink > 1 && inodes.has(s.ino))
        tar.entry({ ...common, name, type: "link", linkname: inodes.get(s.ino)! });
      else {
        inodes.set(s.ino, name);
        tar.entry({ ...common, name, type: "file", size: s.size }, await readFile(path));
      }
    }
    tar.finalize();
  })().catch(() => {
    // The packer stopped reading (a test of its failure paths): stop producing.
  });
  return Readable.from(tar as unknown as AsyncIterable<Buffer>);
}

let work: string;
let view: string;
let out: string;

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), "sf-pack-"));
  view = join(work, "abc123");
  out = join(work, "out");
  await mkdir(join(view, "bin"), { recursive: true });
  await mkdir(join(view, "lib"), { recursive: true });
  await mkdir(join(view, "share/empty"), { recursive: true });
  await mkdir(join(view, LONG, ".."), { recursive: true });
  await writeFile(join(view, "bin/tool"), "#!/bin/sh\necho tool\n");
  await chmod(join(view, "bin/tool"), 0o755);
  await writeFile(
    join(view, "lib/libx.so.1.2"),
    Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 251)),
  );
  await chmod(join(view, "lib/libx.so.1.2"), 0o555);
  await symlink("libx.so.1.2", join(view, "lib/libx.so"));
  await writeFile(join(view, "share/data.txt"), "shared data\n");
  await chmod(join(view, "share/data.txt"), 0o640);
  await link(join(view, "share/data.txt"), join(view, "share/data-link.txt"));
  await writeFile(join(view, LONG), "long path\n");
  await writeFile(join(view, "share/empty-file"), "");
});

afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

function manifest() {
  const specs = parseSpecs([
    { name: "zlib", version: "1.3.1", hash: "abcdefg", parameters: { shared: true, cflags: [] } },
  ]);
  return buildManifest({
    stack: { name: "demo", version: "1.0", file: "/stacks/demo.yaml", description: "a demo" },
    target: "zen4",
    compiler: "gcc@12.2.0",
    baseImage: "debian:bookworm",
    imageId: "sha256:1234",
    spackCommit: "deadbeef",
    specs,
    buildPrefix: "/sf/view/._default/abc123",
    relocateIndex: "text\tview/share/data.txt\nbinary\tview/lib/libx.so.1.2\t10,52\n",
  });
}

async function options(overrides: Partial<PackTarballOptions> = {}): Promise<PackTarballOptions> {
  await writeFile(join(work, "asset.dat"), "asset bytes\n");
  return {
    view: await archiveOf(view),
    top: TOP,
    outDir: out,
    files: {
      "modules/demo/1.0.lua": "-- module\n",
      "install.sh": { content: "#!/bin/bash\necho install\n", mode: 0o755 },
      "sbom.cdx.json": "{}\n",
      ".stack-factory/relocate.tsv": "text\tview/share/data.txt\n",
      ".stack-factory/build-prefix": "/sf/view/._default/abc123\n",
      "data/demo_assets/asset.dat": { source: join(work, "asset.dat") },
    },
    manifest: manifest(),
    ...overrides,
  };
}

const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("hex");

describe("packTarball", () => {
  it("writes byte-identical tarballs for the same input, with a matching sidecar", async () => {
    const first = await packTarball(await options());
    const bytesA = await readFile(first.path);
    await rm(first.path);
    const second = await packTarball(await options());
    const bytesB = await readFile(second.path);
    expect(second.path).toBe(join(out, `${TOP}.tar.gz`));
    expect(bytesB.equals(bytesA)).toBe(true);
    expect(second.sha256).toBe(sha256(bytesB));
    expect(await readFile(`${second.path}.sha256`, "utf8")).toBe(`${sha256(bytesB)}  ${TOP}.tar.gz\n`);
    expect(await readdir(out)).toEqual([`${TOP}.tar.gz`, `${TOP}.tar.gz.sha256`]);
  });

  it("extracts with tar to the same tree: modes, symlinks, hardlinks, empty dirs, long paths", async () => {
    const result = await packTarball(await options());
    const dest = join(work, "dest");
    await mkdir(dest);
    await execa("tar", ["-xzf", result.path, "-C", dest]);
    const top = join(dest, TOP);
    for (const rel of ["bin/tool", "lib/libx.so.1.2", "share/data.txt", LONG, "share/empty-file"]) {
      expect((await readFile(join(top, "view", rel))).equals(await readFile(join(view, rel)))).toBe(true);
      expect((await stat(join(top, "view", rel))).mode & 0o7777).toBe((await stat(join(view, rel))).mode & 0o7777);
    }
    expect(await readlink(join(top, "view/lib/libx.so"))).toBe("libx.so.1.2");
    expect((await stat(join(top, "view/share/data-link.txt"))).ino).toBe(
      (await stat(join(top, "view/share/data.txt"))).ino,
    );
    expect(await readdir(join(top, "view/share/empty"))).toEqual([]);
    expect((await stat(join(top, "install.sh"))).mode & 0o777).toBe(0o755);
    expect(await readFile(join(top, "data/demo_assets/asset.dat"), "utf8")).toBe("asset bytes\n");

    const listing = (await execa("tar", ["-tvzf", result.path, "--numeric-owner"])).stdout.split("\n");
    expect(listing.every((line) => / 0\/0 /.test(line))).toBe(true);
    expect(listing.every((line) => line.includes("1970-01-01"))).toBe(true);
    const names = (await execa("tar", ["-tzf", result.path])).stdout.split("\n");
    expect(names.slice(0, 2)).toEqual([`${TOP}/`, `${TOP}/install.sh`]);
    expect(names.slice(-2)).toEqual([`${TOP}/manifest.json`, `${TOP}/SHA256SUMS`]);
    expect(names.indexOf(`${TOP}/data/demo_assets/asset.dat`)).toBeLessThan(names.indexOf(`${TOP}/view/`));
  });

  it("writes SHA256SUMS that sha256sum -c accepts and a manifest with every file's checksum", async () => {
    const result = await packTarball(await options());
    const dest = join(work, "dest");
    await mkdir(dest);
    await execa("tar", ["-xzf", result.path, "-C", dest]);
    const top = join(dest, TOP);
    const check = await execa("sha256sum", ["-c", "--strict", "SHA256SUMS"], { cwd: top });
    expect(check.stdout).toContain(`view/${LONG}: OK`);
    const sums = await readFile(join(top, "SHA256SUMS"), "utf8");
    expect(sums).toContain("  manifest.json\n");
    expect(sums).not.toContain("  SHA256SUMS\n");
    const written = JSON.parse(await readFile(join(top, "manifest.json"), "utf8"));
    expect(written.build_prefix).toBe("/sf/view/._default/abc123");
    expect(written.files["view/bin/tool"]).toBe(sha256(await readFile(join(view, "bin/tool"))));
    expect(written.files["view/share/data-link.txt"]).toBe(sha256(Buffer.from("shared data\n")));
    expect(written.files["install.sh"]).toBe(sha256(Buffer.from("#!/bin/bash\necho install\n")));
    expect(written.files["manifest.json"]).toBeUndefined();
    expect(written.relocate[1]).toEqual({ path: "view/lib/libx.so.1.2", kind: "binary", offsets: [10, 52] });
    expect(result.files).toBe(Object.keys(written.files).length + 2);
  });

  it("reads a view that streams from a process at once (as tar -c | packer), losing no entry", async () => {
    const base = await options();
    // execa's stdout flows from the start: it must be connected in the same tick.
    const tar = execa("tar", ["-cf", "-", "-C", work, "abc123"], { buffer: { stdout: false } });
    const result = await packTarball({ ...base, view: tar.stdout as Readable });
    await tar;
    const report = await verifyTarball(result.path);
    expect(report.problems).toEqual([]);
    const names = (await execa("tar", ["-tzf", result.path])).stdout.split("\n");
    expect(names).toContain(`${TOP}/view/${LONG}`);
    expect(names).toContain(`${TOP}/view/share/empty/`);
  });

  it("compresses with zstd into .tar.zst and with node's zlib when asked", async () => {
    const zstd = await packTarball(await options({ compression: "zstd" }));
    expect(zstd.path.endsWith(`${TOP}.tar.zst`)).toBe(true);
    expect((await readFile(zstd.path)).subarray(0, 4).toString("hex")).toBe("28b52ffd");
    const names = (await execa("tar", ["--zstd", "-tf", zstd.path])).stdout;
    expect(names).toContain(`${TOP}/view/bin/tool`);
    expect((await verifyTarball(zstd.path)).problems).toEqual([]);

    const builtin = await packTarball(await options({ compressor: "builtin" }));
    expect(builtin.compressor).toContain("zlib");
    expect((await verifyTarball(builtin.path)).ok).toBe(true);
  });

  it("leaves neither the tarball nor a partial file when aborted mid-way", async () => {
    const controller = new AbortController();
    const tar = tarPack();
    const big = tar.entry({ name: "abc123/big.bin", type: "file", size: 64 * 1024 * 1024, mode: 0o644 });
    let written = 0;
    const chunk = Buffer.alloc(1024 * 1024, 7);
    const feed = setInterval(() => {
      if (written >= 8) {
        controller.abort();
        clearInterval(feed);
        return;
      }
      big.write(chunk);
      written++;
    }, 5);
    const pending = packTarball({
      ...(await options()),
      view: Readable.from(tar as unknown as AsyncIterable<Buffer>),
      signal: controller.signal,
    });
    await expect(pending).rejects.toBeInstanceOf(CancelledError);
    clearInterval(feed);
    expect(written).toBe(8);
    // Aborted before or after the output directory was made: either way nothing is in it.
    expect(await readdir(out).catch(() => [])).toEqual([]);
  });

  it("removes the partial file when the view stream fails", async () => {
    const failing = new Readable({
      read() {
        this.destroy(new Error("connection reset"));
      },
    });
    await expect(packTarball({ ...(await options()), view: failing })).rejects.toThrow(/connection reset/);
    expect(await readdir(out)).toEqual([]);
  });

  it("refuses a view symlink that leaves the view, or skips it when asked", async () => {
    await symlink("/etc/passwd", join(view, "share/passwd"));
    await expect(packTarball(await options())).rejects.toThrow(BuildError);
    await expect(packTarball(await options())).rejects.toThrow(
      /view\/share\/passwd: symlink to the absolute path \/etc\/passwd/,
    );
    expect(await readdir(out)).toEqual([]);
    const skipped = await packTarball(await options({ onUnsafe: "skip" }));
    expect(skipped.skipped).toEqual(["view/share/passwd: symlink to the absolute path /etc/passwd"]);
    expect((await verifyTarball(skipped.path)).ok).toBe(true);
  });

  it("refuses an empty view archive", async () => {
    await expect(packTarball({ ...(await options()), view: Readable.from([Buffer.alloc(1024)]) })).rejects.toThrow(
      /view archive is empty/,
    );
    expect(await readdir(out)).toEqual([]);
  });

  it("refuses generated paths that would escape or clash with the packer's own files", async () => {
    await expect(packTarball({ ...(await options()), files: { "../x": "x" } })).rejects.toThrow(
      /'\.\.'|must be relative/,
    );
    await expect(packTarball({ ...(await options()), files: { "manifest.json": "{}" } })).rejects.toThrow(
      /written by the packer/,
    );
    await expect(packTarball({ ...(await options()), top: "a/b" })).rejects.toThrow(/one path component/);
  });
});

describe("parseSpecs and buildSbom", () => {
  const flat = [
    {
      name: "hdf5",
      version: "1.14.5",
      hash: "h5hash",
      arch: { platform: "linux", target: { name: "zen4", vendor: "AuthenticAMD" } },
      parameters: { mpi: true, cflags: [], build_type: "Release" },
      dependencies: [{ name: "zlib-ng", hash: "zhash", parameters: { deptypes: ["link"] } }],
      extra: "ignored",
    },
    { name: "zlib-ng", version: "2.2.1", hash: "zhash", arch: { platform: "linux", target: "zen4" } },
  ];

  it("reads flat node lists and nested spec.nodes alike, once per hash", () => {
    const fromFlat = parseSpecs(flat);
    const fromNested = parseSpecs(
      JSON.stringify([{ spec: { _meta: { version: 5 }, nodes: flat } }, { spec: { nodes: [flat[1]] } }]),
    );
    expect(fromNested).toEqual(fromFlat);
    expect(fromFlat).toEqual([
      {
        name: "hdf5",
        version: "1.14.5",
        hash: "h5hash",
        variants: { build_type: "Release", mpi: true },
        arch: { platform: "linux", target: "zen4" },
        dependencies: [{ name: "zlib-ng", hash: "zhash" }],
      },
      {
        name: "zlib-ng",
        version: "2.2.1",
        hash: "zhash",
        variants: {},
        arch: { platform: "linux", target: "zen4" },
        dependencies: [],
      },
    ]);
    expect(() => parseSpecs([{ name: "x", version: "1" }])).toThrow(/spec #0 has no hash/);
    expect(() => parseSpecs({})).toThrow(/must be a JSON array/);
  });

  it("makes a CycloneDX 1.5 document with purls, bom-refs and dependencies", () => {
    const sbom = buildSbom(parseSpecs(flat), { name: "demo", version: "1.0" }) as {
      specVersion: string;
      serialNumber: string;
      components: { "bom-ref": string; purl: string; properties?: { name: string; value: string }[] }[];
      dependencies: { ref: string; dependsOn: string[] }[];
    };
    expect(sbom.specVersion).toBe("1.5");
    expect(sbom.serialNumber).toMatch(/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(sbom.components.map((c) => c.purl)).toEqual([
      "pkg:generic/hdf5@1.14.5?spack_hash=h5hash",
      "pkg:generic/zlib-ng@2.2.1?spack_hash=zhash",
    ]);
    expect(sbom.components[0]!["bom-ref"]).toBe("h5hash");
    expect(sbom.components[0]!.properties).toContainEqual({ name: "spack:variant:mpi", value: "true" });
    expect(sbom.dependencies).toEqual([
      { ref: "h5hash", dependsOn: ["zhash"] },
      { ref: "zhash", dependsOn: [] },
    ]);
    expect(JSON.stringify(buildSbom(parseSpecs(flat), { name: "demo", version: "1.0" }))).toBe(JSON.stringify(sbom));
  });
});

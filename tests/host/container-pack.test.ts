import { createHash } from "node:crypto";
import {
  chmod,
  link,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BuildError, CancelledError } from "../../src/errors.js";
import {
  manifestFrame,
  packInContainer,
  parseListing,
  type ContainerPackOptions,
} from "../../src/package/container-pack.js";
import { buildManifest } from "../../src/package/manifest.js";
import { parseSpecs } from "../../src/package/specs.js";
import { verifyTarball } from "../../src/package/verify.js";
import { LocalContainer } from "../helpers/local-container.js";

const TOP = "demo-1.0-zen4";
const LONG = `${"deep/".repeat(12)}${"n".repeat(60)}.txt`;
const ODD = ["with space.txt", "back\\slash.txt", "new\nline.txt", 'quote"d.txt', "ünïcødé-✓.txt", "tab\there.txt"];

let work: string;
let view: string;
let out: string;
let container: LocalContainer;

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), "sf-cpack-"));
  view = join(work, "sf/view/._default/abc123");
  out = join(work, "out");
  container = new LocalContainer();
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
  await writeFile(join(work, "asset.dat"), "asset bytes\n");
});

afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

function manifest() {
  const specs = parseSpecs([
    { name: "zlib", version: "1.3.1", hash: "abcdefg", parameters: { shared: true, cflags: [] } },
  ]);
  return buildManifest({
    stack: { name: "demo", version: "1.0", file: "/stacks/demo.yaml", description: 'a "demo"\nwith "files": {} in it' },
    target: "zen4",
    compiler: "gcc@12.2.0",
    baseImage: "debian:bookworm",
    imageId: "sha256:1234",
    spackCommit: "deadbeef",
    specs,
    buildPrefix: "/sf/view/._default/abc123",
    relocateIndex: "text\tview/share/data.txt\nbinary\tview/lib/libx.so.1.2\t10\n",
  });
}

function generated(): NonNullable<ContainerPackOptions["files"]> {
  return {
    "modules/demo/1.0.lua": "-- module\n",
    "install.sh": { content: "#!/bin/bash\necho install\n", mode: 0o755 },
    "sbom.cdx.json": "{}\n",
    ".stack-factory/relocate.tsv": "text\tview/share/data.txt\n",
    ".stack-factory/build-prefix": "/sf/view/._default/abc123\n",
    "data/demo_assets/asset.dat": { source: join(work, "asset.dat") },
  };
}

function options(overrides: Partial<ContainerPackOptions> = {}): ContainerPackOptions {
  return {
    container,
    view,
    top: TOP,
    outDir: out,
    workDir: join(work, "stage/pack"),
    files: generated(),
    manifest: manifest(),
    ...overrides,
  };
}

const sha256 = (data: Buffer | string): string => createHash("sha256").update(data).digest("hex");

/** name, type, mode and link target of every entry, in archive order (GNU tar's verbose listing, numeric). */
async function listing(path: string): Promise<string[]> {
  const { stdout } = await execa("tar", ["-tvf", path, "--numeric-owner", "--quoting-style=escape"], {
    env: { LC_ALL: "C", TZ: "UTC" },
  });
  return stdout.split("\n").map((l) => l.replace(/^(\S+) (\S+)\s+\d+ /, "$1 $2 "));
}

async function unpack(path: string): Promise<string> {
  const dest = join(work, `dest-${Math.random().toString(36).slice(2)}`);
  await mkdir(dest);
  await execa("tar", ["-xf", path, "-C", dest]);
  return join(dest, TOP);
}

describe("packInContainer", () => {
  it("writes byte-identical tarballs for the same input, with a matching sidecar, and cleans its work directory", async () => {
    const first = await packInContainer(options());
    const bytesA = await readFile(first.path);
    await rm(first.path);
    const second = await packInContainer(options({ checkDigest: true }));
    const bytesB = await readFile(second.path);
    expect(second.path).toBe(join(out, `${TOP}.tar.gz`));
    expect(bytesB.equals(bytesA)).toBe(true);
    expect(second.sha256).toBe(sha256(bytesB));
    expect(await readFile(`${second.path}.sha256`, "utf8")).toBe(`${sha256(bytesB)}  ${TOP}.tar.gz\n`);
    expect(await readdir(out)).toEqual([`${TOP}.tar.gz`, `${TOP}.tar.gz.sha256`]);
    expect(await readdir(join(work, "stage"))).toEqual([]);
    expect(second.compressor).toMatch(/^(pigz -6 -n|gzip -6 -n)$/);
  });

  it("lists the generated files, then the view as a sorted walk, then manifest.json and SHA256SUMS, with types and links", async () => {
    const result = await packInContainer(options());
    const names = (await execa("tar", ["-tzf", result.path])).stdout.split("\n");
    const deep = LONG.split("/");
    expect(names).toEqual(
      [
        "",
        "install.sh",
        ".stack-factory/",
        ".stack-factory/build-prefix",
        ".stack-factory/relocate.tsv",
        "data/",
        "data/demo_assets/",
        "data/demo_assets/asset.dat",
        "modules/",
        "modules/demo/",
        "modules/demo/1.0.lua",
        "sbom.cdx.json",
        "view/",
        "view/bin/",
        "view/bin/tool",
        ...deep.slice(0, -1).map((_, i) => `view/${deep.slice(0, i + 1).join("/")}/`),
        `view/${LONG}`,
        "view/lib/",
        "view/lib/libx.so",
        "view/lib/libx.so.1.2",
        "view/share/",
        "view/share/data-link.txt",
        "view/share/data.txt",
        "view/share/empty/",
        "view/share/empty-file",
        "manifest.json",
        "SHA256SUMS",
      ].map((name) => `${TOP}/${name}`),
    );
    const lines = await listing(result.path);
    expect(lines).toContain(`lrwxrwxrwx 0/0 1970-01-01 00:00 ${TOP}/view/lib/libx.so -> libx.so.1.2`);
    expect(lines).toContain(
      `hrw-r----- 0/0 1970-01-01 00:00 ${TOP}/view/share/data.txt link to ${TOP}/view/share/data-link.txt`,
    );
    expect(lines).toContain(`-r-xr-xr-x 0/0 1970-01-01 00:00 ${TOP}/view/lib/libx.so.1.2`);
    expect(result.skipped).toEqual([]);
  });

  it("packs a view alone, without generated files", async () => {
    const result = await packInContainer(options({ files: {} }));
    const names = (await execa("tar", ["-tzf", result.path])).stdout.split("\n");
    expect(names.slice(0, 3)).toEqual([`${TOP}/`, `${TOP}/view/`, `${TOP}/view/bin/`]);
    expect(names.slice(-2)).toEqual([`${TOP}/manifest.json`, `${TOP}/SHA256SUMS`]);
    expect((await verifyTarball(result.path)).problems).toEqual([]);
  });

  it("extracts with tar to the same tree: modes, symlinks, hardlinks, empty dirs, long paths, owners 0/0, one mtime", async () => {
    const result = await packInContainer(options({ mtime: new Date(1_700_000_000_000) }));
    const top = await unpack(result.path);
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
    expect((await stat(join(top, "manifest.json"))).mode & 0o777).toBe(0o644);
    expect(await readFile(join(top, "data/demo_assets/asset.dat"), "utf8")).toBe("asset bytes\n");
    const lines = await listing(result.path);
    expect(
      lines.every((line) => / 0\/0 2023-11-14 /.test(line)),
      lines.join("\n"),
    ).toBe(true);
    const names = (await execa("tar", ["-tzf", result.path])).stdout.split("\n");
    expect(names.slice(0, 2)).toEqual([`${TOP}/`, `${TOP}/install.sh`]);
    expect(names.slice(-2)).toEqual([`${TOP}/manifest.json`, `${TOP}/SHA256SUMS`]);
    expect(names.indexOf(`${TOP}/data/demo_assets/asset.dat`)).toBeLessThan(names.indexOf(`${TOP}/view/`));
  });

  it("writes SHA256SUMS that sha256sum -c accepts and a manifest with every file's checksum", async () => {
    const result = await packInContainer(options());
    const top = await unpack(result.path);
    const check = await execa("sha256sum", ["-c", "--strict", "SHA256SUMS"], { cwd: top });
    expect(check.stdout).toContain(`view/${LONG}: OK`);
    const sums = await readFile(join(top, "SHA256SUMS"), "utf8");
    expect(sums).toContain("  manifest.json\n");
    expect(sums).not.toContain("  SHA256SUMS\n");
    const written = JSON.parse(await readFile(join(top, "manifest.json"), "utf8"));
    expect(written.stack.description).toBe('a "demo"\nwith "files": {} in it');
    expect(written.files["view/bin/tool"]).toBe(sha256(await readFile(join(view, "bin/tool"))));
    expect(written.files["view/share/data-link.txt"]).toBe(sha256("shared data\n"));
    expect(written.files["install.sh"]).toBe(sha256("#!/bin/bash\necho install\n"));
    expect(written.files["manifest.json"]).toBeUndefined();
    expect(Object.keys(written).at(-1)).toBe("created_by");
    expect(result.files).toBe(Object.keys(written.files).length + 2);
    expect((await verifyTarball(result.path)).problems).toEqual([]);
  });

  it("handles names with spaces, backslashes, newlines, quotes, tabs and non-ASCII letters", async () => {
    for (const name of ODD) await writeFile(join(view, "share", name), `${name}\n`);
    const result = await packInContainer(options());
    const top = await unpack(result.path);
    for (const name of ODD) expect(await readFile(join(top, "view/share", name), "utf8")).toBe(`${name}\n`);
    const written = JSON.parse(await readFile(join(top, "manifest.json"), "utf8"));
    for (const name of ODD) expect(written.files[`view/share/${name}`]).toBe(sha256(`${name}\n`));
    expect((await verifyTarball(result.path)).problems).toEqual([]);
    expect(
      (await execa("sha256sum", ["-c", "--strict", "--quiet", "SHA256SUMS"], { cwd: top, reject: false })).exitCode,
    ).toBe(0);
  });

  it("compresses with zstd into .tar.zst", async () => {
    const zstd = await packInContainer(options({ compression: "zstd" }));
    expect(zstd.path.endsWith(`${TOP}.tar.zst`)).toBe(true);
    expect(zstd.compressor).toBe("zstd -3 -T0");
    expect((await readFile(zstd.path)).subarray(0, 4).toString("hex")).toBe("28b52ffd");
    expect((await execa("tar", ["--zstd", "-tf", zstd.path])).stdout).toContain(`${TOP}/view/bin/tool`);
    expect((await verifyTarball(zstd.path)).problems).toEqual([]);
    const again = await packInContainer(options({ compression: "zstd" }));
    expect(again.sha256).toBe(zstd.sha256);
  });

  it("writes the same bytes straight into a directory shared with the container, copying nothing through the engine", async () => {
    const copied = await packInContainer(options({ compression: "zstd" }));
    const bytes = await readFile(copied.path);
    await rm(out, { recursive: true });
    await mkdir(out);
    const gets: string[] = [];
    const getArchive = container.getArchive.bind(container);
    container.getArchive = (path, signal) => {
      gets.push(path);
      return getArchive(path, signal);
    };
    // The stand-in's paths are this machine's: the directory is "mounted" at its own path.
    const shared = await packInContainer(options({ compression: "zstd", sharedOutDir: out }));
    expect(gets).toEqual([]);
    expect((await readFile(shared.path)).equals(bytes)).toBe(true);
    expect(shared.sha256).toBe(copied.sha256);
    expect(await readdir(out)).toEqual([`${TOP}.tar.zst`, `${TOP}.tar.zst.sha256`]);
    expect((await verifyTarball(shared.path)).problems).toEqual([]);
  });

  it("uploads a large asset in pieces and packs it whole", async () => {
    const big = Buffer.alloc(40 * 1024 * 1024 + 123);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
    await writeFile(join(work, "big.bin"), big);
    const result = await packInContainer(
      options({ files: { ...generated(), "data/demo_assets/big.bin": { source: join(work, "big.bin") } } }),
    );
    const top = await unpack(result.path);
    expect(sha256(await readFile(join(top, "data/demo_assets/big.bin")))).toBe(sha256(big));
    expect((await verifyTarball(result.path)).problems).toEqual([]);
  });

  it("leaves neither the tarball nor a partial file when aborted mid-way", async () => {
    const random = Buffer.alloc(64 * 1024 * 1024);
    for (let i = 0; i < random.length; i += 4) random.writeUInt32LE((i * 2654435761) >>> 0, i);
    await writeFile(join(view, "big.bin"), random);
    const controller = new AbortController();
    const pending = packInContainer(options({ compression: "gzip", signal: controller.signal }));
    setTimeout(() => controller.abort(), 300);
    await expect(pending).rejects.toBeInstanceOf(CancelledError);
    expect(await readdir(out)).toEqual([]);
  });

  it("fails without leaving a file when the packer fails (an unreadable file), and says why", async () => {
    await writeFile(join(view, "share/secret"), "x");
    await chmod(join(view, "share/secret"), 0);
    const asRoot = process.getuid?.() === 0;
    if (asRoot) {
      // root reads anything: make the file vanish between listing and packing instead.
      const real = container.exec.bind(container);
      container.exec = async (argv, opts) => {
        if (argv[0] === "python3") await rm(join(view, "share/secret"), { force: true });
        return real(argv, opts);
      };
    }
    const error = await packInContainer(options()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BuildError);
    expect((error as Error).message).toMatch(/packing in the container failed \(exit code 1\): .*share\/secret/s);
    expect(await readdir(out)).toEqual([]);
    expect(await readdir(join(work, "stage"))).toEqual([]);
  });

  it("fails when the view is missing", async () => {
    await expect(packInContainer(options({ view: join(work, "nope") }))).rejects.toThrow(/listing the view/);
    expect(await readdir(out)).toEqual([]);
  });

  it("refuses a view symlink that leaves the view, or skips it when asked", async () => {
    await symlink("/etc/passwd", join(view, "share/passwd"));
    await expect(packInContainer(options())).rejects.toThrow(
      /view\/share\/passwd: symlink to the absolute path \/etc\/passwd/,
    );
    expect(await readdir(out)).toEqual([]);
    const skipped = await packInContainer(options({ onUnsafe: "skip" }));
    expect(skipped.skipped).toEqual(["view/share/passwd: symlink to the absolute path /etc/passwd"]);
    expect((await verifyTarball(skipped.path)).ok).toBe(true);
  });

  it("refuses generated paths that would escape or clash with the packer's own files, and a work dir in the view", async () => {
    await expect(packInContainer(options({ files: { "../x": "x" } }))).rejects.toThrow(/'\.\.'|must be relative/);
    await expect(packInContainer(options({ files: { "manifest.json": "{}" } }))).rejects.toThrow(
      /written by the packer/,
    );
    await expect(packInContainer(options({ top: "a/b" }))).rejects.toThrow(/one path component/);
    await expect(packInContainer(options({ workDir: join(view, "tmp") }))).rejects.toThrow(/inside the view/);
    await expect(packInContainer(options({ workDir: work }))).rejects.toThrow(/would hold the view/);
    await symlink(view, join(work, "view-link"));
    await expect(packInContainer(options({ view: join(work, "view-link") }))).rejects.toThrow(/listing the view/);
    expect(await readdir(view)).toContain("bin");
  });
});

describe("parseListing and manifestFrame", () => {
  it("orders a find listing as a sorted walk: a directory's entries before its later siblings", () => {
    const raw = Buffer.from(["f\0a-b\0\0", "d\0a\0\0", "f\0a/z\0\0", "l\0a/l\0../a-b\0", "f\0B\0\0"].join(""));
    expect(parseListing(raw).map((e) => `${e.type}:${e.rel}:${e.link}`)).toEqual([
      "file:B:",
      "directory:a:",
      "symlink:a/l:../a-b",
      "file:a/z:",
      "file:a-b:",
    ]);
    expect(() => parseListing(Buffer.concat([Buffer.from("f\0"), Buffer.from([0xff, 0]), Buffer.from("\0")]))).toThrow(
      /not UTF-8/,
    );
  });

  it("splits the manifest around its files object", () => {
    const [head, tail] = manifestFrame(manifest());
    const files = { "install.sh": "ab", "view/x": "cd" };
    const filled = `${head}{\n    "install.sh": "ab",\n    "view/x": "cd"\n  }${tail}`;
    expect(filled).toBe(`${JSON.stringify({ ...manifest(), files, created_by: "stack-factory" }, null, 2)}\n`);
  });
});

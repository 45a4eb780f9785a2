/**
 * Archives crafted so that a reader that does not read tar the way GNU tar does would pass them, with
 * SHA256SUMS and manifest.json consistent with what such a reader (tar-stream) sees. Each is refused by verify,
 * and each is also unpacked by the real GNU tar in a temporary directory to show what it would have written.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { lstatSync, mkdirSync, readFileSync, readlinkSync, realpathSync, renameSync, existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { extract } from "tar-stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { buildManifest } from "../../src/package/manifest.js";
import { verifyTarball } from "../../src/package/verify.js";

const gnuTar = /GNU tar/.test(spawnSync("tar", ["--version"], { encoding: "utf8" }).stdout ?? "");

interface Raw {
  name: string;
  /** The typeflag character. */
  type?: string;
  mode?: number;
  linkname?: string;
  /** The size field; defaults to the body's length. */
  size?: number;
  magic?: "ustar" | "gnu";
  prefix?: string;
  /** The name field as bytes (for names a string cannot carry). */
  nameBytes?: Buffer;
  uid?: number;
  uname?: string;
}

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, "0")}\0`;
}

function header(raw: Raw, size: number): Buffer {
  const block = Buffer.alloc(512);
  (raw.nameBytes ?? Buffer.from(raw.name)).copy(block, 0);
  block.write(octal(raw.mode ?? 0o644, 8), 100, "latin1");
  block.write(octal(raw.uid ?? 0, 8), 108, "latin1");
  block.write(octal(0, 8), 116, "latin1");
  block.write(octal(size, 12), 124, "latin1");
  block.write(octal(0, 12), 136, "latin1");
  block.write(raw.type ?? "0", 156, "latin1");
  if (raw.linkname !== undefined) block.write(raw.linkname, 157);
  block.write(raw.magic === "gnu" ? "ustar  \0" : "ustar\u000000", 257, "latin1");
  if (raw.prefix !== undefined) block.write(raw.prefix, 345);
  if (raw.uname !== undefined) block.write(raw.uname, 265);
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
  return block;
}

const pad = (data: Buffer): Buffer => Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);

function member(raw: Raw, body: string | Buffer = ""): Buffer {
  const data = Buffer.from(body);
  return Buffer.concat([header(raw, raw.size ?? data.length), pad(data)]);
}

/** pax records, each `<length> <key>=<value>\n`. */
function paxData(records: [string, string][]): Buffer {
  return Buffer.concat(
    records.map(([key, value]) => {
      const rest = Buffer.from(` ${key}=${value}\n`);
      let length = rest.length + 1;
      while (String(length).length + rest.length !== length) length++;
      return Buffer.concat([Buffer.from(String(length)), rest]);
    }),
  );
}

const END = Buffer.alloc(1024);
const sha256 = (data: Buffer | string): string => createHash("sha256").update(data).digest("hex");

/**
 * What tar-stream (the reader verify used before) sees: path under top/ → sha256 of each file-like entry. It never
 * ends the entry of a directory that carries data, so it is given a time limit and the view is what it saw by then.
 */
async function naiveView(body: Buffer): Promise<Map<string, string>> {
  const seen = new Map<string, string>();
  const extractor = extract();
  Readable.from([body]).pipe(extractor as unknown as NodeJS.WritableStream);
  const reading = (async () => {
    for await (const entry of extractor as unknown as AsyncIterable<
      Readable & { header: { name: string; type: string | null } }
    >) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      const name = entry.header.name.replace(/^(\.\/)+/, "").replace(/\/+$/, "");
      const type = entry.header.type ?? "file";
      if (type === "file" && name.startsWith("top/")) seen.set(name.slice(4), sha256(Buffer.concat(chunks)));
    }
  })().catch(() => {});
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([reading, new Promise((resolve) => (timer = setTimeout(resolve, 1000)))]);
  clearTimeout(timer);
  return seen;
}

const baseManifest = buildManifest({
  stack: { name: "demo", version: "1", file: "/s/demo.yaml", description: "" },
  target: "x86_64_v3",
  compiler: "os",
  baseImage: "debian:bookworm",
  specs: [],
  buildPrefix: "/sf/view/._default/h",
  relocateIndex: "",
});

let work: string;
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), "sf-hostile-"));
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

/**
 * `top/`, then manifest.json and SHA256SUMS listing what tar-stream sees in `body`, then `body`, then the end
 * blocks unless `ownEnd`. Returns the path of the gzipped archive.
 */
async function hostile(
  name: string,
  body: Buffer,
  options: { ownEnd?: boolean; notInManifest?: string[] } = {},
): Promise<string> {
  const view = await naiveView(Buffer.concat([body, END]));
  const files: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [path, hex] of view) if (!(options.notInManifest ?? []).includes(path)) files[path] = hex;
  const manifestText = JSON.stringify({ ...baseManifest, files });
  const sums = [...view, ["manifest.json", sha256(manifestText)] as const].map(([p, h]) => `${h}  ${p}\n`).join("");
  const tar = Buffer.concat([
    member({ name: "top/", type: "5", mode: 0o755 }),
    member({ name: "top/manifest.json" }, manifestText),
    member({ name: "top/SHA256SUMS" }, sums),
    body,
    ...(options.ownEnd === true ? [] : [END]),
  ]);
  const path = join(work, `${name}.tar.gz`);
  await writeFile(path, gzipSync(tar));
  return path;
}

/** Unpacks with GNU tar (keeping modes, as root does by default) into a fresh directory; returns it. */
function gnuExtract(path: string, ...flags: string[]): string {
  const dir = join(work, "x");
  mkdirSync(dir);
  spawnSync("tar", ["-x", "-z", "-p", ...flags, "-f", path, "-C", dir], { encoding: "utf8" });
  return dir;
}

async function problemsOf(path: string): Promise<string[]> {
  const report = await verifyTarball(path);
  expect(report.ok).toBe(false);
  return report.problems;
}

const evil = "echo owned\n";

describe.skipIf(!gnuTar)("verify judges archives as GNU tar extracts them", () => {
  it("the control: the same construction without tricks passes, and tar writes only under top/", async () => {
    const path = await hostile("control", member({ name: "top/innocent" }, "fine\n"));
    expect((await verifyTarball(path)).problems).toEqual([]);
    const dir = gnuExtract(path);
    expect(readFileSync(join(dir, "top/innocent"), "utf8")).toBe("fine\n");
  });

  it.each([["gnu"], ["posix"]])(
    "accepts what GNU tar writes with --format=%s (long names, long link targets, hardlinks, UTF-8)",
    async (format) => {
      const tree = join(work, "tree");
      const top = join(tree, "demo-1-x86_64_v3");
      const long = `${"d".repeat(60)}/${"e".repeat(60)}`;
      mkdirSync(join(top, "view", long), { recursive: true });
      const files: Record<string, string> = {
        "view/bin/tool": "tool\n",
        [`view/${long}/${"f".repeat(90)}.txt`]: "deep\n",
        "view/share/naïve-名前.txt": "utf-8\n",
      };
      for (const [rel, body] of Object.entries(files)) {
        mkdirSync(join(top, rel, ".."), { recursive: true });
        await writeFile(join(top, rel), body);
      }
      spawnSync("ln", ["-s", `../${long}/${"f".repeat(90)}.txt`, join(top, "view/bin/deep-link")]);
      spawnSync("ln", [join(top, "view/bin/tool"), join(top, "view/bin/hard")]);
      files["view/bin/hard"] = "tool\n";
      const listed: Record<string, string> = {};
      for (const [rel, body] of Object.entries(files)) listed[rel] = sha256(body);
      const manifestText = JSON.stringify({ ...baseManifest, files: listed });
      await writeFile(join(top, "manifest.json"), manifestText);
      const sums = Object.entries({ ...listed, "manifest.json": sha256(manifestText) })
        .map(([p, h]) => `${h}  ${p}\n`)
        .join("");
      await writeFile(join(top, "SHA256SUMS"), sums);
      const path = join(work, `gnu-${format}.tar.gz`);
      const made = spawnSync(
        "tar",
        [
          "-c",
          "-z",
          `--format=${format}`,
          "--owner=0",
          "--group=0",
          "--numeric-owner",
          "-f",
          path,
          "-C",
          tree,
          "demo-1-x86_64_v3",
        ],
        { encoding: "utf8" },
      );
      expect(made.status, made.stderr).toBe(0);
      const report = await verifyTarball(path);
      expect(report.problems).toEqual([]);
      expect(report.files).toBe(6);
    },
  );

  it.each([
    ["a Solaris X header", "X", /Solaris extended header \('X'\)/],
    ["a pax global header", "g", /pax global header \('g'\)/],
  ])("refuses %s naming .profile, which tar writes outside top/", async (_what, flag, pattern) => {
    const body = Buffer.concat([
      member({ name: "top/PaxHeaders/x", type: flag }, paxData([["path", ".profile"]])),
      member({ name: "top/innocent" }, evil),
    ]);
    const path = await hostile(`ext-${flag}`, body);
    expect((await problemsOf(path)).some((p) => pattern.test(p))).toBe(true);
    const dir = gnuExtract(path);
    expect(readFileSync(join(dir, ".profile"), "utf8")).toBe(evil);
    expect(existsSync(join(dir, "top/innocent"))).toBe(false);
  });

  it("refuses pax keywords GNU tar acts on (GNU.sparse.name renames the entry)", async () => {
    const body = Buffer.concat([
      member({ name: "top/PaxHeaders/x", type: "x" }, paxData([["GNU.sparse.name", ".profile"]])),
      member({ name: "top/innocent" }, evil),
    ]);
    const path = await hostile("sparse-name", body);
    expect((await problemsOf(path)).some((p) => p.includes('keyword "GNU.sparse.name"'))).toBe(true);
    expect(readFileSync(join(gnuExtract(path), ".profile"), "utf8")).toBe(evil);
  });

  it("refuses a pax path with a NUL byte, which GNU tar cuts (overwriting another file)", async () => {
    const body = Buffer.concat([
      member({ name: "top/innocent" }, "fine\n"),
      member({ name: "top/PaxHeaders/x", type: "x" }, paxData([["path", "top/innocent\0x"]])),
      member({ name: "top/other" }, evil),
    ]);
    const path = await hostile("pax-nul", body);
    expect((await problemsOf(path)).some((p) => /pax path .*NUL byte/.test(p))).toBe(true);
    expect(readFileSync(join(gnuExtract(path), "top/innocent"), "utf8")).toBe(evil);
  });

  it("refuses symlinks that escape together (a -> ., a/b -> ..)", async () => {
    const body = Buffer.concat([
      member({ name: "top/a", type: "2", linkname: "." }),
      member({ name: "top/a/b", type: "2", linkname: ".." }),
    ]);
    const path = await hostile("chain", body);
    expect((await problemsOf(path)).some((p) => p.startsWith("top/a/b: lies under top/a, a symlink"))).toBe(true);
    const dir = gnuExtract(path);
    expect(realpathSync.native(join(dir, "top/b"))).toBe(realpathSync.native(dir));
  });

  it("refuses a symlink whose target leaves top/ through another symlink (e -> d/l/.., d/l -> ..)", async () => {
    const body = Buffer.concat([
      member({ name: "top/d/", type: "5", mode: 0o755 }),
      member({ name: "top/d/l", type: "2", linkname: ".." }),
      member({ name: "top/e", type: "2", linkname: "d/l/.." }),
    ]);
    const path = await hostile("through", body);
    expect(
      (await problemsOf(path)).some((p) => /^top\/e: symlink to d\/l\/\.\. leaves top\/ once the symlinks/.test(p)),
    ).toBe(true);
    const dir = gnuExtract(path);
    expect(realpathSync.native(join(dir, "top/e"))).toBe(realpathSync.native(dir));
  });

  it("refuses a symlink that is inside top/ on its face but passes through an absolute one", async () => {
    const body = Buffer.concat([
      member({ name: "top/abs", type: "2", linkname: "/" }),
      member({ name: "top/x", type: "2", linkname: "abs/tmp" }),
    ]);
    const path = await hostile("via-absolute", body);
    const problems = await problemsOf(path);
    expect(problems).toContain("top/abs: symlink to the absolute path /");
    expect(problems).toContain("top/x: symlink to abs/tmp passes through top/abs, a symlink to the absolute path /");
    expect(realpathSync.native(join(gnuExtract(path), "top/x"))).toBe(realpathSync.native("/tmp"));
  });

  it("refuses a symlink that leaves top/ and comes back (../top/x points elsewhere once installed)", async () => {
    const body = Buffer.concat([
      member({ name: "top/y" }, "fine\n"),
      member({ name: "top/x", type: "2", linkname: "../top/y" }),
    ]);
    const path = await hostile("detour", body);
    expect((await problemsOf(path)).some((p) => p.startsWith("top/x: symlink to ../top/y leaves top/"))).toBe(true);
    const dir = gnuExtract(path);
    renameSync(join(dir, "top"), join(dir, "prefix"));
    expect(readlinkSync(join(dir, "prefix/x"))).toBe("../top/y");
    expect(existsSync(join(dir, "prefix/x"))).toBe(false);
  });

  it.each([
    ["setuid file", { name: "top/s", mode: 0o4755 }, /top\/s: mode 4755 is setuid/, 0o4000],
    ["setgid directory", { name: "top/g/", type: "5", mode: 0o2755 }, /top\/g: mode 2755 is setgid/, 0o2000],
    ["world-writable file", { name: "top/w", mode: 0o666 }, /top\/w: mode 0666 is world-writable/, 0o002],
    [
      "world-writable directory",
      { name: "top/wd/", type: "5", mode: 0o777 },
      /top\/wd: mode 0777 is world-writable/,
      0o002,
    ],
  ] as [string, Raw, RegExp, number][])(
    "refuses a %s, which tar -p installs as is",
    async (_what, raw, pattern, bit) => {
      const path = await hostile("mode", member(raw, raw.type === "5" ? "" : "#!/bin/sh\n"));
      expect((await problemsOf(path)).some((p) => pattern.test(p))).toBe(true);
      const dir = gnuExtract(path);
      expect(lstatSync(join(dir, raw.name)).mode & bit).toBe(bit);
    },
  );

  it("refuses a file owned by another user, which tar run as root gives to that user", async () => {
    const path = await hostile(
      "owner",
      member({ name: "top/bin/tool", mode: 0o755, uid: 1234, uname: "" }, "#!/bin/sh\n"),
    );
    expect(await problemsOf(path)).toContain(
      "top/bin/tool: owned by 1234:0, not root (tar run as root would give it to that owner)",
    );
    if (process.getuid?.() === 0) expect(lstatSync(join(gnuExtract(path), "top/bin/tool")).uid).toBe(1234);
  });

  it.each([["top//a"], ["top/./a"]])("refuses two members naming one path (%s after top/a)", async (second) => {
    const body = Buffer.concat([member({ name: "top/a" }, "fine\n"), member({ name: second }, evil)]);
    const path = await hostile("dup", body);
    expect((await problemsOf(path)).some((p) => p.startsWith("top/a: appears twice in the archive"))).toBe(true);
    expect(readFileSync(join(gnuExtract(path), "top/a"), "utf8")).toBe(evil);
  });

  it.each([["constructor"], ["__proto__"], ["toString"]])(
    "names a file called %s that the manifest does not list",
    async (name) => {
      const path = await hostile(`proto-${name}`, member({ name: `top/${name}` }, evil), { notInManifest: [name] });
      expect(await problemsOf(path)).toContain(`${name} is not listed in manifest.json`);
      expect(readFileSync(join(gnuExtract(path), `top/${name}`), "utf8")).toBe(evil);
    },
  );

  it("refuses data after the end-of-archive blocks, which tar --ignore-zeros extracts", async () => {
    const body = Buffer.concat([END, member({ name: ".profile" }, evil)]);
    const path = await hostile("after-end", body, { ownEnd: true });
    expect((await problemsOf(path)).some((p) => p.includes("data after the end-of-archive block"))).toBe(true);
    expect(readFileSync(join(gnuExtract(path, "--ignore-zeros"), ".profile"), "utf8")).toBe(evil);
  });

  it("refuses a directory entry that carries data, which GNU tar reads as more headers", async () => {
    const hidden = member({ name: ".profile" }, evil);
    const body = Buffer.concat([header({ name: "top/d/", type: "5", mode: 0o755 }, hidden.length), hidden]);
    const path = await hostile("dir-data", body);
    expect(
      (await problemsOf(path)).some((p) => p.includes('"top/d/": a directory entry with 1024 bytes of data')),
    ).toBe(true);
    expect(readFileSync(join(gnuExtract(path), ".profile"), "utf8")).toBe(evil);
  });

  it("ignores the ustar prefix field of a GNU-format header, as GNU tar does", async () => {
    const path = await hostile("gnu-prefix", member({ name: "f", magic: "gnu", prefix: "top" }, evil));
    expect((await problemsOf(path)).some((p) => p.startsWith('"f": a second top-level entry'))).toBe(true);
    expect(readFileSync(join(gnuExtract(path), "f"), "utf8")).toBe(evil);
  });

  it.each([
    ["an unknown type", { name: "top/q", type: "Q" }, /unknown type "Q"/],
    ["a sparse file", { name: "top/s", type: "S" }, /GNU sparse file/],
    ["a volume label", { name: "top/v", type: "V" }, /volume label/],
    [
      "a name that is not UTF-8",
      { name: "top/x", nameBytes: Buffer.from([0x74, 0x6f, 0x70, 0x2f, 0xff]) },
      /not valid UTF-8/,
    ],
    ["a regular file named like a directory", { name: "top/f/" }, /regular file whose name ends in '\/'/],
  ] as [string, Raw, RegExp][])("refuses %s", async (_what, raw, pattern) => {
    const path = await hostile("odd", member(raw, "x"));
    expect((await problemsOf(path)).some((p) => pattern.test(p))).toBe(true);
  });

  it("refuses a top-level entry that is not a directory", async () => {
    const tar = Buffer.concat([member({ name: "top" }, "x"), END]);
    const path = join(work, "file-top.tar.gz");
    await writeFile(path, gzipSync(tar));
    expect((await problemsOf(path)).some((p) => p === "top: the top-level entry is a file, not a directory")).toBe(
      true,
    );
  });

  it("does not hang on a FIFO as the tarball's .sha256, and refuses a FIFO as the tarball", async () => {
    const path = await hostile("fifo", member({ name: "top/innocent" }, "fine\n"));
    expect(spawnSync("mkfifo", [`${path}.sha256`]).status).toBe(0);
    expect((await problemsOf(path)).some((p) => /\.sha256 is not a regular file \(it is a FIFO\)/.test(p))).toBe(true);
    const fifo = join(work, "pipe.tar.gz");
    expect(spawnSync("mkfifo", [fifo]).status).toBe(0);
    await expect(verifyTarball(fifo)).rejects.toThrow(/is not a regular file \(it is a FIFO\)/);
  });
});

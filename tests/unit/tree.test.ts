import { mkdir, mkdtemp, symlink, utimes, writeFile, chmod } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { extract } from "tar-stream";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { packTree } from "../../src/docker/archive.js";
import { listTree, treeDigest } from "../../src/fs/tree.js";

async function sampleTree(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "sf-tree-"));
  await mkdir(join(root, "lib", "python"), { recursive: true });
  await mkdir(join(root, ".git"));
  await mkdir(join(root, "lib", "__pycache__"));
  await writeFile(join(root, ".git", "HEAD"), "ref\n");
  await writeFile(join(root, "lib", "__pycache__", "x.pyc"), "x");
  await writeFile(join(root, "lib", "python", "a.py"), "print(1)\n");
  await writeFile(join(root, "bin"), "#!/bin/sh\n");
  await chmod(join(root, "bin"), 0o700);
  await writeFile(join(root, "secret"), "only mine\n");
  await chmod(join(root, "secret"), 0o600);
  await symlink("lib/python/a.py", join(root, "link"));
  await utimes(join(root, "lib", "python", "a.py"), new Date(1_600_000_000_000), new Date(1_600_000_000_000));
  return root;
}

async function entriesOf(stream: NodeJS.ReadableStream) {
  const out: { name: string; type: string; mode: number; uid: number; mtime: number; body: string; link?: string }[] =
    [];
  const ex = extract();
  stream.on("error", (error: Error) => ex.destroy(error));
  (stream as unknown as NodeJS.ReadableStream).pipe(ex as unknown as NodeJS.WritableStream);
  for await (const entry of ex) {
    const chunks: Buffer[] = [];
    for await (const c of entry) chunks.push(c as Buffer);
    out.push({
      name: entry.header.name,
      type: entry.header.type ?? "",
      mode: entry.header.mode ?? 0,
      uid: entry.header.uid ?? -1,
      mtime: entry.header.mtime?.getTime() ?? 0,
      body: Buffer.concat(chunks).toString(),
      ...(entry.header.linkname ? { link: entry.header.linkname } : {}),
    });
  }
  return out;
}

describe("a tree sent to another host", () => {
  it("lists directories, files and links in byte order, without .git and __pycache__", async () => {
    const root = await sampleTree();
    const paths = (await listTree(root)).map((e) => `${e.type} ${e.path}`);
    expect(paths).toEqual([
      "file bin",
      "directory lib",
      "directory lib/python",
      "file lib/python/a.py",
      "symlink link",
      "file secret",
    ]);
  });

  it("its digest changes when a file's content, size, mode or time does, and not otherwise", async () => {
    const root = await sampleTree();
    const first = treeDigest(await listTree(root));
    expect(treeDigest(await listTree(root))).toBe(first);
    await writeFile(join(root, ".git", "HEAD"), "other\n"); // left out: no change
    expect(treeDigest(await listTree(root))).toBe(first);
    await writeFile(join(root, "lib", "python", "a.py"), "print(2)\n"); // same size, new time
    expect(treeDigest(await listTree(root))).not.toBe(first);
    const second = treeDigest(await listTree(root));
    await chmod(join(root, "bin"), 0o755);
    expect(treeDigest(await listTree(root))).not.toBe(second);
  });

  it("packs bodies from disk, owned by root, readable by all, times kept; GNU tar unpacks it", async () => {
    const root = await sampleTree();
    const entries = await entriesOf(packTree(await listTree(root)));
    const by = new Map(entries.map((e) => [e.name.replace(/\/$/, ""), e]));
    expect(by.get("lib/python/a.py")).toMatchObject({ type: "file", body: "print(1)\n", uid: 0, mode: 0o644 });
    expect(by.get("lib/python/a.py")?.mtime).toBe(1_600_000_000_000);
    expect(by.get("bin")?.mode).toBe(0o744);
    expect(by.get("secret")?.mode).toBe(0o644);
    expect(by.get("lib")).toMatchObject({ type: "directory", mode: 0o755 });
    expect(by.get("link")).toMatchObject({ type: "symlink", link: "lib/python/a.py" });
    const dest = await mkdtemp(join(tmpdir(), "sf-tree-out-"));
    const tar = execa("tar", ["-x", "-C", dest]);
    packTree(await listTree(root)).pipe(tar.stdin!);
    await tar;
    expect((await execa("cat", [join(dest, "link")])).stdout).toBe("print(1)");
  });

  it("fails the stream when a file changed size while it was read", async () => {
    const root = await sampleTree();
    const listed = await listTree(root);
    await writeFile(join(root, "lib", "python", "a.py"), "a longer body than before\n");
    await expect(entriesOf(packTree(listed))).rejects.toThrow();
  });
});

/**
 * `kit verify` on a small kit made and signed with the real gpg: every file against kit.json, nothing extra, no
 * link leaving the kit, the signature against the site's public key (and refused against another key).
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { sealKit } from "../../src/kit/seal.js";
import { verifyKit } from "../../src/kit/verify.js";
import type { KitManifest } from "../../src/kit/manifest.js";
import { loadSigningKey } from "../../src/sign/key.js";
import { initKeys } from "../../src/sign/keys-init.js";

let work: string;
let site: Awaited<ReturnType<typeof initKeys>>;
let other: Awaited<ReturnType<typeof initKeys>>;

const manifest: KitManifest = {
  format_version: 1,
  created_at: "2026-12-07T00:00:00.000Z",
  stack: { name: "demo", version: "1.0", file: "demo.yaml", sha256: "a".repeat(64) },
  targets: ["x86_64_v3"],
  generation: "v1",
  spack: { path: "spack", origin: "local checkout", commit: "unknown" },
  specs: { x86_64_v3: [] },
  images: [],
  repos: [],
  mirrors: [],
  files: {},
};

async function makeKit(name: string): Promise<string> {
  const dir = join(work, name);
  await mkdir(join(dir, "spack", "bin"), { recursive: true });
  await writeFile(join(dir, "spack", "bin", "spack"), "#!/bin/sh\n");
  await mkdir(join(dir, "mirror", "zlib"), { recursive: true });
  await mkdir(join(dir, "mirror", "_source-cache", "archive", "ab"), { recursive: true });
  await writeFile(join(dir, "mirror", "_source-cache", "archive", "ab", "abc.tar.gz"), "zlib source");
  await symlink("../_source-cache/archive/ab/abc.tar.gz", join(dir, "mirror", "zlib", "zlib-1.3.1.tar.gz"));
  const key = await loadSigningKey({ signKey: site.files.secret });
  await sealKit(dir, manifest, key);
  return dir;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "sf-kit-verify-"));
  site = await initKeys(join(work, "site"), { userId: "Site <s@example.org>", algorithm: "ed25519" });
  other = await initKeys(join(work, "other"), { userId: "Other <o@example.org>", algorithm: "ed25519" });
}, 60_000);

describe("kit verify", () => {
  it("accepts a sealed, signed kit with the site's key; refuses another key", async () => {
    const kit = await makeKit("good");
    const ok = await verifyKit(kit, { keyring: site.files.public });
    expect(ok.problems).toEqual([]);
    expect(ok.notes).toEqual([`kit.json signed by ${site.fingerprint}`]);
    expect(Object.keys(ok.manifest.files).sort()).toEqual([
      "mirror/_source-cache/archive/ab/abc.tar.gz",
      "spack/bin/spack",
    ]);
    const wrong = await verifyKit(kit, { keyring: other.files.public });
    expect(wrong.problems).toHaveLength(1);
    expect(wrong.problems[0]).toMatch(/^kit\.json's signature: /);
    expect((await verifyKit(kit)).notes).toEqual(["kit.json is signed; give --keyring PUBKEY to check it"]);
  });

  it("names a changed file, a missing one, an extra one and a link leaving the kit", async () => {
    const kit = await makeKit("tampered");
    await writeFile(join(kit, "spack", "bin", "spack"), "#!/bin/sh\necho changed\n");
    await rm(join(kit, "mirror", "_source-cache", "archive", "ab", "abc.tar.gz"));
    await writeFile(join(kit, "spack", "extra.py"), "");
    await symlink("/etc/passwd", join(kit, "mirror", "zlib", "escape"));
    const { problems } = await verifyKit(kit, { keyring: site.files.public });
    expect(problems).toContainEqual(
      expect.stringMatching(
        /^checksum differs: spack\/bin\/spack \(sha256 [0-9a-f]{64}, kit\.json says [0-9a-f]{64}\)$/,
      ),
    );
    expect(problems).toContain("missing: mirror/_source-cache/archive/ab/abc.tar.gz");
    expect(problems).toContain("not in kit.json: spack/extra.py");
    expect(problems).toContain("a link leaves the kit: mirror/zlib/escape");
  });

  it("refuses a kit.json changed after signing", async () => {
    const kit = await makeKit("resealed");
    // Sealing again without the key leaves the old signature over other bytes.
    await writeFile(join(kit, "spack", "bin", "spack"), "#!/bin/sh\nexit 1\n");
    await sealKit(kit, { ...manifest, created_at: "2026-12-08T00:00:00.000Z" });
    const { problems } = await verifyKit(kit, { keyring: site.files.public });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^kit\.json's signature: /);
  });
});

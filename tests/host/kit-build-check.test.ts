/**
 * What `build --kit` checks before any engine is reached (kit/use-kit.ts `checkKitForBuild`, through the one
 * verifier of `kit verify`), on a small kit sealed and signed with the real gpg: the file a build loads (the builder
 * image) altered, an unsigned kit given a --keyring, another key's keyring, and the warning when a signed kit's
 * signature is left unchecked. And the kit's own files as hostile input: kit.json, kit.json.asc or the --keyring
 * being a FIFO is refused at once, not read forever.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadStack } from "../../src/config/index.js";
import type { Stack } from "../../src/config/types.js";
import { InputError } from "../../src/errors.js";
import type { KitManifest } from "../../src/kit/manifest.js";
import { sealKit } from "../../src/kit/seal.js";
import { checkKitForBuild } from "../../src/kit/use-kit.js";
import { readKit, verifyKit } from "../../src/kit/verify.js";
import { loadSigningKey } from "../../src/sign/key.js";
import { initKeys } from "../../src/sign/keys-init.js";

const STANDIN = resolve("tests/fixtures/spack-standin");
const SPACK_PACKAGES = resolve("tests/fixtures/spack-packages");
let work: string;
let stack: Stack;
let site: Awaited<ReturnType<typeof initKeys>>;
let other: Awaited<ReturnType<typeof initKeys>>;

async function caught(run: () => Promise<unknown>): Promise<Error> {
  try {
    await run();
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected an error, nothing was thrown");
}

/** A kit covering `stack` (x86_64_v3, no sources), sealed, signed by the site's key unless `signed` is false. */
async function makeKit(name: string, signed = true): Promise<string> {
  const dir = join(work, name);
  await mkdir(join(dir, "spack", "bin"), { recursive: true });
  await writeFile(join(dir, "spack", "bin", "spack"), "#!/bin/sh\n");
  await mkdir(join(dir, "images"), { recursive: true });
  await writeFile(join(dir, "images", "builder-x86_64.tar"), "a saved builder image\n");
  const manifest: KitManifest = {
    format_version: 1,
    created_at: "2026-12-07T00:00:00.000Z",
    stack: {
      name: "checked",
      version: "1.0",
      file: stack.file,
      sha256: createHash("sha256")
        .update(await readFile(stack.file))
        .digest("hex"),
    },
    targets: ["x86_64_v3"],
    generation: "v1",
    spack: { path: "spack", origin: "local checkout", commit: "unknown" },
    specs: { x86_64_v3: [] },
    images: [{ family: "x86_64", tag: "sf-kit-check/builder:1", file: "images/builder-x86_64.tar" }],
    repos: [],
    mirrors: [],
    files: {},
  };
  await sealKit(dir, manifest, signed ? await loadSigningKey({ signKey: site.files.secret }) : undefined);
  return dir;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "sf-kit-check-"));
  site = await initKeys(join(work, "site"), { userId: "Site <s@example.org>", algorithm: "ed25519" });
  other = await initKeys(join(work, "other"), { userId: "Other <o@example.org>", algorithm: "ed25519" });
  const file = join(work, "checked.yaml");
  await writeFile(
    file,
    [
      "name: checked",
      'version: "1.0"',
      "specs: [zlib]",
      "targets: [x86_64_v3]",
      "base_image: debian:bookworm",
      "compiler: { os: { packages: [gcc] } }",
      `spack: { source: ${JSON.stringify(STANDIN)}, builtin: { source: ${JSON.stringify(SPACK_PACKAGES)} } }`,
      "",
    ].join("\n"),
  );
  stack = await loadStack(file);
}, 60_000);

afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe("build --kit's check of the kit", () => {
  it("passes a signed kit with the site's keyring; warns, naming --keyring, when none is given", async () => {
    const kit = await makeKit("good");
    const checked = await checkKitForBuild(kit, stack, { keyring: site.files.public });
    expect(checked.warnings).toEqual([]);
    expect(checked.manifest.images[0]?.tag).toBe("sf-kit-check/builder:1");
    const unchecked = await checkKitForBuild(kit, stack);
    expect(unchecked.warnings).toHaveLength(1);
    expect(unchecked.warnings[0]).toMatch(/kit\.json is signed, but its signature was NOT checked \(no --keyring\)/);
    expect(unchecked.warnings[0]).toContain(`kit verify ${kit} --keyring PUBLIC.asc`);
  });

  it("refuses another key's keyring, and an unsigned kit given a keyring", async () => {
    const kit = await makeKit("signed");
    const wrong = await caught(() => checkKitForBuild(kit, stack, { keyring: other.files.public }));
    expect(wrong).toBeInstanceOf(InputError);
    expect(wrong.message).toContain(`--kit ${kit} is refused for ${stack.file}:\n  kit.json's signature: `);
    const unsigned = await makeKit("unsigned", false);
    expect((await checkKitForBuild(unsigned, stack)).warnings).toEqual([]);
    const none = await caught(() => checkKitForBuild(unsigned, stack, { keyring: site.files.public }));
    expect(none).toBeInstanceOf(InputError);
    expect(none.message).toContain("kit.json has no signature (kit.json.asc), and --keyring asks for one");
  });

  it("refuses a kit whose builder image was altered, naming the file", async () => {
    const kit = await makeKit("altered");
    await writeFile(join(kit, "images", "builder-x86_64.tar"), "another image\n");
    const error = await caught(() => checkKitForBuild(kit, stack, { keyring: site.files.public }));
    expect(error).toBeInstanceOf(InputError);
    expect(error.message).toMatch(/\n {2}checksum differs: images\/builder-x86_64\.tar \(sha256 [0-9a-f]{64}, /);
  });
});

describe("a kit's files are hostile input", () => {
  it("kit.json, kit.json.asc or the --keyring as a FIFO is refused at once, not read forever", async () => {
    const kit = await makeKit("fifos");
    const keyring = join(work, "keyring-fifo");
    execFileSync("mkfifo", [keyring]);
    // The test's own timeout is the "forever": a plain read of a FIFO with no writer never returns.
    const byKeyring = await caught(() => verifyKit(kit, { keyring }));
    expect(byKeyring).toBeInstanceOf(InputError);
    expect(byKeyring.message).toBe(`--keyring ${keyring} is a FIFO, not a regular file`);
    await rm(join(kit, "kit.json.asc"));
    execFileSync("mkfifo", [join(kit, "kit.json.asc")]);
    const { problems } = await verifyKit(kit, { keyring: site.files.public });
    expect(problems).toEqual(["kit.json.asc is not a regular file"]);
    await rm(join(kit, "kit.json"));
    execFileSync("mkfifo", [join(kit, "kit.json")]);
    const byManifest = await caught(() => readKit(kit));
    expect(byManifest).toBeInstanceOf(InputError);
    expect(byManifest.message).toBe(`the kit's manifest ${join(kit, "kit.json")} is a FIFO, not a regular file`);
  });
});

/**
 * Issue 21: an air-gapped factory from one kit. `kit create` on the "connected" side fetches every source from a
 * loopback server (the stand-in's recipe URLs, SPACK_STANDIN_URL_BASE); then the server stops, the host's cache and
 * the builder image the kit made are removed, and `build --kit` builds with every container on network none (where
 * the stand-in's downloads fail, as Spack's do). The tarball verifies. A kit lacking a source, or made for
 * another stack, is refused before any container starts. Uses a base image tag of its own, so that the builder
 * image it removes is one no other test uses.
 */
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Readable } from "node:stream";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Engine } from "../../src/docker/index.js";
import { runCli } from "./helpers/cli.js";
import { requireEngine, requireTestImage, TEST_IMAGE } from "./helpers/engine.js";
import { startKitSourceServer, type KitSourceServer } from "./helpers/kit-sources.js";
import { SPACK_PACKAGES, STANDIN, tempDir } from "./helpers/stack.js";

let engine: Engine;
let dir: string;
let sources: KitSourceServer;
let base: string;
let baseTag: string;
let stackFile: string;
let served: string[];
let files: ReadonlyMap<string, Buffer>;

/**
 * Network mode of every container the CLI process started by `start` creates (docker events filtered by the
 * factory's pid label, then inspect): other tests' containers on the same engine are not counted.
 */
async function networksDuring(
  start: () => ReturnType<typeof runCli>,
): Promise<{ result: Awaited<ReturnType<typeof runCli>>; networks: string[] }> {
  const events = (await engine.docker.getEvents({
    filters: { type: ["container"], event: ["create"], label: ["stack-factory=1"] },
  })) as unknown as Readable;
  const seen: { id: string; pid: string }[] = [];
  let pending = "";
  events.on("data", (chunk: Buffer) => {
    pending += String(chunk);
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines.filter((l) => l.trim() !== "")) {
      const event = JSON.parse(line) as { id: string; Actor: { Attributes: Record<string, string> } };
      seen.push({ id: event.id, pid: event.Actor.Attributes["stack-factory.pid"] ?? "" });
    }
  });
  const inspected = new Map<string, Promise<string>>();
  try {
    const child = start();
    const pid = String(child.pid);
    const inspectNew = () => {
      for (const e of seen.filter((x) => x.pid === pid && !inspected.has(x.id)))
        inspected.set(
          e.id,
          engine.docker
            .getContainer(e.id)
            .inspect()
            .then((c) => c.HostConfig.NetworkMode ?? "")
            .catch(() => `gone before inspection: ${e.id}`),
        );
    };
    events.on("data", inspectNew);
    const result = await child;
    inspectNew();
    return { result, networks: await Promise.all(inspected.values()) };
  } finally {
    events.destroy();
  }
}

beforeAll(async () => {
  engine = await requireEngine();
  await requireTestImage(engine);
  dir = fs.realpathSync(await tempDir("kit"));
  // A base image tag of this test's own: the builder image (tagged by its Dockerfile) is then this test's alone.
  baseTag = `kit-${process.pid}-${randomBytes(4).toString("hex")}`;
  await engine.docker.getImage(TEST_IMAGE).tag({ repo: "stack-factory-test/debian", tag: baseTag });
  sources = await startKitSourceServer(dir);
  ({ base, served, files } = sources);
  stackFile = path.join(dir, "kitdemo.yaml");
  fs.writeFileSync(
    stackFile,
    [
      "name: kitdemo",
      'version: "1.0"',
      "specs: [zlib]",
      "targets: [x86_64_v3]",
      `base_image: stack-factory-test/debian:${baseTag}`,
      "compiler: { os: { packages: [gcc] } }",
      `spack: { source: ${JSON.stringify(STANDIN)}, builtin: { source: ${JSON.stringify(SPACK_PACKAGES)} } }`,
      "",
    ].join("\n"),
  );
});

afterAll(async () => {
  await sources?.close();
  const manifest = path.join(dir ?? "", "kit", "kit.json");
  if (fs.existsSync(manifest)) {
    for (const image of (JSON.parse(fs.readFileSync(manifest, "utf8")) as { images: { tag: string }[] }).images)
      await engine.docker
        .getImage(image.tag)
        .remove({ force: true })
        .catch(() => undefined);
  }
  if (baseTag !== undefined)
    await engine.docker
      .getImage(`stack-factory-test/debian:${baseTag}`)
      .remove()
      .catch(() => undefined);
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
});

// Steps of one scenario: the kit the first test makes is the one the second takes apart.
describe("kit: an air-gapped factory from one command", { shuffle: false }, () => {
  it("makes a kit from a loopback server, then builds from it alone with no network; the tarball verifies", async () => {
    const kit = path.join(dir, "kit");
    const connectedCache = path.join(dir, "cache-connected");
    const made = await runCli([
      ...["kit", "create", stackFile, kit, "--cache-dir", connectedCache, "--network", "host"],
      ...["--env", `SPACK_STANDIN_URL_BASE=${base}`],
    ]);
    expect(made.exitCode, made.all).toBe(0);
    expect(made.stdout).toMatch(/kit .*: kitdemo 1\.0, targets x86_64_v3, 1 source archive\(s\), 1 builder image\(s\)/);
    expect(served).toContain("/zlib/zlib-1.3.1.tar.gz");
    expect(served).toContain("/bootstrap/bootstrap-buildcache.tar.gz");
    const manifest = JSON.parse(fs.readFileSync(path.join(kit, "kit.json"), "utf8"));
    const zlib = (manifest.specs.x86_64_v3 as { name: string; source?: string }[]).find((s) => s.name === "zlib");
    expect(zlib?.source).toMatch(/^mirror\/_source-cache\/archive\/[0-9a-f]{2}\/[0-9a-f]{64}\.tar\.gz$/);
    expect(
      createHash("sha256")
        .update(fs.readFileSync(path.join(kit, zlib!.source!)))
        .digest("hex"),
    ).toBe(manifest.files[zlib!.source!]);
    expect(fs.readFileSync(path.join(kit, zlib!.source!))).toEqual(files.get("/zlib/zlib-1.3.1.tar.gz"));
    expect(fs.existsSync(path.join(kit, "spack", "bin", "spack"))).toBe(true);
    expect(fs.existsSync(path.join(kit, "bootstrap", "metadata", "binaries", "clingo.json"))).toBe(true);
    const builder = manifest.images[0].tag as string;

    // The far side: no server, no cache, no builder image.
    await sources.close();
    fs.rmSync(connectedCache, { recursive: true, force: true });
    await engine.docker.getImage(builder).remove({ force: true });
    await engine.docker.getImage(`stack-factory-test/debian:${baseTag}`).remove();

    const doctor = await runCli(["doctor", stackFile, "--kit", kit, "--cache-dir", path.join(dir, "cache-doctor")]);
    expect(doctor.exitCode, doctor.all).toBe(0);
    expect(doctor.stdout).toContain(`ok   builder image ${builder} (x86_64): loaded from images/builder-x86_64.tar`);
    expect(doctor.stdout).toContain("ok   this host can build kitdemo 1.0 from the kit alone");
    const verified = await runCli(["kit", "verify", kit, "--stack", stackFile]);
    expect(verified.exitCode, verified.all).toBe(0);
    expect(verified.stdout).toContain("covers");

    const out = path.join(dir, "dist");
    const { result: build, networks } = await networksDuring(() =>
      runCli([...["build", stackFile, "--kit", kit, "--cache-dir", path.join(dir, "cache-airgapped"), "--out", out]]),
    );
    expect(build.exitCode, build.all).toBe(0);
    expect(build.all).toContain(`loading builder image ${builder} from the kit`);
    // zlib's source came from the kit's mirror, by checksum, as Spack reads a mirror offline.
    const logs = path.join(dir, "cache-airgapped", "logs");
    const [run] = fs.readdirSync(logs);
    const log = fs.readFileSync(path.join(logs, run as string, "x86_64_v3.log"), "utf8");
    expect(log).toContain(`Fetching file:///sf/mirrors/kit-sources/${zlib!.source!.slice("mirror/".length)}`);
    expect(networks.length).toBeGreaterThan(0);
    expect(new Set(networks)).toEqual(new Set(["none"]));
    const tarball = path.join(out, "kitdemo-1.0-x86_64_v3.tar.gz");
    const checked = await runCli(["verify", tarball]);
    expect(checked.exitCode, checked.all).toBe(0);
    // The tarball records the commits the kit was made from, though the kit's trees are plain.
    const shipped = JSON.parse(
      (await execa("tar", ["-xzOf", tarball, "kitdemo-1.0-x86_64_v3/manifest.json"])).stdout,
    ) as { spack_commit: string; spack_packages_commit: string };
    expect(manifest.spack.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(shipped.spack_commit).toBe(manifest.spack.commit);
    expect(shipped.spack_packages_commit).toBe(manifest.spack_packages.commit);
  });

  it("refuses, before any container starts, a kit lacking a source, and a stack it was not made for", async () => {
    const kit = path.join(dir, "kit");
    const manifest = JSON.parse(fs.readFileSync(path.join(kit, "kit.json"), "utf8"));
    const zlib = (manifest.specs.x86_64_v3 as { name: string; source: string }[]).find((s) => s.name === "zlib")!;
    const aside = path.join(dir, "zlib-aside");
    fs.renameSync(path.join(kit, zlib.source), aside);
    try {
      const { result: refused, networks } = await networksDuring(() =>
        runCli(["build", stackFile, "--kit", kit, "--cache-dir", path.join(dir, "cache-refused"), "--out", dir]),
      );
      expect(refused.exitCode).toBe(2);
      expect(refused.stderr).toContain(`source of zlib@1.3.1 (target x86_64_v3) is missing: ${zlib.source}`);
      expect(networks).toEqual([]);
      const verify = await runCli(["kit", "verify", kit]);
      expect(verify.exitCode).toBe(1);
      expect(verify.stdout).toContain(`FAIL missing: ${zlib.source}`);
      const doctor = await runCli(["doctor", stackFile, "--kit", kit, "--cache-dir", path.join(dir, "cache-doctor")]);
      expect(doctor.exitCode).toBe(1);
      expect(doctor.stdout).toContain(`FAIL kit: source of zlib@1.3.1 (target x86_64_v3) is missing: ${zlib.source}`);
    } finally {
      fs.renameSync(aside, path.join(kit, zlib.source));
    }
    const other = path.join(dir, "other.yaml");
    fs.writeFileSync(
      other,
      fs.readFileSync(stackFile, "utf8").replace("targets: [x86_64_v3]", "targets: [x86_64_v3, x86_64_v2]"),
    );
    const { result: otherStack, networks } = await networksDuring(() =>
      runCli(["warm", other, "--kit", kit, "--cache-dir", path.join(dir, "cache-refused")]),
    );
    expect(otherStack.exitCode).toBe(2);
    expect(otherStack.stderr).toContain("the kit was made for another stack file");
    expect(otherStack.stderr).toContain("target x86_64_v2 is not in the kit (it has: x86_64_v3)");
    expect(networks).toEqual([]);
  });
});

/**
 * `build --kit` / `warm --kit` use only a kit that is what kit.json says: a kit is made and signed with a site key
 * (a loopback server stands for the network), then one file of its mirror is altered, or a file added: the build
 * is refused (exit 2, the file named) before any container is created. Restored, it is refused against another
 * key's --keyring, builds with the site's, and, with no --keyring, builds but says that the signature was not
 * checked and how to check it.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Engine } from "../../src/docker/index.js";
import { runCli } from "./helpers/cli.js";
import { requireEngine, requireTestImage, TEST_IMAGE } from "./helpers/engine.js";
import { startKitSourceServer } from "./helpers/kit-sources.js";
import { SPACK_PACKAGES, STANDIN, tempDir } from "./helpers/stack.js";

let engine: Engine;
let dir: string;
let kit: string;
let stackFile: string;
let source: string;
const keys = { site: "", other: "" };
/** Label of a container this test creates after a run: its create event follows every create of the run. */
const MARKER = "sf-kit-trust-marker";

/** The ids of the containers the CLI process `start` runs creates (docker events, by the factory's pid label). */
async function containersCreatedBy(
  start: () => ReturnType<typeof runCli>,
): Promise<{ result: Awaited<ReturnType<typeof runCli>>; created: string[] }> {
  const events = (await engine.docker.getEvents({
    filters: { type: ["container"], event: ["create"] },
  })) as unknown as Readable;
  const seen: { id: string; pid: string }[] = [];
  let pending = "";
  events.on("data", (chunk: Buffer) => {
    pending += String(chunk);
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines.filter((l) => l.trim() !== "")) {
      const event = JSON.parse(line) as { id: string; Actor: { Attributes: Record<string, string> } };
      const labels = event.Actor.Attributes;
      if (labels["stack-factory"] === "1") seen.push({ id: event.id, pid: labels["stack-factory.pid"] ?? "" });
      if (labels[MARKER] === String(process.pid)) seen.push({ id: event.id, pid: MARKER });
    }
  });
  try {
    const child = start();
    const result = await child;
    // A create the engine reported before the process ended is in `seen` once this marker event arrives.
    const marker = await engine.docker.createContainer({
      Image: TEST_IMAGE,
      Cmd: ["true"],
      Labels: { [MARKER]: String(process.pid) },
    });
    await marker.remove({ force: true });
    await expect.poll(() => seen.some((e) => e.pid === MARKER)).toBe(true);
    return { result, created: seen.filter((e) => e.pid === String(child.pid)).map((e) => e.id) };
  } finally {
    events.destroy();
  }
}

beforeAll(async () => {
  engine = await requireEngine();
  await requireTestImage(engine);
  dir = fs.realpathSync(await tempDir("kit-trust"));
  for (const name of ["site", "other"] as const) {
    const made = await runCli([
      "keys",
      "init",
      path.join(dir, `keys-${name}`),
      "--name",
      `${name} <${name}@example.org>`,
    ]);
    if (made.exitCode !== 0) throw new Error(`keys init ${name}: ${made.all}`);
    keys[name] = path.join(dir, `keys-${name}`, "public.asc");
  }
  stackFile = path.join(dir, "trusted.yaml");
  fs.writeFileSync(
    stackFile,
    [
      "name: trusted",
      'version: "1.0"',
      "specs: [zlib]",
      "targets: [x86_64_v3]",
      `base_image: ${TEST_IMAGE}`,
      "compiler: { os: { packages: [gcc] } }",
      `spack: { source: ${JSON.stringify(STANDIN)}, builtin: { source: ${JSON.stringify(SPACK_PACKAGES)} } }`,
      "",
    ].join("\n"),
  );
  const server = await startKitSourceServer(dir);
  kit = path.join(dir, "kit");
  try {
    const made = await runCli([
      ...["kit", "create", stackFile, kit, "--cache-dir", path.join(dir, "cache-connected"), "--network", "host"],
      ...["--env", `SPACK_STANDIN_URL_BASE=${server.base}`],
      ...["--sign-key", path.join(dir, "keys-site", "secret.asc")],
    ]);
    if (made.exitCode !== 0) throw new Error(`kit create: ${made.all}`);
  } finally {
    await server.close();
  }
  const manifest = JSON.parse(fs.readFileSync(path.join(kit, "kit.json"), "utf8"));
  source = (manifest.specs.x86_64_v3 as { name: string; source: string }[]).find((s) => s.name === "zlib")!.source;
});

afterAll(() => {
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
});

describe("build --kit checks the kit before it uses it", { shuffle: false }, () => {
  it("refuses a kit whose mirror file was altered, or which gained a file, before any container is created", async () => {
    expect(fs.existsSync(path.join(kit, "kit.json.asc"))).toBe(true);
    const archive = path.join(kit, source);
    const original = fs.readFileSync(archive);
    fs.appendFileSync(archive, "\0");
    const out = path.join(dir, "dist-altered");
    try {
      const { result, created } = await containersCreatedBy(() =>
        runCli(["build", stackFile, "--kit", kit, "--cache-dir", path.join(dir, "cache-altered"), "--out", out]),
      );
      expect(result.exitCode, result.all).toBe(2);
      expect(result.stderr).toMatch(new RegExp(`checksum differs: ${source.replace(/\./g, "\\.")} \\(sha256 `));
      expect(created).toEqual([]);
      expect(fs.existsSync(out)).toBe(false);
      const warm = await containersCreatedBy(() =>
        runCli([
          "warm",
          stackFile,
          "--kit",
          kit,
          "--keyring",
          keys.site,
          "--cache-dir",
          path.join(dir, "cache-altered"),
        ]),
      );
      expect(warm.result.exitCode, warm.result.all).toBe(2);
      expect(warm.result.stderr).toContain(`checksum differs: ${source}`);
      expect(warm.created).toEqual([]);
    } finally {
      fs.writeFileSync(archive, original);
    }
    const extra = path.join(kit, "mirror", "_source-cache", "archive", "extra.tar.gz");
    fs.writeFileSync(extra, "not from kit create\n");
    try {
      const { result, created } = await containersCreatedBy(() =>
        runCli(["build", stackFile, "--kit", kit, "--cache-dir", path.join(dir, "cache-altered"), "--out", out]),
      );
      expect(result.exitCode, result.all).toBe(2);
      expect(result.stderr).toContain("not in kit.json: mirror/_source-cache/archive/extra.tar.gz");
      expect(created).toEqual([]);
    } finally {
      fs.rmSync(extra);
    }
  });

  it("refuses a signed kit against another key's keyring; builds with the site's; says when it went unchecked", async () => {
    const cache = path.join(dir, "cache-built");
    const out = path.join(dir, "dist");
    const wrong = await containersCreatedBy(() =>
      runCli(["build", stackFile, "--kit", kit, "--keyring", keys.other, "--cache-dir", cache, "--out", out]),
    );
    expect(wrong.result.exitCode, wrong.result.all).toBe(2);
    expect(wrong.result.stderr).toContain("kit.json's signature: ");
    expect(wrong.created).toEqual([]);

    const good = await runCli([
      "build",
      stackFile,
      "--kit",
      kit,
      "--keyring",
      keys.site,
      "--cache-dir",
      cache,
      "--out",
      out,
    ]);
    expect(good.exitCode, good.all).toBe(0);
    expect(good.all).not.toContain("NOT checked");
    const tarball = path.join(out, "trusted-1.0-x86_64_v3.tar.gz");
    expect((await runCli(["verify", tarball])).exitCode).toBe(0);

    const unchecked = await runCli(["build", stackFile, "--kit", kit, "--cache-dir", cache, "--out", out]);
    expect(unchecked.exitCode, unchecked.all).toBe(0);
    expect(unchecked.stderr).toContain(
      `kit ${kit}: kit.json is signed, but its signature was NOT checked (no --keyring); its checksums were. To check it, give --keyring PUBLIC.asc`,
    );

    const stray = await runCli(["build", stackFile, "--keyring", keys.site, "--cache-dir", cache, "--out", out]);
    expect(stray.exitCode).toBe(2);
    expect(stray.stderr).toContain("--keyring goes with --kit DIR");
  });
});

/**
 * An unchanged target starts no container: `build` hands out the tarball kept from the same inputs, `warm` reports
 * the buildcache's specs as reused. A change of any one input (a spec, a template's value, the signing key), a
 * pruned buildcache entry or a tampered kept tarball runs the target as before, and the report names the reason.
 * Containers are counted from the engine's own events for the run's label, not from anything the factory says.
 */
import { readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { buildcacheLocation } from "../../src/config/factory.js";
import { specsInOciBuildcache } from "../../src/run/buildcache-oci.js";
import { lockSpecs } from "../../src/run/lock-specs.js";
import { initKeys } from "../../src/sign/keys-init.js";
import { blobPath, buildcacheEntries, recordOf, TARBALL_TYPE } from "./helpers/buildcache.js";
import { runCli } from "./helpers/cli.js";
import { containersCreated } from "./helpers/events.js";
import { requireEngine, requireTestImage } from "./helpers/engine.js";
import { requireRegistry } from "./helpers/registry.js";
import { tempDir, writeTestStack } from "./helpers/stack.js";

interface Report {
  runId: string;
  targets: {
    status: string;
    reason?: string;
    built: string[];
    fromCache: string[];
    tarball?: string;
    logPath: string;
    steps: { step: string; reused?: boolean }[];
    error?: string;
  }[];
}

let work: string;
let cacheRoot: string;
let out: string;

beforeAll(async () => {
  golden = join(await tempDir("up-to-date-golden"), "cache");
  const engine = await requireEngine();
  await requireTestImage(engine);
  await execa("npm", ["run", "build"], { stdio: "ignore" });
  work = await tempDir("up-to-date");
  // One build made once; each test starts from its own copy of that cache, so the tests run in any order.
  cacheRoot = golden;
  out = join(work, "golden-out");
  await run("build", await stackOf());
});

let golden = "";
let copies = 0;
beforeEach(async () => {
  copies++;
  cacheRoot = join(work, `cache-${copies}`);
  out = join(work, `out-${copies}`);
  await execa("cp", ["-a", golden, cacheRoot]);
});

/** Runs the CLI with a report; the report, what it printed, and the containers the engine created for that run. */
async function run(
  command: "build" | "warm",
  stackFile: string,
  extra: string[] = [],
): Promise<{ report: Report; all: string; containers: string[] }> {
  const since = Math.floor(Date.now() / 1000) - 1;
  const reportPath = join(work, `report-${Date.now()}.json`);
  const args = [command, stackFile, "--cache-dir", cacheRoot, "--report", reportPath, "--jobs", "2", ...extra];
  const result = await runCli(command === "build" ? [...args, "--out", out] : args);
  expect(result.exitCode, result.all).toBe(0);
  const report = JSON.parse(await readFile(reportPath, "utf8")) as Report;
  return { report, all: result.all, containers: await containersCreated(report.runId, since) };
}

const stackOf = (over: { specs?: string[]; extra?: string } = {}) =>
  writeTestStack(work, { name: "fresh", specs: over.specs ?? ["zlib"], ...(over.extra ? { extra: over.extra } : {}) });

describe("an unchanged target", () => {
  it("build: the second build starts no container and hands out the same tarball, which verifies", async () => {
    // From an empty cache, not the copy of the one built before.
    await rm(cacheRoot, { recursive: true, force: true });
    const stackFile = await stackOf();
    const first = await run("build", stackFile);
    expect(first.report.targets[0]!.reason).toBe("no earlier concretization with these inputs");
    expect(first.containers.length).toBeGreaterThan(0);
    const tarball = first.report.targets[0]!.tarball!;
    // An engine of this machine: packed straight into a staging directory of the output directory, renamed into
    // place, the staging directory gone.
    const log = await readFile(first.report.targets[0]!.logPath, "utf8");
    expect(log).toContain(`wrote ${join(out, ".stack-factory-")}`);
    expect((await readdir(out)).filter((n) => n.startsWith("."))).toEqual([]);
    const bytes = await readFile(tarball);
    await rm(tarball);
    await rm(`${tarball}.sha256`);

    const second = await run("build", stackFile);
    const t = second.report.targets[0]!;
    expect(t.reason).toBe("up to date: nothing started");
    expect(second.containers).toEqual([]);
    expect(t.built).toEqual([]);
    expect(t.fromCache.some((s) => s.startsWith("zlib-"))).toBe(true);
    expect(second.all).toContain("up to date: nothing started");
    expect((await readFile(t.tarball!)).equals(bytes)).toBe(true);
    const verify = await runCli(["verify", t.tarball!]);
    expect(verify.exitCode, verify.all).toBe(0);
  });

  it("warm: reports every spec as reused without a container", async () => {
    const { report, containers } = await run("warm", await stackOf());
    expect(containers).toEqual([]);
    expect(report.targets[0]).toMatchObject({ status: "ok", reason: "up to date: nothing started", built: [] });
    expect(report.targets[0]!.fromCache.some((s) => s.startsWith("zlib-"))).toBe(true);
  });
});

describe("a changed input runs the target and names the reason", () => {
  it("a tampered kept tarball", async () => {
    const stackFile = await stackOf();
    const kept = join(cacheRoot, "kept", "fresh-1.0-x86_64_v3", "fresh-1.0-x86_64_v3.tar.gz");
    const bytes = await readFile(kept);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
    // Its own file (a hard link with the output would change that one too, and that is what a tamperer does).
    await rm(kept);
    await writeFile(kept, bytes);
    const { report, containers } = await run("build", stackFile);
    expect(report.targets[0]!.reason).toMatch(
      /^the kept tarball \S+ has sha256 [0-9a-f]{64}, [0-9a-f]{64} was recorded$/,
    );
    expect(containers.length).toBeGreaterThan(0);
    // Built and packed again, it is kept again: the next build is up to date.
    expect((await run("build", stackFile)).containers).toEqual([]);
  });

  it("a pruned buildcache entry", async () => {
    const stackFile = await stackOf();
    const [key] = await readdir(join(cacheRoot, "buildcache"));
    const dir = join(cacheRoot, "buildcache", key!);
    // Spack 1.x's layout: zlib's manifest stays, the tarball blob it lists is gone.
    const zlib = buildcacheEntries(dir).filter((e) => e.name === "zlib");
    expect(zlib).toHaveLength(1);
    await rm(blobPath(dir, recordOf(zlib[0]!, TARBALL_TYPE)));
    const { report, containers } = await run("build", stackFile);
    expect(report.targets[0]!.reason).toMatch(/^not in the buildcache: zlib@[\w.]+\/[a-z0-9]{7}$/);
    expect(containers.length).toBeGreaterThan(0);
  });

  it("a signed buildcache entry whose manifest lost its signature", async () => {
    const stackFile = await stackOf();
    const site = await initKeys(join(work, "site-stripped"), {
      userId: "Site <site@example.org>",
      algorithm: "ed25519",
    });
    expect((await run("build", stackFile, ["--sign-key", site.files.secret])).report.targets[0]!.reason).toMatch(
      /signing key/,
    );
    const key = (await readdir(join(cacheRoot, "buildcache"))).find((k) => /_signed-[0-9A-F]+$/.test(k))!;
    const dir = join(cacheRoot, "buildcache", key);
    const entries = buildcacheEntries(dir);
    expect(entries.length).toBeGreaterThan(0);
    expect(entries.filter((e) => !e.signed)).toEqual([]);
    // zlib's manifest, its clearsigned body only: a signed buildcache does not hold it.
    const zlib = entries.find((e) => e.name === "zlib")!;
    const body = /-----BEGIN PGP SIGNED MESSAGE-----\s+Hash:\s+\S+\s+([\s\S]+)-----BEGIN PGP SIGNATURE-----/.exec(
      zlib.text,
    )!;
    await writeFile(zlib.manifestPath, body[1]!);
    const { report, containers } = await run("build", stackFile, ["--sign-key", site.files.secret]);
    expect(report.targets[0]!.reason).toMatch(/^not in the buildcache: zlib@[\w.]+\/[a-z0-9]{7}$/);
    expect(containers.length).toBeGreaterThan(0);
  });

  it("a value of the install script and module (the prefix)", async () => {
    const { report, containers } = await run("build", await stackOf({ extra: "prefix: /opt/elsewhere/1.0" }));
    expect(report.targets[0]!.reason).toBe("changed since the kept tarball: install script and module, prefix");
    expect(containers.length).toBeGreaterThan(0);
    // Only the tarball changed: the kept lock serves (it names the compiler: no registration) and every spec is in
    // the buildcache, so nothing is fetched or pushed; the tarball is packed anew and verifies.
    const reused = report.targets[0]!.steps.filter((s) => s.reused === true).map((s) => s.step);
    expect(reused).toEqual(["compiler", "concretize", "fetch", "push"]);
    const log = await readFile(report.targets[0]!.logPath, "utf8");
    expect(log).toContain("step fetch: skipped: every spec of the reused concretization is in the buildcache");
    const verify = await runCli(["verify", report.targets[0]!.tarball!]);
    expect(verify.exitCode, verify.all).toBe(0);
  });

  it("a spec", async () => {
    const { report, containers } = await run("build", await stackOf({ specs: ["zlib", "json-c"] }));
    expect(report.targets[0]!.reason).toMatch(/^changed since the last build: spack\.yaml/);
    expect(containers.length).toBeGreaterThan(0);
  });

  it("the signing key: a signed rebuild is up to date with a signature by the current key; another key runs", async () => {
    const stackFile = await stackOf();
    const site = await initKeys(join(work, "site"), { userId: "Site <site@example.org>", algorithm: "ed25519" });
    const other = await initKeys(join(work, "other"), { userId: "Other <other@example.org>", algorithm: "ed25519" });
    const signed = await run("build", stackFile, ["--sign-key", site.files.secret]);
    expect(signed.report.targets[0]!.reason).toMatch(/signing key/);
    const again = await run("build", stackFile, ["--sign-key", site.files.secret]);
    expect(again.report.targets[0]!.reason).toBe("up to date: nothing started");
    expect(again.containers).toEqual([]);
    const tarball = again.report.targets[0]!.tarball!;
    const verify = await runCli(["verify", tarball, "--keyring", site.files.public]);
    expect(verify.exitCode, verify.all).toBe(0);
    const changed = await run("build", stackFile, ["--sign-key", other.files.secret]);
    expect(changed.report.targets[0]!.reason).toMatch(/signing key/);
    expect(changed.containers.length).toBeGreaterThan(0);
    const byOther = await runCli(["verify", tarball, "--keyring", other.files.public]);
    expect(byOther.exitCode, byOther.all).toBe(0);
  });
});

describe("an OCI buildcache, read through the registry's API", () => {
  it("warm: a target whose specs are all tagged and indexed is up to date; the reader sees what is missing and refuses without credentials", async () => {
    const registry = await requireRegistry();
    const repository = registry.freshRepository("up-to-date");
    // Over https with the registry's own CA: the host-side reader trusts buildcache_ca as the build containers do.
    const location = buildcacheLocation(registry.ociUrl(repository));
    const ca = await readFile(registry.caFile!, "utf8");
    if (location.kind !== "oci") throw new Error("not an OCI location");
    const factory = join(work, "oci-factory.yaml");
    const ociCache = join(work, "oci-cache");
    await writeFile(
      factory,
      [
        "engines:",
        "  - url: unix:///var/run/docker.sock",
        "    name: main",
        `    cache: ${ociCache}`,
        "    network: host",
        `buildcache: ${location.url}`,
        `credentials: ${registry.credentialsFile}`,
        `buildcache_ca: ${registry.caFile}`,
        "",
      ].join("\n"),
    );
    const stackFile = await writeTestStack(work, { name: "oci", specs: ["zlib"] });
    const warm = async () => {
      const reportPath = join(work, `oci-${Date.now()}.json`);
      const result = await runCli([
        "warm",
        stackFile,
        "--factory",
        factory,
        "--cache-dir",
        ociCache,
        "--report",
        reportPath,
      ]);
      expect(result.exitCode, result.all).toBe(0);
      return JSON.parse(await readFile(reportPath, "utf8")) as Report;
    };
    expect((await warm()).targets[0]!.reason).toBe("no earlier concretization with these inputs");
    const second = await warm();
    expect(second.targets[0]!.reason).toBe("up to date: nothing started");
    expect(second.targets[0]!.fromCache.some((s) => s.startsWith("zlib-"))).toBe(true);

    // The reader itself, on the same repository: the specs the lock names are there, a spec never pushed is not.
    const [lockKey] = await readdir(join(ociCache, "concretized"));
    const specs = lockSpecs(await readFile(join(ociCache, "concretized", lockKey!, "spack.lock"), "utf8"));
    const catalog = (await registry.get("/v2/_catalog?n=1000")) as { repositories: string[] };
    const mine = catalog.repositories.filter((r) => r.startsWith(`${repository}/`));
    expect(mine).toHaveLength(1);
    const credentials = { username: registry.username, password: registry.password };
    const signal = new AbortController().signal;
    const never = { name: "zlib", version: "9.9", hash: "a".repeat(32) };
    expect(
      await specsInOciBuildcache([...specs, never], { location, repository: mine[0]!, credentials, ca, signal }),
    ).toEqual({ missing: [never] });
    expect(
      await specsInOciBuildcache(specs, { location, repository: `${repository}/nothing`, credentials, ca, signal }),
    ).toEqual({
      missing: specs,
    });
    // Without the registry's CA its certificate is not trusted; without credentials it refuses.
    const untrusted = await specsInOciBuildcache(specs, { location, repository: mine[0]!, credentials, signal });
    expect("unreadable" in untrusted && untrusted.unreadable).toMatch(/certificate/);
    expect(await specsInOciBuildcache(specs, { location, repository: mine[0]!, ca, signal })).toEqual({
      unreadable: `cannot read the buildcache ${registry.address}/${mine[0]}: the registry asks for credentials and none were given`,
    });
  });
});

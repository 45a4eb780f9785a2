/**
 * An engine of another host: the second engine of scripts/ensure-second-engine.sh reached over TCP with mutual TLS,
 * which the factory takes for an engine it can reach only through its API. Its cache root is a directory the factory
 * process cannot even look into (it runs as an ordinary user when the test runs as root): the cache directories,
 * Spack and spack-packages get there through the engine, the build runs there, and the tarball, logs and report
 * come home. A second run sends nothing and builds nothing.
 */
import { chmod, copyFile, mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { connectEngine } from "../../src/docker/index.js";
import type { RunReport } from "../../src/run/report.js";
import { buildcacheEntries } from "./helpers/buildcache.js";
import { requireEngine, requireTestImage } from "./helpers/engine.js";
import { CLI, tempDir, writeTestStack } from "./helpers/stack.js";
import { ensureUser, type TestUser } from "./helpers/users.js";

const TLS_URL = process.env["STACK_FACTORY_SECOND_ENGINE_TLS"] ?? "tcp://127.0.0.1:23760";
const TLS_CLIENT = process.env["STACK_FACTORY_SECOND_ENGINE_TLS_DIR"] ?? "/var/lib/stack-factory-docker2-tls/client";
/**
 * The ordinary user the factory runs as when the test runs as root: in no supplementary group, the docker group
 * included, since it reaches the engine through TCP with TLS only.
 */
const BUILDER: TestUser = { name: "sf-tls-user", uid: 4244, groups: [] };
/** Its uid and gid, once made. */
let builder = { uid: -1, gid: -1 };

const isRoot = process.getuid?.() === 0;
let work: string;
let dir: string;
let remoteRoot: string;
let factoryFile: string;
let stackFile: string;

/** The CLI as the ordinary user (as root: through runuser), never throwing. */
function factory(args: string[]) {
  const argv = [CLI, ...args];
  return isRoot
    ? execa("runuser", ["-u", BUILDER.name, "--", process.execPath, ...argv], {
        reject: false,
        all: true,
        env: { CI: "1" },
      })
    : execa(process.execPath, argv, { reject: false, all: true, env: { CI: "1" } });
}

beforeAll(async () => {
  await requireTestImage(await requireEngine());
  const remote = await connectEngine({ endpoint: { url: TLS_URL, tlsDir: TLS_CLIENT } }).catch((error: unknown) => {
    throw new Error(
      `this test needs the second engine on ${TLS_URL} with TLS: ${(error as Error).message}; start it with scripts/ensure-second-engine.sh`,
    );
  });
  await requireTestImage(remote);
  await execa("npm", ["run", "build"], { stdio: "ignore" });
  work = await tempDir("remote");
  await chmod(work, 0o755);
  dir = join(work, "factory");
  await mkdir(join(dir, "tls"), { recursive: true });
  for (const f of ["ca.pem", "cert.pem", "key.pem"]) await copyFile(join(TLS_CLIENT, f), join(dir, "tls", f));
  await chmod(join(dir, "tls", "key.pem"), 0o600);
  // The engine's cache root: as root, inside a directory only root may enter, so only the engine can reach it.
  const fence = join(work, "engine-host");
  await mkdir(fence, { mode: 0o700 });
  remoteRoot = join(fence, "cache");
  factoryFile = join(dir, "factory.yaml");
  await writeFile(
    factoryFile,
    ["engines:", `  - { url: ${TLS_URL}, name: far, tls: tls, cache: ${remoteRoot}, concurrency: 1 }`, ""].join("\n"),
  );
  // A site repository of this host: it must reach the engine's host too.
  const repo = join(dir, "repos", "site");
  await mkdir(join(repo, "packages", "site_tool"), { recursive: true });
  await writeFile(join(repo, "repo.yaml"), "repo:\n  namespace: site\n  api: v2.0\n");
  // The checksum of the source the stand-in makes for site-tool 1.0 (asked of the stand-in itself).
  const { stdout: sha } = await execa("python3", [
    "-c",
    "import sys, hashlib; sys.path.insert(0, sys.argv[1]); from standin.build import source_tarball; " +
      "print(hashlib.sha256(source_tarball('site-tool', '1.0', {'deps': []})).hexdigest())",
    "tests/fixtures/spack-standin/lib",
  ]);
  await writeFile(
    join(repo, "packages", "site_tool", "package.py"),
    `version("1.0", sha256="${sha.trim()}")\ndepends_on("c", type="build")\n`,
  );
  stackFile = await writeTestStack(dir, { name: "far", specs: ["zlib", "site-tool"], targets: ["x86_64_v3"] });
  await writeFile(
    stackFile,
    (await readFile(stackFile, "utf8")).replace(/builtin: \{/, `repos: [${JSON.stringify(repo)}], builtin: {`),
  );
  if (isRoot) {
    builder = await ensureUser(BUILDER);
    await execa("chown", ["-R", `${builder.uid}:${builder.gid}`, dir]);
  }
});

async function run(command: "build" | "warm", name: string) {
  const report = join(dir, `${name}.json`);
  const args = [command, stackFile, "--factory", factoryFile, "--cache-dir", join(dir, "cache"), "--report", report];
  const result = await factory([...args, ...(command === "build" ? ["--out", join(dir, "out")] : [])]);
  const parsed = JSON.parse(await readFile(report, "utf8").catch(() => "{}")) as RunReport;
  return { exitCode: result.exitCode ?? -1, all: result.all ?? "", report: parsed };
}

// Steps of one scenario, in this order even when the tests are shuffled (scripts/test.sh): each starts from
// what the ones before left in the caches, as a site's successive runs do.
describe("an engine of another host, reached over TCP with TLS", { shuffle: false }, () => {
  it("builds there: its cache root is prepared through the engine, and tarball, log and report come home", async () => {
    if (isRoot) {
      // The factory's own user cannot look into the engine's cache root: nothing can reach it but the engine.
      const probe = await execa("runuser", ["-u", BUILDER.name, "--", "ls", remoteRoot], { reject: false });
      expect(probe.exitCode).not.toBe(0);
    }
    const { exitCode, all, report } = await run("build", "first");
    expect(exitCode, all).toBe(0);
    expect(all).toMatch(/engine far: sending .*spack-standin/);
    expect(all).toMatch(/engine far: cache root \S+ ready \(sent 3 tree\(s\)/);
    // Sized by the engine's own cores (docker info), and its install runs with that many jobs.
    const cores = Number((await execa("nproc")).stdout);
    expect(all).toContain(`1 container(s) at once, ${cores} job(s) each (${cores} cores there, 1 as given)`);
    const [t] = report.targets;
    expect(t?.status, t?.error).toBe("ok");
    expect(t?.engine).toBe("far");
    expect(t?.built.some((p) => p.startsWith("zlib-"))).toBe(true);
    expect(t?.built.some((p) => p.startsWith("site-tool-"))).toBe(true);
    // Home: the tarball verifies, the log is on this host.
    const verify = await factory(["verify", t!.tarball!]);
    expect(verify.exitCode, verify.all).toBe(0);
    expect(await readFile(t!.logPath, "utf8")).toMatch(new RegExp(`step install: \\S*spack .* -j ${cores}$`, "m"));
    // There: the trees under synced/, the caches the build user's, the buildcache filled.
    const synced = (await readdir(join(remoteRoot, "synced"))).filter((n) => !n.startsWith("."));
    expect(synced.map((n) => n.replace(/-[0-9a-f]{20}$/, "")).sort()).toEqual([
      "repo-site",
      "spack-packages-builtin",
      "spack-spack-standin",
    ]);
    const owner = isRoot ? builder.uid : process.getuid?.();
    for (const d of ["source", "ccache"]) expect((await stat(join(remoteRoot, d))).uid, d).toBe(owner);
    const keys = await readdir(join(remoteRoot, "buildcache"));
    expect(keys).toHaveLength(1);
    expect(buildcacheEntries(join(remoteRoot, "buildcache", keys[0]!)).length).toBeGreaterThan(0);
    // Nothing of the engine's caches on the factory's own cache root.
    expect(await readdir(join(dir, "cache", "buildcache")).catch(() => [])).toEqual([]);
  });

  it("a second run sends nothing and builds nothing", async () => {
    const { exitCode, all, report } = await run("warm", "second");
    expect(exitCode, all).toBe(0);
    expect(all).not.toMatch(/engine far: sending/);
    expect(all).toMatch(/engine far: cache root \S+ ready$/m);
    expect(report.targets[0]?.built).toEqual([]);
    expect(all).toMatch(/nothing to build/);
  });

  it("a tree that changed is sent again, beside the old one, which stays whole", async () => {
    const before = (await readdir(join(remoteRoot, "synced"))).filter((n) => n.startsWith("spack-spack-standin"));
    // A copy of the stand-in with one more file: another digest, another tree.
    const copy = join(dir, "standin-copy");
    await execa("cp", ["-a", "tests/fixtures/spack-standin", copy]);
    await writeFile(join(copy, "NOTE"), "changed\n");
    if (isRoot) await execa("chown", ["-R", `${builder.uid}:${builder.gid}`, copy]);
    const text = await readFile(stackFile, "utf8");
    await writeFile(stackFile, text.replace(/source: "[^"]*spack-standin"/, `source: ${JSON.stringify(copy)}`));
    const { exitCode, all } = await run("warm", "third");
    expect(exitCode, all).toBe(0);
    expect(all).toMatch(/engine far: sending .*standin-copy/);
    const after = await readdir(join(remoteRoot, "synced"));
    for (const old of before) expect(after).toContain(old);
    expect(after.filter((n) => n.startsWith("spack-standin-copy-"))).toHaveLength(1);
    expect(await readdir(join(remoteRoot, "synced", ".incoming"))).toEqual([]);
  });

  it("a tree no run has mounted for 14 days is removed there; those in use stay", async () => {
    const used = join(remoteRoot, "synced", ".used");
    const marks = await readdir(used);
    const original = marks.find((n) => n.startsWith("spack-spack-standin-"));
    expect(original, marks.join(", ")).toBeDefined();
    await execa("touch", ["-d", "20 days ago", join(used, original!)]);
    const { exitCode, all } = await run("warm", "fourth");
    expect(exitCode, all).toBe(0);
    expect(all).toContain(`engine far: removed ${original}, unused for 14 days`);
    const after = await readdir(join(remoteRoot, "synced"));
    expect(after).not.toContain(original);
    expect(
      after.filter((n) => ["spack-standin-copy-", "spack-packages-", "repo-site-"].some((p) => n.startsWith(p))),
    ).toHaveLength(3);
  });
});

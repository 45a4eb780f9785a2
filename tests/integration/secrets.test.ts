/**
 * Secrets never reach a package build, and are nowhere a run leaves traces. Real runs, as a site runs them: a build
 * that pushes to the https test registry with credentials, a second build that installs from that OCI buildcache, a
 * build that fails (its container kept), and a signed build with a passphrase-protected key. A package of a site
 * repository (`standin_print_env`) prints its whole build environment into its build log and installs it, as a
 * careless build script would. Then the registry password (and its basic-authentication form) and the signing
 * passphrase are searched for in every log and copied stage log, every report, every file of the cache roots,
 * every tarball, every blob of the test's registry repositories (decompressed) and the kept container's whole file
 * system (`docker export`, install prefixes included); gzip and tar are opened at any depth.
 */
import { chmod, lstat, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { gunzipSync } from "node:zlib";
import Docker from "dockerode";
import { execa } from "execa";
import { extract } from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./helpers/cli.js";
import { requireEngine, requireTestImage } from "./helpers/engine.js";
import { requireRegistry, type TestRegistry } from "./helpers/registry.js";
import { tempDir, writeTestStack } from "./helpers/stack.js";

const PASSPHRASE = "secrets-test passphrase 4b9e07";

let work: string;
let registry: TestRegistry;
let stackFile: string;
let keptContainer: string | undefined;
const docker = new Docker();

/** Where a needle was found: "<what>:<path inside> holds <needle>". */
type Finding = string;

/**
 * A value the build containers get through `--env`: unlike the secrets it reaches every package build, so finding it
 * where the secrets are looked for shows the search would have found them there.
 */
const CONTROL = "sf-secrets-control-5e1f0a";

function isGzip(b: Buffer): boolean {
  return b.length > 2 && b[0] === 0x1f && b[1] === 0x8b;
}

function isTar(b: Buffer): boolean {
  return b.length > 262 && b.subarray(257, 262).toString("latin1") === "ustar";
}

/** Every place in `data` (opened through gzip and tar at any depth) that holds one of `needles`. */
async function search(data: Buffer, where: string, needles: readonly string[]): Promise<Finding[]> {
  const found: Finding[] = [];
  for (const n of needles)
    if (data.includes(n)) found.push(`${where} holds ${n === CONTROL ? "the control" : "a secret"}`);
  if (isGzip(data)) {
    let inflated: Buffer | undefined;
    try {
      inflated = gunzipSync(data);
    } catch {
      inflated = undefined;
    }
    if (inflated !== undefined) found.push(...(await search(inflated, `${where} (gunzipped)`, needles)));
  } else if (isTar(data)) {
    found.push(...(await searchTar(bufferStream(data), where, needles)));
  }
  return found;
}

function bufferStream(data: Buffer): Readable {
  return Readable.from([data]);
}

/** Each entry of a tar stream, searched whole (and opened in turn). */
async function searchTar(stream: NodeJS.ReadableStream, where: string, needles: readonly string[]): Promise<Finding[]> {
  const found: Finding[] = [];
  const untar = extract();
  stream.pipe(untar);
  for await (const entry of untar) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    found.push(...(await search(Buffer.concat(chunks), `${where}:${entry.header.name}`, needles)));
  }
  return found;
}

/** Every regular file under `dir`, searched. */
async function searchDir(dir: string, needles: readonly string[]): Promise<{ found: Finding[]; files: string[] }> {
  const found: Finding[] = [];
  const files: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const name of await readdir(d).catch(() => [] as string[])) {
      const p = join(d, name);
      const st = await lstat(p);
      if (st.isDirectory()) await walk(p);
      else if (st.isFile()) {
        files.push(p);
        found.push(...(await search(await readFile(p), p, needles)));
      }
    }
  };
  await walk(dir);
  return { found, files };
}

/** Every blob of every tag of a repository of the test registry (decompressed and opened). */
async function searchRepository(repoPrefix: string, needles: readonly string[]) {
  const all: string[] = [];
  for (let page: string[] = []; all.length === 0 || page.length === 1000; ) {
    const last = all.length === 0 ? "" : `&last=${encodeURIComponent(all.at(-1)!)}`;
    page = ((await registry.get(`/v2/_catalog?n=1000${last}`)) as { repositories: string[] }).repositories;
    all.push(...page);
    if (page.length === 0) break;
  }
  const repos = all.filter((r) => r.startsWith(`${repoPrefix}/`));
  const found: Finding[] = [];
  let blobs = 0;
  for (const repo of repos) {
    const { tags } = (await registry.get(`/v2/${repo}/tags/list`)) as { tags: string[] };
    const digests = new Set<string>();
    for (const tag of tags) {
      const manifest = (await registry.get(
        `/v2/${repo}/manifests/${tag}`,
        "application/vnd.oci.image.manifest.v1+json",
      )) as { config: { digest: string }; layers: { digest: string }[] };
      digests.add(manifest.config.digest);
      for (const l of manifest.layers) digests.add(l.digest);
    }
    for (const d of digests) {
      blobs++;
      found.push(...(await search(await registry.getBytes(`/v2/${repo}/blobs/${d}`), `${repo}@${d}`, needles)));
    }
  }
  return { repos, blobs, found };
}

async function factoryFile(name: string, repository: string): Promise<string> {
  const file = join(work, `${name}.yaml`);
  await writeFile(
    file,
    [
      "engines:",
      "  - url: unix:///var/run/docker.sock",
      "    network: host",
      `buildcache: ${registry.ociUrl(repository)}`,
      `credentials: ${registry.credentialsFile}`,
      `buildcache_ca: ${registry.caFile}`,
      "",
    ].join("\n"),
  );
  return file;
}

async function build(name: string, args: string[]) {
  const report = join(work, `${name}.json`);
  const run = await runCli([
    "build",
    stackFile,
    "--cache-dir",
    join(work, `cache-${name}`),
    "--out",
    join(work, `dist-${name}`),
    "--report",
    report,
    "--jobs",
    "1",
    ...args,
  ]);
  return { exitCode: run.exitCode ?? -1, all: String(run.all ?? ""), report };
}

beforeAll(async () => {
  await requireTestImage(await requireEngine());
  registry = await requireRegistry();
  await execa("npm", ["run", "build"], { stdio: "ignore" });
  work = await tempDir("secrets");
  await chmod(work, 0o755);
  // A site package whose build prints its environment into its log and installs it (share/env-probe/build-env.txt).
  const repo = join(work, "repos", "site");
  await mkdir(join(repo, "packages", "env_probe"), { recursive: true });
  await writeFile(join(repo, "repo.yaml"), "repo:\n  namespace: site\n  api: v2.0\n");
  const { stdout: sha } = await execa("python3", [
    "-c",
    "import sys, hashlib; sys.path.insert(0, sys.argv[1]); from standin.build import source_tarball; " +
      "print(hashlib.sha256(source_tarball('env-probe', '1.0', {'deps': []})).hexdigest())",
    "tests/fixtures/spack-standin/lib",
  ]);
  await writeFile(
    join(repo, "packages", "env_probe", "package.py"),
    `version("1.0", sha256="${sha.trim()}")\ndepends_on("c", type="build")\nstandin_print_env = True\n`,
  );
  for (const d of [join(work, "repos"), repo, join(repo, "packages"), join(repo, "packages", "env_probe")])
    await chmod(d, 0o755);
  stackFile = await writeTestStack(work, { name: "probe", specs: ["env-probe"], targets: ["x86_64_v3"] });
  await writeFile(
    stackFile,
    (await readFile(stackFile, "utf8")).replace(/builtin: \{/, `repos: [${JSON.stringify(repo)}], builtin: {`),
  );
}, 300_000);

afterAll(async () => {
  if (keptContainer !== undefined)
    await docker
      .getContainer(keptContainer)
      .remove({ force: true })
      .catch(() => {});
});

describe("the registry password", () => {
  it("pulls and pushes, yet is in no package build, prefix, blob, log, report, tarball or kept container", async () => {
    const secrets = [
      registry.password,
      Buffer.from(`${registry.username}:${registry.password}`).toString("base64"),
      CONTROL,
    ];
    const repoPrefix = registry.freshRepository("secrets");
    const pushes = await factoryFile("push", `${repoPrefix}/ok`);

    // 1. A build that pushes.
    const first = await build("push", ["--factory", pushes, "--env", `SF_CONTROL=${CONTROL}`]);
    expect(first.exitCode, first.all).toBe(0);
    // 2. A build from the OCI buildcache (a fresh cache root: nothing local).
    const second = await build("pull", ["--factory", pushes]);
    expect(second.exitCode, second.all).toBe(0);
    const pulled = JSON.parse(await readFile(second.report, "utf8")) as {
      targets: { built: string[]; logPath: string }[];
    };
    expect(pulled.targets[0]!.built).toEqual([]);
    expect(await readFile(pulled.targets[0]!.logPath, "utf8")).toMatch(
      /Extracting env-probe-1\.0-\w+ from binary cache/,
    );
    // 3. A build that fails (another repository: env-probe is built, prints its environment, fails), kept.
    const failing = await build("fail", [
      "--factory",
      await factoryFile("fail", `${repoPrefix}/fail`),
      "--env",
      "SPACK_STANDIN_FAIL=env-probe",
      "--env",
      `SF_CONTROL=${CONTROL}`,
      "--keep-container",
    ]);
    expect(failing.exitCode, failing.all).toBe(1);
    keptContainer = /docker(?: -H \S+)? exec -it (\w+)/.exec(failing.all)?.[1];
    expect(keptContainer, failing.all).toBeDefined();

    // 4. The plan of the pushing build, written as `build --plan` would run it: the credentials by name only.
    const planDir = join(work, "plan-push");
    const planned = await runCli([
      ...["plan", stackFile, "--factory", pushes, "--cache-dir", join(work, "cache-push"), "--out", planDir],
    ]);
    expect(planned.exitCode, planned.all).toBe(0);
    expect(await readFile(join(planDir, "plan.json"), "utf8")).toContain('"registry-credentials"');

    const findings: Finding[] = [];
    findings.push(...(await searchDir(planDir, secrets)).found);
    const outputs = [first, second, failing];
    for (const o of outputs) findings.push(...(await search(Buffer.from(o.all), `output of ${o.report}`, secrets)));
    // Logs (copied stage logs too), reports, run records, every cache file, tarballs.
    const searched: string[] = [];
    for (const name of ["push", "pull", "fail"]) {
      for (const dir of [`cache-${name}`, `dist-${name}`]) {
        const { found, files } = await searchDir(join(work, dir), secrets);
        findings.push(...found);
        searched.push(...files);
      }
      findings.push(...(await search(await readFile(join(work, `${name}.json`)), `${name}.json`, secrets)));
    }
    // What was searched is what matters: the probe's recorded environment, the failed build's stage environment.
    const tarballs = searched.filter((f) => /\/dist-(push|pull)\/[^/]+\.tar\.gz$/.test(f));
    expect(tarballs).toHaveLength(2);
    const stageEnv = searched.find((f) => /-stage\/(?:.+\/)?spack-build-env\.txt$/.test(f));
    expect(stageEnv, searched.join("\n")).toBeDefined();
    const stageText = await readFile(stageEnv!, "utf8");
    expect(stageText).toMatch(/^SPACK_PREFIX=/m);
    expect(stageText).not.toContain("STACK_FACTORY_REGISTRY");
    const stageOut = await readFile(stageEnv!.replace(/spack-build-env\.txt$/, "spack-build-out.txt"), "utf8");
    expect(stageOut).toContain("==> the build environment of env-probe:");
    const tarList = await execa("tar", ["-tzf", tarballs[0]!]);
    expect(tarList.stdout).toMatch(/share\/env-probe\/build-env\.txt/);

    // Every blob the runs pushed.
    const pushed = await searchRepository(repoPrefix, secrets);
    expect(pushed.repos.length).toBeGreaterThan(0);
    expect(pushed.blobs).toBeGreaterThan(3);
    findings.push(...pushed.found);

    // The kept container: its configuration, its own layer, its whole file system (the install tree included).
    const container = docker.getContainer(keptContainer!);
    const info = await container.inspect();
    findings.push(...(await search(Buffer.from(JSON.stringify(info)), "docker inspect", secrets)));
    const changes = ((await container.changes()) ?? []) as { Path: string }[];
    expect(changes.map((c) => c.Path).filter((p) => p.startsWith("/sf/registry/"))).toEqual([]);
    const exported = await searchTar((await container.export()) as NodeJS.ReadableStream, "docker export", secrets);
    findings.push(...exported);
    // The credentials file is on the container's tmpfs, the build user's alone.
    const probe = await execa("docker", [
      "exec",
      keptContainer!,
      "sh",
      "-c",
      'stat -c "%a %u" /sf/registry/registry.env && id -u && grep " /sf/registry " /proc/mounts',
    ]);
    const [mode, uid] = probe.stdout.split("\n");
    expect(mode!.split(" ")).toEqual(["600", uid]);
    expect(probe.stdout).toMatch(/^tmpfs \/sf\/registry tmpfs /m);

    // The control reached the package build, and so every place searched that a build's environment reaches.
    const control = findings.filter((f) => f.endsWith("holds the control"));
    for (const place of [
      /dist-push\/probe-1\.0-x86_64_v3\.tar\.gz \(gunzipped\):.*share\/env-probe\/build-env\.txt holds/,
      /cache-fail\/logs\/.*-stage\/.*spack-build-env\.txt holds/,
      /^sf-test\/secrets-\w+\/ok\/.*@sha256:\w+ \(gunzipped\):.*share\/env-probe\/build-env\.txt holds/,
      /^sf-test\/secrets-\w+\/ok\/.*@sha256:\w+ \(gunzipped\):.*\/\.spack\/spack-build-out\.txt\.gz \(gunzipped\) holds/,
      /^docker export:.*spack-stage-env-probe-.*\/spack-build-env\.txt holds/,
    ])
      expect(
        control.some((f) => place.test(f)),
        `${place}\n${control.join("\n")}`,
      ).toBe(true);
    expect(findings.filter((f) => !f.endsWith("holds the control"))).toEqual([]);
  }, 3_600_000);
});

describe("the registry's CA", () => {
  it("doctor trusts buildcache_ca and logs in; without it the certificate is refused, and credentials over http are refused at validation", async () => {
    const file = await factoryFile("doctor", registry.freshRepository("doctor"));
    const ok = await runCli(["doctor", "--factory", file, "--cache-dir", join(work, "cache-doctor")]);
    expect(ok.all).toMatch(/ok +registry 127\.0\.0\.1:5001 answers and takes the credentials/);
    const text = await readFile(file, "utf8");
    await writeFile(file, text.replace(/^buildcache_ca: .*\n/m, ""));
    const untrusted = await runCli(["doctor", "--factory", file, "--cache-dir", join(work, "cache-doctor")]);
    expect(untrusted.exitCode).not.toBe(0);
    expect(untrusted.all).toMatch(/registry 127\.0\.0\.1:5001: .*(certificate|self.signed)/i);
    await writeFile(
      file,
      text.replace(/^buildcache: oci:/m, "buildcache: oci+http:").replace(/^buildcache_ca: .*\n/m, ""),
    );
    const plain = await runCli(["build", stackFile, "--factory", file, "--cache-dir", join(work, "cache-doctor")]);
    expect(plain.exitCode).toBe(2);
    expect(plain.all).toContain(`${file}:5:1 credentials: credentials need an https registry (oci://)`);
    expect(plain.all).not.toContain(registry.password);
  }, 300_000);
});

describe("the signing passphrase", () => {
  it("is in no log, report, cache file or tarball of a signed build", async () => {
    const passFile = join(work, "passphrase.txt");
    await writeFile(passFile, `${PASSPHRASE}\n`, { mode: 0o600 });
    const made = await runCli([
      "keys",
      "init",
      join(work, "site-key"),
      "--name",
      "Secrets Test <secrets@example.org>",
      "--passphrase-file",
      passFile,
    ]);
    expect(made.exitCode, made.all).toBe(0);
    const signed = await build("signed", [
      "--sign-key",
      join(work, "site-key", "secret.asc"),
      "--sign-passphrase-file",
      passFile,
    ]);
    expect(signed.exitCode, signed.all).toBe(0);
    const findings: Finding[] = [...(await search(Buffer.from(signed.all), "output", [PASSPHRASE]))];
    const searched: string[] = [];
    for (const dir of ["cache-signed", "dist-signed"]) {
      const { found, files } = await searchDir(join(work, dir), [PASSPHRASE]);
      findings.push(...found);
      searched.push(...files);
    }
    findings.push(...(await search(await readFile(signed.report), "report", [PASSPHRASE])));
    expect(searched.some((f) => f.endsWith(".tar.gz.asc"))).toBe(true);
    expect(searched.some((f) => f.includes(`${join("cache-signed", "buildcache")}/`))).toBe(true);
    expect(findings).toEqual([]);
  }, 1_800_000);
});

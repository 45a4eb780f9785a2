import { copyFile, mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import Docker from "dockerode";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { initKeys } from "../../src/sign/keys-init.js";
import { loadSigningKey } from "../../src/sign/key.js";
import { signFile } from "../../src/sign/sign-file.js";
import { runCli } from "./helpers/cli.js";
import { requireEngine, requireTestImage, TEST_IMAGE } from "./helpers/engine.js";
import { tempDir, writeTestStack } from "./helpers/stack.js";

const PASSPHRASE = "signing-test passphrase 7c1e9d";

let work: string;
let cacheRoot: string;
let site: Awaited<ReturnType<typeof initKeys>>;
let other: Awaited<ReturnType<typeof initKeys>>;
let passFile: string;
let dist: string;
let tarball: string;
let report: string;
/** Everything `docker inspect` said about the signed build's containers and their execs, while they ran. */
let inspected: string[] = [];
/** Paths `docker diff` showed in those containers' own file systems. */
const layerPaths = new Set<string>();
/** What the signed build printed. */
let buildOutput = "";
let builderImage: string;

/** Polls the engine for the containers of one factory process and inspects each (and each of its execs) while it runs. */
function watchContainers(pid: () => number | undefined): { stop: () => Promise<string[]>; ids: Set<string> } {
  const docker = new Docker();
  const seen = new Map<string, string>();
  const execs = new Map<string, string>();
  const ids = new Set<string>();
  let running = true;
  const loop = (async () => {
    while (running) {
      const p = pid();
      if (p !== undefined) {
        const list = await docker
          .listContainers({ all: true, filters: { label: [`stack-factory.pid=${p}`] } })
          .catch(() => []);
        for (const c of list) {
          ids.add(c.Id);
          try {
            const info = await docker.getContainer(c.Id).inspect();
            seen.set(`${c.Id}:${JSON.stringify(info.ExecIDs ?? [])}`, JSON.stringify(info));
            const changes = (await docker
              .getContainer(c.Id)
              .changes()
              .catch(() => [])) as { Path: string }[] | null;
            for (const change of changes ?? []) layerPaths.add(change.Path);
            for (const execId of info.ExecIDs ?? []) {
              if (execs.has(execId)) continue;
              const e = await docker
                .getExec(execId)
                .inspect()
                .catch(() => undefined);
              if (e !== undefined) execs.set(execId, JSON.stringify(e));
            }
          } catch {
            // gone already
          }
        }
      }
      await new Promise((r) => setTimeout(r, 150));
    }
  })();
  return {
    ids,
    stop: async () => {
      running = false;
      await loop;
      return [...seen.values(), ...execs.values()];
    },
  };
}

/** Long runs of the armored secret key's body: any of them in a text means the key leaked. */
async function secretFragments(file: string): Promise<string[]> {
  const text = await readFile(file, "utf8");
  const body = text.split("\n").filter((l) => /^[A-Za-z0-9+/=]{40,}$/.test(l.trim()));
  expect(body.length).toBeGreaterThan(5);
  return body.map((l) => l.trim().slice(4, 36));
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(join(entry.parentPath, entry.name));
  }
  return out;
}

beforeAll(async () => {
  const engine = await requireEngine();
  await requireTestImage(engine);
  await execa("npm", ["run", "build"], { stdio: "ignore" });
  work = await tempDir("signing");
  cacheRoot = join(work, "cache");
  passFile = join(work, "passphrase");
  await writeFile(passFile, `${PASSPHRASE}\n`, { mode: 0o600 });
  const made = await runCli([
    "keys",
    "init",
    join(work, "site"),
    "--name",
    "Test Site Builds <builds@example.org>",
    "--passphrase-file",
    passFile,
  ]);
  expect(made.exitCode, made.all).toBe(0);
  site = {
    fingerprint: (await readFile(join(work, "site", "fingerprint"), "utf8")).trim(),
    files: {
      secret: join(work, "site", "secret.asc"),
      public: join(work, "site", "public.asc"),
      publicBinary: join(work, "site", "public.gpg"),
      fingerprint: join(work, "site", "fingerprint"),
    },
  };
  other = await initKeys(join(work, "other"), { userId: "Another Site <other@example.org>", algorithm: "ed25519" });

  const stackFile = await writeTestStack(work, { name: "signed", specs: ["hello"] });
  dist = join(work, "dist");
  report = join(work, "report.json");
  let pid: number | undefined;
  const watch = watchContainers(() => pid);
  const run = runCli([
    "build",
    stackFile,
    "--cache-dir",
    cacheRoot,
    "--out",
    dist,
    "--report",
    report,
    "--sign-key",
    site.files.secret,
    "--sign-passphrase-file",
    passFile,
  ]);
  pid = run.pid;
  const result = await run;
  inspected = await watch.stop();
  buildOutput = String(result.all ?? "");
  expect(result.exitCode, result.all).toBe(0);
  expect(watch.ids.size).toBeGreaterThan(0);
  const tarballs = (await readdir(dist)).filter((f) => f.endsWith(".tar.gz"));
  expect(tarballs).toHaveLength(1);
  tarball = join(dist, tarballs[0]!);
  builderImage = (JSON.parse(await readFile(report, "utf8")) as { image: { tag: string } }).image.tag;
}, 900_000);

describe("signed tarballs", () => {
  it("writes <tarball>.asc beside .sha256 and records the key's fingerprint in the manifest", async () => {
    const names = await readdir(dist);
    expect(names).toEqual(
      expect.arrayContaining([basename(tarball), `${basename(tarball)}.sha256`, `${basename(tarball)}.asc`]),
    );
    const { stdout } = await execa("tar", ["-xzOf", tarball, "--wildcards", "*/manifest.json"]);
    expect((JSON.parse(stdout) as { signing_key?: { fingerprint: string } }).signing_key).toEqual({
      fingerprint: site.fingerprint,
    });
  });

  it("verify --keyring accepts the site's key (armored or gpgv's binary keyring) and refuses another", async () => {
    const good = await runCli(["verify", tarball, "--keyring", site.files.public]);
    expect(good.exitCode, good.all).toBe(0);
    expect(good.all).toContain(`signature: good signature by ${site.fingerprint}`);
    expect((await runCli(["verify", tarball, "--keyring", site.files.publicBinary])).exitCode).toBe(0);
    const wrong = await runCli(["verify", tarball, "--keyring", other.files.public]);
    expect(wrong.exitCode).toBe(1);
    expect(wrong.all).toMatch(/signature .*\.asc refused: signed by key \w+, which is not in/);
    // And gpgv alone, as a cluster would check it.
    const gpgv = await execa("gpgv", ["--keyring", site.files.publicBinary, `${tarball}.asc`, tarball], {
      reject: false,
    });
    expect(gpgv.exitCode, gpgv.stderr).toBe(0);
  });

  it("refuses a tarball altered by one byte, a signature by another key, and a missing signature", async () => {
    const altered = join(work, "altered");
    await mkdir(altered);
    const copy = join(altered, basename(tarball));
    const bytes = await readFile(tarball);
    bytes[bytes.length - 100] = (bytes[bytes.length - 100] as number) ^ 0x01;
    await writeFile(copy, bytes);
    await copyFile(`${tarball}.sha256`, `${copy}.sha256`);
    await copyFile(`${tarball}.asc`, `${copy}.asc`);
    const run = await runCli(["verify", copy, "--keyring", site.files.public]);
    expect(run.exitCode).toBe(1);
    expect(run.all).toMatch(/refused: BAD signature/);

    const resigned = join(work, "resigned");
    await mkdir(resigned);
    const second = join(resigned, basename(tarball));
    await copyFile(tarball, second);
    await copyFile(`${tarball}.sha256`, `${second}.sha256`);
    await signFile((await loadSigningKey({ signKey: other.files.secret }))!, second);
    const byOther = await runCli(["verify", second, "--keyring", site.files.public]);
    expect(byOther.exitCode).toBe(1);
    expect(byOther.all).toMatch(/which is not in/);

    const unsigned = join(work, "unsigned");
    await mkdir(unsigned);
    await copyFile(tarball, join(unsigned, basename(tarball)));
    const missing = await runCli(["verify", join(unsigned, basename(tarball)), "--keyring", site.files.public]);
    expect(missing.exitCode).toBe(1);
    expect(missing.all).toMatch(/no signature: .*\.asc is missing/);
  });
});

describe("signing flags", () => {
  it("refuse a wrong passphrase, a public key and a keyring key for warm before anything starts", async () => {
    const stackFile = await writeTestStack(work, { name: "flags" });
    await writeFile(join(work, "wrong-pass"), "not it\n");
    const wrong = await runCli([
      "build",
      stackFile,
      "--cache-dir",
      cacheRoot,
      "--sign-key",
      site.files.secret,
      "--sign-passphrase-file",
      join(work, "wrong-pass"),
    ]);
    expect(wrong.exitCode).toBe(2);
    expect(wrong.all).toMatch(/does not unlock it/);
    expect(wrong.all).not.toContain("not it");
    const none = await runCli(["build", stackFile, "--cache-dir", cacheRoot, "--sign-key", site.files.secret]);
    expect(none.exitCode).toBe(2);
    expect(none.all).toMatch(/may need a passphrase: give --sign-passphrase-file FILE/);
    const pub = await runCli(["build", stackFile, "--cache-dir", cacheRoot, "--sign-key", site.files.public]);
    expect(pub.exitCode).toBe(2);
    expect(pub.all).toMatch(/not an armored OpenPGP secret key/);
    const agent = await runCli(["warm", stackFile, "--cache-dir", cacheRoot, "--sign-key-id", site.fingerprint]);
    expect(agent.exitCode).toBe(2);
    const again = await runCli(["keys", "init", join(work, "site")]);
    expect(again.exitCode).toBe(2);
    expect(again.all).toMatch(/exists already/);
  });
});

describe("the signing key never leaks", () => {
  it("is nowhere in docker inspect of the run's containers and execs, the image history, the logs, the report or the tarball", async () => {
    const fragments = await secretFragments(site.files.secret);
    const haystacks: [string, string][] = inspected.map((text, i) => [`docker inspect #${i}`, text]);
    expect(inspected.length).toBeGreaterThan(0);
    const history = await execa("docker", ["history", "--no-trunc", "--format", "{{json .}}", builderImage]);
    haystacks.push(["docker history", history.stdout]);
    const imageInspect = await execa("docker", ["image", "inspect", builderImage]);
    haystacks.push(["docker image inspect", imageInspect.stdout]);
    for (const file of await listFiles(join(cacheRoot, "logs"))) haystacks.push([file, await readFile(file, "utf8")]);
    haystacks.push([report, await readFile(report, "utf8")]);
    haystacks.push(["the build's output", buildOutput]);
    const contents = await execa("tar", ["-xzOf", tarball], { encoding: "buffer" });
    haystacks.push([tarball, Buffer.from(contents.stdout).toString("latin1")]);
    haystacks.push([`${tarball}.asc`, await readFile(`${tarball}.asc`, "utf8")]);
    for (const [where, text] of haystacks) {
      expect(text.includes(PASSPHRASE), `passphrase in ${where}`).toBe(false);
      for (const fragment of fragments) expect(text.includes(fragment), `secret key in ${where}`).toBe(false);
    }
    // The gpg home was on the tmpfs: nothing under it ever reached a container's own file system.
    expect([...layerPaths].filter((p) => p.startsWith("/sf/keys/"))).toEqual([]);
    expect(layerPaths.size).toBeGreaterThan(0);
    expect(
      inspected.some(
        (text) => text.includes('"Type":"tmpfs","Target":"/sf/keys"') || text.includes('"Destination":"/sf/keys"'),
      ),
    ).toBe(true);
    // The haystacks are real: the run's logs name the key's fingerprint.
    expect(haystacks.some(([, text]) => text.includes(site.fingerprint))).toBe(true);
  });
});

describe("a signed buildcache", () => {
  let warmCache: string;
  let stackFile: string;
  const sign = () => ["--sign-key", site.files.secret, "--sign-passphrase-file", passFile];
  const logOf = async (reportFile: string) => {
    const r = JSON.parse(await readFile(reportFile, "utf8")) as { targets: { logPath: string; built: string[] }[] };
    return { target: r.targets[0]!, log: await readFile(r.targets[0]!.logPath, "utf8") };
  };

  beforeAll(async () => {
    warmCache = join(work, "warm-cache");
    stackFile = await writeTestStack(work, { name: "nightly", specs: ["hello", "zlib"] });
  });

  it("warm --sign-key pushes signed entries; a signed build then takes everything from them", async () => {
    const warm = await runCli([
      "warm",
      stackFile,
      "--cache-dir",
      warmCache,
      "--report",
      join(work, "warm.json"),
      ...sign(),
    ]);
    expect(warm.exitCode, warm.all).toBe(0);
    const keys = await readdir(join(warmCache, "buildcache"));
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatch(new RegExp(`_signed-${site.fingerprint.slice(-16)}$`));
    const entries = await readdir(join(warmCache, "buildcache", keys[0]!, "build_cache"));
    expect(entries.filter((e) => e.endsWith(".spec.json.sig")).length).toBeGreaterThanOrEqual(3);
    expect(entries.filter((e) => e.endsWith(".spec.json"))).toEqual([]);
    const signedText = await readFile(
      join(warmCache, "buildcache", keys[0]!, "build_cache", entries.find((e) => e.endsWith(".sig"))!),
      "utf8",
    );
    expect(signedText).toContain("-----BEGIN PGP SIGNED MESSAGE-----");

    const out = join(work, "dist-nightly");
    const build = await runCli([
      "build",
      stackFile,
      "--cache-dir",
      warmCache,
      "--out",
      out,
      "--report",
      join(work, "nightly.json"),
      ...sign(),
    ]);
    expect(build.exitCode, build.all).toBe(0);
    const { target, log } = await logOf(join(work, "nightly.json"));
    expect(target.built).toEqual([]);
    expect(log).toMatch(/Extracting hello-\S+ from binary cache/);
    expect(log).toMatch(/Extracting zlib-\S+ from binary cache/);
    expect(log).not.toMatch(/installing from source/);
    expect(log).toContain("spack gpg trust /sf/signing/public.asc");
    const tarballs = (await readdir(out)).filter((f) => f.endsWith(".tar.gz"));
    const verify = await runCli(["verify", join(out, tarballs[0]!), "--keyring", site.files.public]);
    expect(verify.exitCode, verify.all).toBe(0);
  });

  it("refuses entries whose signature fails or that are unsigned, and unsigned builds never use the signed cache", async () => {
    const key = (await readdir(join(warmCache, "buildcache")))[0]!;
    const dir = join(warmCache, "buildcache", key, "build_cache");
    const entries = await readdir(dir);
    // hello's spec document altered under its signature; zlib's signature stripped (an unsigned entry).
    const hello = entries.find((e) => e.startsWith("hello-") && e.endsWith(".sig"))!;
    const helloText = await readFile(join(dir, hello), "utf8");
    await writeFile(join(dir, hello), helloText.replace('"hash_algorithm": "sha256"', '"hash_algorithm":  "sha256"'));
    const zlib = entries.find((e) => e.startsWith("zlib-") && e.endsWith(".sig"))!;
    const zlibBody = /-----BEGIN PGP SIGNED MESSAGE-----\s+Hash:\s+\S+\s+([\s\S]+)-----BEGIN PGP SIGNATURE-----/.exec(
      await readFile(join(dir, zlib), "utf8"),
    )![1]!;
    await writeFile(join(dir, zlib.replace(/\.sig$/, "")), zlibBody);
    const { rm } = await import("node:fs/promises");
    await rm(join(dir, zlib));

    const again = await runCli([
      "warm",
      stackFile,
      "--cache-dir",
      warmCache,
      "--report",
      join(work, "refused.json"),
      ...sign(),
    ]);
    expect(again.exitCode, again.all).toBe(0);
    const { target, log } = await logOf(join(work, "refused.json"));
    expect(log).toMatch(/Skipping hello-\S+ from mirror stack-factory: signature verification failed/);
    expect(log).toMatch(/Skipping zlib-\S+ from mirror stack-factory/);
    expect(target.built.map((p) => p.replace(/-[^-]+-[a-z0-9]{32}$/, "")).sort()).toEqual(["hello", "zlib"]);

    const unsigned = await runCli([
      "warm",
      stackFile,
      "--cache-dir",
      warmCache,
      "--report",
      join(work, "unsigned.json"),
    ]);
    expect(unsigned.exitCode, unsigned.all).toBe(0);
    expect((await readdir(join(warmCache, "buildcache"))).sort()).toEqual(
      [key, key.replace(/_signed-[0-9A-F]+$/, "")].sort(),
    );
    expect((await logOf(join(work, "unsigned.json"))).log).not.toMatch(/from binary cache/);
  });
});

describe("install.sh --verify-signature on a node", () => {
  /** Runs a bash script in a fresh container of `image` with the dist, altered and re-signed copies and the keys mounted. */
  const onNode = (image: string, script: string) =>
    execa(
      "docker",
      [
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        `${dist}:/pkg:ro`,
        "-v",
        `${join(work, "altered")}:/altered:ro`,
        "-v",
        `${join(work, "resigned")}:/resigned:ro`,
        "-v",
        `${join(work, "site")}/public.asc:/keys/site.asc:ro`,
        "-v",
        `${join(work, "site")}/public.gpg:/keys/site.gpg:ro`,
        "-v",
        `${join(work, "other")}/public.asc:/keys/other.asc:ro`,
        image,
        "bash",
        "-c",
        `set -u\ncd /tmp\n${script}`,
      ],
      { reject: false, all: true },
    );

  it("checks the signature with gpg before anything else; an altered byte or another key's signature stops it", async () => {
    const name = basename(tarball);
    const top = name.replace(/\.tar\.gz$/, "");
    const run = await onNode(
      builderImage,
      `
cp /pkg/${name} /pkg/${name}.asc . && tar -xzf ${name}
./${top}/install.sh --verify-signature /keys/site.asc --prefix /tmp/good; echo "GOOD=$?"
./${top}/install.sh --verify-signature /keys/site.gpg --tarball /tmp/${name} --prefix /tmp/binary; echo "BINARY=$?"
./${top}/install.sh --prefix /tmp/altered --verify-signature /keys/site.asc --tarball /altered/${name}; echo "ALTERED=$? $(test -e /tmp/altered && echo installed || echo absent)"
./${top}/install.sh --verify-signature /keys/site.asc --tarball /resigned/${name} --prefix /tmp/resigned; echo "RESIGNED=$? $(test -e /tmp/resigned && echo installed || echo absent)"
./${top}/install.sh --verify-signature /keys/other.asc --prefix /tmp/otherkey; echo "OTHERKEY=$?"
echo tampered >> ${top}/manifest.json
./${top}/install.sh --verify-signature /keys/site.asc --prefix /tmp/tampered; echo "TAMPERED=$?"
`,
    );
    expect(run.all).toMatch(/install\.sh: signature: good signature by [0-9A-F]{40}/);
    expect(run.all).toContain(`good signature by ${site.fingerprint}`);
    expect(run.all).toContain("GOOD=0");
    expect(run.all).toContain("BINARY=0");
    expect(run.all).toContain("ALTERED=1 absent");
    expect(run.all).toMatch(/BAD signature: \S+ is not what was signed/);
    expect(run.all).toContain("RESIGNED=1 absent");
    expect(run.all).toMatch(/was made by a key that is not in \/keys\/site\.asc/);
    expect(run.all).toContain("OTHERKEY=1");
    expect(run.all).toContain("TAMPERED=1");
    expect(run.all).toMatch(/manifest\.json is not the signed tarball's/);
  });

  it("works with gpgv alone (the test image has apt's gpgv, no gpg) and says so when the node has neither", async () => {
    const name = basename(tarball);
    const top = name.replace(/\.tar\.gz$/, "");
    const run = await onNode(
      TEST_IMAGE,
      `
command -v gpg && echo "HAS GPG"
command -v gpgv >/dev/null && echo "HAS GPGV"
cp /pkg/${name} /pkg/${name}.asc . && tar -xzf ${name}
./${top}/install.sh --verify-signature /keys/site.asc --prefix /tmp/gpgv; echo "GPGV=$?"
./${top}/install.sh --verify-signature /keys/site.asc --tarball /altered/${name} --prefix /tmp/altered; echo "ALTERED=$? $(test -e /tmp/altered && echo installed || echo absent)"
rm -f "$(command -v gpgv)"
./${top}/install.sh --verify-signature /keys/site.asc --prefix /tmp/x; echo "NONE=$? $(test -e /tmp/x && echo installed || echo absent)"
`,
    );
    expect(run.all).not.toContain("HAS GPG\n");
    expect(run.all).toContain("HAS GPGV");
    expect(run.all).toContain(`good signature by ${site.fingerprint}`);
    expect(run.all).toContain("GPGV=0");
    expect(run.all).toContain("ALTERED=1 absent");
    expect(run.all).toContain("NONE=1 absent");
    expect(run.all).toMatch(/--verify-signature needs gpgv or gpg on this node/);
  });
});

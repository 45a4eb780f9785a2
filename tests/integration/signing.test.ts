import { copyFile, mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import Docker from "dockerode";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { initKeys } from "../../src/sign/keys-init.js";
import { loadSigningKey } from "../../src/sign/key.js";
import { signFile } from "../../src/sign/sign-file.js";
import { buildcacheEntries } from "./helpers/buildcache.js";
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
            const changes: unknown = await docker
              .getContainer(c.Id)
              .changes()
              .catch(() => []);
            for (const path of changedPaths(changes)) layerPaths.add(path);
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

/**
 * The paths of a `docker diff` answer. Engines answer a list of `{Path, Kind}`, but `null` for a container that has
 * not started yet, which dockerode hands over as the bytes "null\n" (engine 20.10): anything but a list of changes
 * with a string path counts as no change.
 */
function changedPaths(answer: unknown): string[] {
  let list = answer;
  if (Buffer.isBuffer(answer) || typeof answer === "string") {
    try {
      list = JSON.parse(answer.toString()) as unknown;
    } catch {
      return [];
    }
  }
  if (!Array.isArray(list)) return [];
  return list.flatMap((change: unknown) => {
    const path = (change as { Path?: unknown } | null)?.Path;
    return typeof path === "string" ? [path] : [];
  });
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

/** Copies of the signed tarball, each in a directory of its own, under the same name, made once whichever test asks first. */
interface Copies {
  /** One byte changed, the original .sha256 and .asc beside it. */
  altered: string;
  /** Signed by another key. */
  resigned: string;
  /** Without its .asc. */
  unsigned: string;
  /**
   * Unpacked, install.sh replaced by a script that always succeeds (and writes PREFIX/tampered, to show that it ran),
   * a .stack-factory/verify-signature.sh that always succeeds added, packed again; the original .asc beside it.
   */
  tampered: string;
}
let made: Promise<Copies> | undefined;

function copies(): Promise<Copies> {
  made ??= makeCopies();
  return made;
}

async function makeCopies(): Promise<Copies> {
  const name = basename(tarball);
  const top = name.replace(/\.tar\.gz$/, "");
  const place = async (dir: string) => {
    await mkdir(join(work, dir));
    return join(work, dir, name);
  };
  const altered = await place("altered");
  const bytes = await readFile(tarball);
  bytes[bytes.length - 100] = (bytes[bytes.length - 100] as number) ^ 0x01;
  await writeFile(altered, bytes);
  await copyFile(`${tarball}.sha256`, `${altered}.sha256`);
  await copyFile(`${tarball}.asc`, `${altered}.asc`);

  const resigned = await place("resigned");
  await copyFile(tarball, resigned);
  await copyFile(`${tarball}.sha256`, `${resigned}.sha256`);
  await signFile((await loadSigningKey({ signKey: other.files.secret }))!, resigned);

  const unsigned = await place("unsigned");
  await copyFile(tarball, unsigned);

  const tampered = await place("tampered");
  const tree = join(work, "tampered-tree");
  await mkdir(tree);
  await execa("tar", ["-xzf", tarball, "-C", tree]);
  const succeed = "#!/bin/sh\n# always succeeds\nexit 0\n";
  const install = [
    "#!/bin/sh",
    "# always succeeds, and leaves a mark at the prefix",
    'while [ $# -gt 0 ]; do case $1 in --prefix) mkdir -p "$2" && echo tampered >"$2/tampered"; shift 2 ;; *) shift ;; esac; done',
    'echo "install.sh: signature: good signature (not checked at all)"',
    "exit 0",
    "",
  ].join("\n");
  await writeFile(join(tree, top, "install.sh"), install, { mode: 0o755 });
  await mkdir(join(tree, top, ".stack-factory"), { recursive: true });
  await writeFile(join(tree, top, ".stack-factory", "verify-signature.sh"), succeed, { mode: 0o755 });
  await execa("tar", ["-czf", tampered, "-C", tree, top]);
  await copyFile(`${tarball}.asc`, `${tampered}.asc`);
  return { altered, resigned, unsigned, tampered };
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
      verifier: join(work, "site", "verify-tarball.sh"),
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
    const { altered, resigned, unsigned } = await copies();
    const run = await runCli(["verify", altered, "--keyring", site.files.public]);
    expect(run.exitCode).toBe(1);
    expect(run.all).toMatch(/refused: BAD signature/);

    const byOther = await runCli(["verify", resigned, "--keyring", site.files.public]);
    expect(byOther.exitCode).toBe(1);
    expect(byOther.all).toMatch(/which is not in/);

    const missing = await runCli(["verify", unsigned, "--keyring", site.files.public]);
    expect(missing.exitCode).toBe(1);
    expect(missing.all).toMatch(/no signature: .*\.asc is missing/);
  });
});

describe("signing flags", () => {
  it("refuse a wrong passphrase, a public key and a keyring key for warm before anything starts", async () => {
    const stackFile = await writeTestStack(work, { name: "flags" });
    await writeFile(join(work, "wrong-pass"), "not it\n", { mode: 0o600 });
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
  }, 900_000);

  it("warm --sign-key pushes signed entries; a signed build then takes everything from them", async () => {
    const keys = await readdir(join(warmCache, "buildcache"));
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatch(new RegExp(`_signed-${site.fingerprint.slice(-16)}$`));
    // Spack 1.x's layout: every entry's manifest (v3/manifests/spec/...) is a clearsigned message.
    const dir = join(warmCache, "buildcache", keys[0]!);
    const entries = buildcacheEntries(dir);
    expect(entries.length).toBeGreaterThanOrEqual(3);
    expect(entries.filter((e) => !e.signed)).toEqual([]);
    expect(entries[0]!.text).toMatch(
      /^-----BEGIN PGP SIGNED MESSAGE-----\n[\s\S]*"version":3,[\s\S]*-----BEGIN PGP SIGNATURE-----/,
    );
    expect(JSON.parse(await readFile(join(dir, "v3", "layout.json"), "utf8"))).toEqual({ signing: "gpg" });

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
    // A copy of the warmed cache, which the other test reads as warm left it.
    const cache = join(work, "warm-cache-altered");
    await execa("cp", ["-a", "--", warmCache, cache]);
    const key = (await readdir(join(cache, "buildcache"))).find((k) => /_signed-[0-9A-F]+$/.test(k))!;
    const entries = buildcacheEntries(join(cache, "buildcache", key));
    // hello's manifest altered under its signature; zlib's signature stripped (an unsigned manifest).
    const hello = entries.find((e) => e.name === "hello")!;
    expect(hello.text).toContain('"checksumAlgorithm":"sha256"');
    await writeFile(
      hello.manifestPath,
      hello.text.replace('"checksumAlgorithm":"sha256"', '"checksumAlgorithm": "sha256"'),
    );
    const zlib = entries.find((e) => e.name === "zlib")!;
    const zlibBody = /-----BEGIN PGP SIGNED MESSAGE-----\s+Hash:\s+\S+\s+([\s\S]+)-----BEGIN PGP SIGNATURE-----/.exec(
      zlib.text,
    )![1]!;
    await writeFile(zlib.manifestPath, zlibBody);

    const again = await runCli([
      "warm",
      stackFile,
      "--cache-dir",
      cache,
      "--report",
      join(work, "refused.json"),
      ...sign(),
    ]);
    expect(again.exitCode, again.all).toBe(0);
    const { target, log } = await logOf(join(work, "refused.json"));
    expect(log).toMatch(/Skipping hello-\S+ from mirror stack-factory: signature verification failed/);
    expect(log).toMatch(/Skipping zlib-\S+ from mirror stack-factory/);
    expect(target.built.map((p) => p.replace(/-[^-]+-[a-z0-9]{32}$/, "")).sort()).toEqual(["hello", "zlib"]);

    const unsigned = await runCli(["warm", stackFile, "--cache-dir", cache, "--report", join(work, "unsigned.json")]);
    expect(unsigned.exitCode, unsigned.all).toBe(0);
    expect((await readdir(join(cache, "buildcache"))).sort()).toEqual(
      [key, key.replace(/_signed-[0-9A-F]+$/, "")].sort(),
    );
    expect((await logOf(join(work, "unsigned.json"))).log).not.toMatch(/from binary cache/);
  });
});

describe("on a node: the site's verifier before anything of the tarball runs", () => {
  /**
   * Runs a script in a fresh container of `image`, without network, with the signed tarball (/pkg), its altered,
   * re-signed and tampered copies and the directory `keys init` wrote (/keys: public.asc, public.gpg and
   * verify-tarball.sh; the secret key is not mounted) read-only.
   */
  const onNode = async (image: string, script: string) => {
    const { altered, resigned, tampered } = await copies();
    const keys = join(work, "node-keys");
    await mkdir(keys, { recursive: true });
    for (const f of [site.files.public, site.files.publicBinary, site.files.verifier]) {
      await copyFile(f, join(keys, basename(f)));
    }
    const mount = (from: string, to: string) => ["-v", `${from}:${to}:ro`];
    return execa(
      "docker",
      [
        "run",
        "--rm",
        "--network",
        "none",
        // Root, as a cluster's administrator installs to /apps (the builder image's own user is not).
        "--user",
        "0:0",
        // Not a factory container: the builder image carries the labels of the run that built it (its pid long
        // gone), which a container inherits, and `stack-factory clean` run meanwhile would remove it as a dead run's.
        "--label",
        "stack-factory=0",
        ...mount(dist, "/pkg"),
        ...mount(dirname(altered), "/altered"),
        ...mount(dirname(resigned), "/resigned"),
        ...mount(dirname(tampered), "/tampered"),
        ...mount(keys, "/keys"),
        image,
        "bash",
        "-c",
        `set -u\nmkdir /node && cd /node\n${script}`,
      ],
      { reject: false, all: true },
    );
  };
  const names = () => {
    const name = basename(tarball);
    return { name, top: name.replace(/\.tar\.gz$/, "") };
  };
  /** The README's flow, from the directory holding the tarball and its .asc; then what it left behind. */
  const flow = (label: string, from: string, prefix: string) => {
    const { name, top } = names();
    return `
rm -rf /node/${label} && mkdir /node/${label} && cd /node/${label} && cp ${from}/${name} ${from}/${name}.asc .
/keys/verify-tarball.sh ${name} && tar -xzf ${name} && ./${top}/install.sh --prefix ${prefix}; echo "${label}=$? $(test -e ${top} && echo unpacked || echo not-unpacked) $(test -e ${prefix} && echo prefix-written || echo prefix-absent)"
cd /node`;
  };

  it("a tarball whose install.sh and verify-signature.sh always succeed, re-packed under the old .asc, is refused before it is unpacked", async () => {
    const { name, top } = names();
    const run = await onNode(
      TEST_IMAGE,
      `${flow("TAMPERED", "/tampered", "/apps/tampered")}
# What the old flow (unpack, then the tarball's own install.sh --verify-signature) made of the same tarball:
mkdir old && cd old && cp /tampered/${name} /tampered/${name}.asc . && tar -xzf ${name}
./${top}/install.sh --verify-signature /keys/public.asc --prefix /apps/old; echo "OLD=$? $(cat /apps/old/tampered 2>/dev/null)"
`,
    );
    expect(run.all).toMatch(/verify-tarball\.sh: REFUSED \S+: BAD signature: it is not what was signed/);
    expect(run.all).toContain("TAMPERED=1 not-unpacked prefix-absent");
    // The tampered scripts are live: without the verifier first, they would have "installed" it.
    expect(run.all).toContain("OLD=0 tampered");
  });

  it("installs a good tarball with gpgv alone (the test image has apt's gpgv, no gpg); refuses altered, re-signed and unsigned ones", async () => {
    const { name } = names();
    const run = await onNode(
      TEST_IMAGE,
      `
command -v gpg && echo "HAS GPG"
command -v gpgv >/dev/null && echo "HAS GPGV"
${flow("GOOD", "/pkg", "/apps/good")}
${flow("ALTERED", "/altered", "/apps/altered")}
mkdir resigned && cp /resigned/${name} /resigned/${name}.asc resigned/
/keys/verify-tarball.sh resigned/${name}; echo "RESIGNED=$?"
mkdir unsigned && cp /pkg/${name} unsigned/
/keys/verify-tarball.sh unsigned/${name}; echo "UNSIGNED=$?"
gpgv --keyring /keys/public.gpg /pkg/${name}.asc /pkg/${name} >/dev/null 2>&1; echo "GPGV-BY-HAND=$?"
rm -f "$(command -v gpgv)"
/keys/verify-tarball.sh /pkg/${name}; echo "NONE=$?"
`,
    );
    expect(run.all).not.toContain("HAS GPG\n");
    expect(run.all).toContain("HAS GPGV");
    expect(run.all).toContain(`verify-tarball.sh: good signature by ${site.fingerprint} on ${name}`);
    expect(run.all).toContain("GOOD=0 unpacked prefix-written");
    expect(run.all).toMatch(/Installed signed 1\.0 \(x86_64_v3\) at \/apps\/good/);
    expect(run.all).toContain("ALTERED=1 not-unpacked prefix-absent");
    expect(run.all).toMatch(/signed by key \w+, which is not the site's key/);
    expect(run.all).toContain("RESIGNED=1");
    expect(run.all).toMatch(/no signature \S+\.asc beside it/);
    expect(run.all).toContain("UNSIGNED=1");
    expect(run.all).toContain("GPGV-BY-HAND=0");
    expect(run.all).toMatch(/needs gpgv or gpg, and neither is on PATH/);
    expect(run.all).toContain("NONE=1");
  });

  it("works with gpg alone (the builder image), and install.sh refuses --verify-signature with the flow to use", async () => {
    const { name, top } = names();
    const run = await onNode(
      builderImage,
      `
rm -f "$(command -v gpgv)" "$(command -v gpgv2)"
command -v gpg >/dev/null && echo "HAS GPG"
${flow("GPG", "/pkg", "/apps/gpg")}
${flow("TAMPERED", "/tampered", "/apps/tampered")}
mkdir legacy && cd legacy && cp /pkg/${name} . && tar -xzf ${name}
./${top}/install.sh --verify-signature /keys/public.asc --prefix /apps/legacy; echo "LEGACY=$? $(test -e /apps/legacy && echo prefix-written || echo prefix-absent)"
`,
    );
    expect(run.all).toContain("HAS GPG");
    expect(run.all).toContain(`verify-tarball.sh: good signature by ${site.fingerprint} on ${name}`);
    expect(run.all).toContain("GPG=0 unpacked prefix-written");
    expect(run.all).toContain("TAMPERED=1 not-unpacked prefix-absent");
    expect(run.all).toContain("LEGACY=2 prefix-absent");
    expect(run.all).toMatch(/--verify-signature: install\.sh checks no signature .* verify-tarball\.sh TARBALL/);
  });
});

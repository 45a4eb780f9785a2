/**
 * The stand-in's `spack -e DIR mirror create -d DIR --all` against what Spack 1.1 does (spack/cmd/mirror.py,
 * spack/mirrors/utils.py): the layout installs read offline, what it prints, what it refuses. Sources are
 * "downloaded" from a loopback HTTP server (the SPACK_STANDIN_URL_BASE hook). Runs the stand-in on the host.
 */
import * as fs from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
const SPACK = path.join(FIXTURES, "spack-standin", "bin", "spack");
const BUILTIN = path.join(FIXTURES, "spack-packages", "repos", "spack_repo", "builtin");
const CLINGO_STUB = path.join(FIXTURES, "clingo-standin");
const STANDIN_LIB = path.join(FIXTURES, "spack-standin", "lib");
const BOOTSTRAP_FILES = ["clingo-bootstrap", "gnupg", "patchelf", "gnuconfig"].map((n) => `bootstrap/${n}.tar.gz`);

let tmp: string;
let server: Server;
let base: string;
const served: string[] = [];
/** name-version.tar.gz → bytes the loopback server hands out. */
const files = new Map<string, Buffer>();

function sha256Of(name: string, version: string): string {
  const recipe = fs.readFileSync(path.join(BUILTIN, "packages", name.replace(/-/g, "_"), "package.py"), "utf8");
  const m = recipe.match(new RegExp(`version\\("${version.replace(/\./g, "\\.")}", sha256="([0-9a-f]{64})"\\)`));
  if (m === null) throw new Error(`no checksum for ${name}@${version}`);
  return m[1] as string;
}
const archive = (root: string, sha: string) =>
  path.join(root, "_source-cache", "archive", sha.slice(0, 2), `${sha}.tar.gz`);

function writeEnv(name: string, specs: string[], mirrors: Record<string, unknown> = {}): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(path.join(dir, "env"), { recursive: true });
  const spack = {
    specs,
    concretizer: { unify: true, reuse: true, targets: { host_compatible: false } },
    config: {
      install_tree: { root: path.join(dir, "install"), padded_length: 128 },
      source_cache: path.join(dir, "source-cache"),
      misc_cache: path.join(dir, "user-cache", "cache"),
    },
    packages: { all: { require: ["target=x86_64"] } },
    mirrors,
    view: false,
    repos: { builtin: BUILTIN },
  };
  fs.writeFileSync(path.join(dir, "env", "spack.yaml"), YAML.stringify({ spack }));
  return dir;
}

async function spack(dir: string, args: string[], env: Record<string, string> = {}) {
  return execa(SPACK, ["-e", path.join(dir, "env"), ...args], {
    reject: false,
    env: {
      SPACK_USER_CACHE_PATH: path.join(dir, "user-cache"),
      SPACK_DISABLE_LOCAL_CONFIG: "1",
      PYTHONPATH: CLINGO_STUB,
      TMPDIR: tmp,
      ...env,
    },
  });
}

beforeAll(async () => {
  tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "standin-mirror-")));
  // The sources the recipes name, as the stand-in generates them (its "download" without the hook).
  const gen = writeEnv("generate", ["hello"]);
  expect((await spack(gen, ["concretize"])).exitCode).toBe(0);
  const fetched = await spack(gen, ["fetch"]);
  expect(fetched.exitCode, fetched.stderr).toBe(0);
  for (const [name, version] of [
    ["hello", "2.12"],
    ["libgreet", "1.1"],
    ["zlib", "1.3.1"],
  ] as const) {
    files.set(
      `/${name}/${name}-${version}.tar.gz`,
      fs.readFileSync(archive(path.join(gen, "source-cache"), sha256Of(name, version))),
    );
  }
  // The bootstrap files (sources and the pre-built buildcache) the stand-in's bootstrap mirror downloads.
  for (const file of [...BOOTSTRAP_FILES, "bootstrap/bootstrap-buildcache.tar.gz"]) {
    const py = `import sys; sys.path.insert(0, ${JSON.stringify(STANDIN_LIB)}); from standin.bootstrap_mirror import generated; sys.stdout.buffer.write(generated(${JSON.stringify(file)}))`;
    const out = await execa("python3", ["-c", py], { encoding: "buffer" });
    files.set(`/${file}`, Buffer.from(out.stdout));
  }
  server = createServer((req, res) => {
    served.push(req.url ?? "");
    const body = files.get(req.url ?? "");
    if (body === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-length": body.length }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  if (server.listening) await new Promise((resolve) => server.close(resolve));
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("spack stand-in: mirror create", () => {
  it("mirrors every concrete spec at _source-cache/archive/<sha[:2]>/<sha> with the <name>/<name>-<version> alias", async () => {
    const dir = writeEnv("create", ["hello"]);
    expect((await spack(dir, ["concretize"])).exitCode).toBe(0);
    const mirror = path.join(tmp, "create-mirror");
    const r = await spack(dir, ["mirror", "create", "-d", mirror, "--all"], { SPACK_STANDIN_URL_BASE: base });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^==> Skipping gcc@[\d.]+\/[a-z2-7]{7} as it is an external spec\.$/m);
    expect(r.stdout).toContain("==> Adding package zlib@1.3.1 to mirror");
    expect(r.stdout).toContain(`==> Fetching ${base}/zlib/zlib-1.3.1.tar.gz`);
    expect(r.stdout).toContain(
      `==> Summary for mirror in ${mirror}\n==> Archive stats:\n  0    already present\n  3    added\n  0    failed to fetch.`,
    );
    for (const [name, version] of [
      ["hello", "2.12"],
      ["libgreet", "1.1"],
      ["zlib", "1.3.1"],
    ] as const) {
      const sha = sha256Of(name, version);
      expect(fs.readFileSync(archive(mirror, sha))).toEqual(files.get(`/${name}/${name}-${version}.tar.gz`));
      const alias = path.join(mirror, name, `${name}-${version}.tar.gz`);
      expect(fs.readlinkSync(alias)).toBe(path.relative(path.dirname(alias), archive(mirror, sha)));
    }
    // gcc-runtime has no code; externals none: nothing else.
    expect(fs.readdirSync(mirror).sort()).toEqual(["_source-cache", "hello", "libgreet", "zlib"]);
    expect(served).toContain("/hello/hello-2.12.tar.gz");

    const again = await spack(dir, ["mirror", "create", "-d", mirror, "--all"], { SPACK_STANDIN_URL_BASE: base });
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stdout).toContain("  3    already present\n  0    added\n");
    expect(again.stdout).not.toContain("Adding package");

    // Spack reads it offline: an install with no download and no source cache takes every source from it.
    const user = writeEnv("from-mirror", ["hello"], { kit: { url: `file://${mirror}`, signed: false } });
    const install = await spack(user, ["install", "--fail-fast", "--use-buildcache", "auto", "-j", "2"], {
      SPACK_STANDIN_OFFLINE: "1",
      PATH: process.env["PATH"] ?? "",
    });
    expect(install.exitCode, install.stderr).toBe(0);
    expect(install.stdout).toContain(`==> Fetching file://${archive(mirror, sha256Of("zlib", "1.3.1"))}`);
  });

  it("names every source it cannot download and exits 1", async () => {
    const dir = writeEnv("failing", ["zlib"]);
    expect((await spack(dir, ["concretize"])).exitCode).toBe(0);
    const r = await spack(dir, ["mirror", "create", "-d", path.join(tmp, "failing-mirror"), "--all"], {
      SPACK_STANDIN_URL_BASE: `${base}/nothing-here`,
    });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("==> Warning: Error while fetching zlib@1.3.1");
    expect(r.stdout).toContain("  0    added\n  1    failed to fetch.");
    expect(r.stderr).toContain("==> Error: Failed downloads:");
    expect(r.stdout.trim().split("\n").at(-1)).toBe("zlib@1.3.1");
    expect(fs.existsSync(archive(path.join(tmp, "failing-mirror"), sha256Of("zlib", "1.3.1")))).toBe(false);
  });

  it("refuses what Spack's mirror create refuses", async () => {
    const dir = writeEnv("refusals", ["zlib"]);
    const none = await spack(dir, ["mirror", "create", "-d", path.join(tmp, "x")]);
    expect(none.exitCode).toBe(1);
    expect(none.stderr).toContain(
      "==> Error: no packages were specified.\nTo mirror all packages, use the '--all' option",
    );
    const both = await spack(dir, ["mirror", "create", "--all", "zlib"]);
    expect(both.stderr).toContain(
      "==> Error: cannot specify specs on command line if you chose to mirror all specs with '--all'",
    );
    const versions = await spack(dir, ["mirror", "create", "--all", "-n", "2"]);
    expect(versions.stderr).toContain("==> Error: cannot specify '--versions_per-spec' and '--all' together");
    const unconcretized = await spack(dir, ["mirror", "create", "--all"]);
    expect(unconcretized.exitCode).toBe(1);
    expect(unconcretized.stderr).toContain("not concretized");
  });
});

describe("spack stand-in: bootstrap mirror", () => {
  it("makes a bootstrap mirror with --binary-packages from which a trusted source gives clingo; untrusted, exit 3", async () => {
    const root = path.join(tmp, "bootstrap");
    const offline = await execa(SPACK, ["bootstrap", "mirror", "--binary-packages", path.join(tmp, "b-offline")], {
      reject: false,
      env: { SPACK_STANDIN_OFFLINE: "1" },
    });
    expect(offline.exitCode).toBe(1);
    expect(offline.stderr).toContain("FetchError: All fetchers failed");

    const made = await execa(SPACK, ["bootstrap", "mirror", "--binary-packages", root], {
      reject: false,
      env: { SPACK_STANDIN_URL_BASE: base },
    });
    expect(made.exitCode, made.stderr).toBe(0);
    expect(made.stdout).toContain(
      `==> Adding "clingo-bootstrap" and dependencies to the mirror at ${root}/bootstrap_cache`,
    );
    expect(made.stdout).toContain("  % spack bootstrap add --trust local-binaries <final-path>/metadata/binaries");
    expect(served).toContain("/bootstrap/bootstrap-buildcache.tar.gz");
    for (const f of ["metadata.yaml", "clingo.json", "gnupg.json", "patchelf.json"])
      expect(fs.existsSync(path.join(root, "metadata", "binaries", f)), f).toBe(true);
    expect(fs.readFileSync(path.join(root, "metadata", "binaries", "metadata.yaml"), "utf8")).toContain(
      "type: buildcache",
    );

    const concretize = async (trusted: boolean) => {
      const dir = writeEnv(`bootstrap-${trusted}`, ["zlib"]);
      const manifest = path.join(dir, "env", "spack.yaml");
      const doc = YAML.parse(fs.readFileSync(manifest, "utf8"));
      doc.spack.bootstrap = {
        sources: [{ name: "kit", metadata: path.join(root, "metadata", "binaries") }],
        trusted: { kit: trusted },
      };
      fs.writeFileSync(manifest, YAML.stringify(doc));
      // No PYTHONPATH: the interpreter cannot import clingo (Debian packages none for Python).
      return execa(SPACK, ["-e", path.join(dir, "env"), "concretize"], {
        reject: false,
        env: { SPACK_USER_CACHE_PATH: path.join(dir, "user-cache"), SPACK_DISABLE_LOCAL_CONFIG: "1", PYTHONPATH: "" },
      });
    };
    const untrusted = await concretize(false);
    expect(untrusted.exitCode).toBe(3);
    expect(untrusted.stderr).toContain('cannot bootstrap the "clingo" Python module');
    const ok = await concretize(true);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(ok.stdout).toContain("==> Bootstrapping clingo from pre-built binaries");
  });
});

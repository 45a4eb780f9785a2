/**
 * The factory's contract with Spack (src/spack/contract.ts) run against the Spack stand-in: every command of
 * `spackCommands`, in order, in a tiny environment written by `environmentConfig`. A command without a sample here
 * fails the test, so the contract and the stand-in cannot drift apart. Also: the configuration Spack 1.1 cannot
 * build with offline (builtin neither configured nor reachable) fails in the stand-in as it does in Spack 1.1.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import {
  environmentConfig,
  repoMountPath,
  spackCommands,
  spackEnvironment,
  summariseInstallLog,
  type EnvironmentInput,
  type RepoConfig,
  type SpackPaths,
} from "../../src/spack/contract.js";
import { buildcacheEntries, buildcacheIndex } from "./helpers/buildcache.js";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
const STANDIN = path.join(FIXTURES, "spack-standin");
const BUILTIN = path.join(FIXTURES, "spack-packages", "repos", "spack_repo", "builtin");
const CLINGO = path.join(FIXTURES, "clingo-standin");
const REAL = JSON.parse(fs.readFileSync(path.join(STANDIN, "real-spack-lines.json"), "utf8")) as Record<
  string,
  string[] | string
>;

type Command = keyof typeof spackCommands;
interface Sample {
  argv: (p: SpackPaths) => string[];
  /** What the command must have done (beyond exit 0). */
  check: (p: SpackPaths, out: { stdout: string; stderr: string }) => void;
}

let tmp: string;
let fakeBin: string;

function paths(name: string): SpackPaths {
  const base = path.join(tmp, name);
  return {
    spack: path.join(STANDIN, "bin", "spack"),
    envDir: path.join(base, "env"),
    installRoot: path.join(base, "install"),
    paddedLength: 160,
    viewRoot: path.join(base, "view"),
    sourceCache: path.join(base, "source-cache"),
    userCache: path.join(base, "user-cache"),
    buildcache: path.join(base, "buildcache"),
    ccache: path.join(base, "ccache"),
    gnupgHome: path.join(base, "gnupg"),
  };
}

/** A fresh public key (made in a throwaway gpg home) in a file beside the environment. */
function publicKeyFile(p: SpackPaths): string {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "sf-gpg-"));
  try {
    const gpg = (...args: string[]) =>
      execFileSync("gpg", ["--homedir", home, "--batch", ...args], { stdio: ["ignore", "pipe", "ignore"] });
    gpg("--passphrase", "", "--quick-generate-key", "Contract Test <contract@example.org>", "ed25519", "sign", "never");
    const file = path.join(path.dirname(p.envDir), "public.asc");
    fs.writeFileSync(file, gpg("--armor", "--export"));
    return file;
  } finally {
    execFileSync("gpgconf", ["--homedir", home, "--kill", "all"], { stdio: "ignore" });
    fs.rmSync(home, { recursive: true, force: true });
  }
}

function writeEnv(p: SpackPaths, specs: string[], repos: RepoConfig): void {
  const input: EnvironmentInput = {
    specs,
    target: "x86_64",
    compilerSpec: undefined,
    packages: {},
    repos,
    mirrors: {},
  };
  fs.mkdirSync(p.envDir, { recursive: true });
  fs.mkdirSync(p.ccache, { recursive: true });
  fs.writeFileSync(path.join(p.envDir, "spack.yaml"), YAML.stringify(environmentConfig(p, input)));
}

function run(argv: string[], p: SpackPaths) {
  const [file, ...args] = argv;
  return execa(file!, args, {
    reject: false,
    env: {
      ...spackEnvironment(p),
      PATH: `${fakeBin}:${process.env["PATH"] ?? ""}`,
      TMPDIR: path.join(tmp, "stage-tmp"),
      PYTHONPATH: CLINGO,
    },
  });
}

const readYaml = (p: SpackPaths) =>
  YAML.parse(fs.readFileSync(path.join(p.envDir, "spack.yaml"), "utf8")) as { spack: any };
const lockOf = (p: SpackPaths) =>
  JSON.parse(fs.readFileSync(path.join(p.envDir, "spack.lock"), "utf8")) as {
    concrete_specs: Record<string, { name: string; version: string; hash: string; external?: unknown }>;
  };
const built = (p: SpackPaths) => Object.values(lockOf(p).concrete_specs).filter((n) => n.external === undefined);
const short = (n: { name: string; version: string; hash: string }) => `${n.name}-${n.version}-${n.hash}`;

/** One sample per command of the contract, in the order the factory runs them. */
const SAMPLES: Record<Command, Sample> = {
  compilerFind: {
    argv: (p) => spackCommands.compilerFind(p),
    check: (p, out) => {
      expect(out.stdout).toContain(`==> Added 1 new compiler to ${p.envDir}/spack.yaml`);
      expect(readYaml(p).spack.packages.gcc.externals[0].spec).toMatch(/^gcc@\S+ languages:='c,c\+\+/);
    },
  },
  externalFind: {
    argv: (p) => spackCommands.externalFind(p, ["json-c"]),
    check: (_p, out) => expect(out.stderr).toContain("==> Warning: No executable found for json-c"),
  },
  concretize: {
    argv: (p) => spackCommands.concretize(p),
    check: (p, out) => {
      expect(out.stdout).toContain("==> Concretized 1 spec:");
      expect(
        built(p)
          .map((n) => n.name)
          .sort(),
      ).toEqual(["gcc-runtime", "zlib"]);
    },
  },
  fetch: {
    argv: (p) => spackCommands.fetch(p),
    check: (p) => {
      const archives = fs.readdirSync(path.join(p.sourceCache, "_source-cache", "archive"), {
        recursive: true,
      }) as string[];
      expect(archives.filter((f) => f.endsWith(".tar.gz"))).toHaveLength(1);
    },
  },
  install: {
    argv: (p) => spackCommands.install(p, 2),
    check: (p, out) => {
      const summary = summariseInstallLog(out.stdout);
      expect(summary.built.sort()).toEqual(built(p).map(short).sort());
      expect(summary.fromCache).toEqual([]);
    },
  },
  push: {
    argv: (p) => spackCommands.push(p),
    check: (p) => {
      const index = buildcacheIndex(p.buildcache);
      expect(
        buildcacheEntries(p.buildcache)
          .map((e) => e.hash)
          .sort(),
      ).toEqual(
        built(p)
          .map((n) => n.hash)
          .sort(),
      );
      expect(Object.keys(index.database.installs).sort()).toEqual(
        built(p)
          .map((n) => n.hash)
          .sort(),
      );
    },
  },
  gpgTrust: {
    argv: (p) => spackCommands.gpgTrust(p, publicKeyFile(p)),
    check: (p, out) => {
      expect(out.stdout).toContain(`==> Added 1 key to the trust store (${p.gnupgHome})`);
      expect(fs.statSync(p.gnupgHome!).mode & 0o777).toBe(0o700);
    },
  },
  viewRegenerate: {
    argv: (p) => spackCommands.viewRegenerate(p),
    check: (p) => {
      expect(fs.lstatSync(p.viewRoot).isSymbolicLink()).toBe(true);
      expect(fs.existsSync(path.join(p.viewRoot, "bin", "zlib"))).toBe(true);
      expect(fs.existsSync(path.join(p.viewRoot, "lib", "libgcc_s.so.1"))).toBe(true);
    },
  },
  findJson: {
    argv: (p) => spackCommands.findJson(p),
    check: (p, out) => {
      const records = JSON.parse(out.stdout) as { name: string; hash: string }[];
      expect(records.map((r) => r.hash).sort()).toEqual(Object.keys(lockOf(p).concrete_specs).sort());
    },
  },
  mirrorCreate: {
    argv: (p) => spackCommands.mirrorCreate(p, path.join(p.envDir, "..", "kit-mirror")),
    check: (p, out) => {
      expect(out.stdout).toContain(`==> Summary for mirror in ${path.join(p.envDir, "..", "kit-mirror")}`);
      expect(fs.existsSync(path.join(p.envDir, "..", "kit-mirror", "_source-cache", "archive"))).toBe(true);
    },
  },
  bootstrapMirror: {
    argv: (p) => spackCommands.bootstrapMirror(p, path.join(p.envDir, "..", "kit-bootstrap")),
    check: (p) => {
      const meta = path.join(p.envDir, "..", "kit-bootstrap", "metadata", "binaries", "metadata.yaml");
      expect(fs.readFileSync(meta, "utf8")).toContain("type: buildcache");
    },
  },
};

beforeAll(() => {
  tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "spack-contract-")));
  fakeBin = path.join(tmp, "fake-bin");
  fs.mkdirSync(fakeBin);
  fs.mkdirSync(path.join(tmp, "stage-tmp"));
  fs.writeFileSync(path.join(fakeBin, "ccache"), `#!/bin/sh\nexec "$@"\n`, { mode: 0o755 });
});

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

// Steps of one scenario, in this order even when the tests are shuffled (scripts/test.sh): each starts from
// what the ones before left in the caches, as a site's successive runs do.
describe("the contract's commands against the Spack stand-in", { shuffle: false }, () => {
  it("has a sample for every command and runs each, in order, in a tiny environment", async () => {
    const p = paths("tiny");
    writeEnv(p, ["zlib"], { generation: "v1", builtin: BUILTIN, extra: [] });
    const yaml = readYaml(p);
    expect(yaml.spack.repos).toEqual({ builtin: BUILTIN });
    expect(yaml.spack.concretizer.targets).toEqual({ host_compatible: false });
    for (const command of Object.keys(spackCommands) as Command[]) {
      const sample = SAMPLES[command];
      expect(
        sample,
        `no sample for spackCommands.${command}: add one here and make the stand-in implement it`,
      ).toBeDefined();
      const out = await run(sample.argv(p), p);
      expect(out.exitCode, `${command}: ${out.stderr}`).toBe(0);
      expect(out.stderr, command).not.toContain("==> Error");
      sample.check(p, out);
    }
    expect(Object.keys(SAMPLES)).toEqual(Object.keys(spackCommands));
  });

  it("counts a rebuild from the buildcache as taken from the cache, not built", async () => {
    const p = paths("tiny");
    fs.rmSync(p.installRoot, { recursive: true, force: true });
    const out = await run(spackCommands.install(p, 2), p);
    expect(out.exitCode, out.stderr).toBe(0);
    // Real Spack prints "Successfully installed" for extracted packages too.
    expect(out.stdout.match(/Successfully installed/g)).toHaveLength(2);
    const summary = summariseInstallLog(out.stdout);
    expect(summary.built).toEqual([]);
    expect(summary.fromCache.sort()).toEqual(built(p).map(short).sort());
  });

  it("an extra repository mounted at spack_repo/<namespace> works beside builtin", async () => {
    const p = paths("extra-repo");
    const repo = repoMountPath(path.join(tmp, "extra-repo", "repos"), "site");
    fs.mkdirSync(path.join(repo, "packages", "site_tool"), { recursive: true });
    fs.writeFileSync(path.join(repo, "repo.yaml"), "repo:\n  namespace: site\n  api: v2.0\n");
    fs.writeFileSync(
      path.join(repo, "packages", "site_tool", "package.py"),
      `version("1.0", sha256="${"0".repeat(64)}")\ndepends_on("zlib")\ndepends_on("c", type="build")\n`,
    );
    writeEnv(p, ["site-tool"], { generation: "v1", builtin: BUILTIN, extra: [{ namespace: "site", path: repo }] });
    for (const argv of [spackCommands.compilerFind(p), spackCommands.concretize(p)]) {
      const out = await run(argv, p);
      expect(out.exitCode, out.stderr).toBe(0);
      expect(out.stderr).toBe("");
    }
    expect(
      built(p)
        .map((n) => n.name)
        .sort(),
    ).toEqual(["gcc-runtime", "site-tool", "zlib"]);
  });
});

describe("Spack 1.1 offline without builtin", () => {
  const forms: [string, (repo: string) => RepoConfig][] = [
    ["a v1 map without builtin", (repo) => ({ generation: "v1", extra: [{ namespace: "site", path: repo }] })],
    ["the v0 list form", (repo) => ({ generation: "v0", extra: [{ namespace: "site", path: repo }] })],
  ];
  for (const [label, repos] of forms) {
    it(`fails like Spack 1.1 with ${label}: a failed clone, then no compiler`, async () => {
      const p = paths(`offline-${label.replace(/\W+/g, "-")}`);
      const repo = repoMountPath(path.join(tmp, `offline-${label.replace(/\W+/g, "-")}`, "repos"), "site");
      fs.mkdirSync(path.join(repo, "packages", "site_tool"), { recursive: true });
      fs.writeFileSync(path.join(repo, "repo.yaml"), "repo:\n  namespace: site\n  api: v2.0\n");
      fs.writeFileSync(path.join(repo, "packages", "site_tool", "package.py"), `version("1.0")\ndepends_on("c")\n`);
      writeEnv(p, ["site-tool"], repos(repo));
      const clone = `${p.userCache}/package_repos/fncqgg4`;
      const [fatal, cloneWarning] = (REAL["cloneFailed"] as string[]).map((l) =>
        l.split("<user-cache>").join(p.userCache),
      );

      const compiler = await run(spackCommands.compilerFind(p), p);
      expect(compiler.stderr.split("\n")).toEqual(expect.arrayContaining([fatal, cloneWarning]));
      expect(compiler.stdout).toContain("Found no new compilers");
      expect(fs.readdirSync(clone)).toEqual([".git"]);

      const concretize = await run(spackCommands.concretize(p), p);
      expect(concretize.exitCode).toBe(1);
      expect(concretize.stderr).toContain((REAL["poisonedClone"] as string).split("<user-cache>").join(p.userCache));
      expect(concretize.stderr.trim().split("\n").at(-1)).toBe(REAL["noCompiler"]);
      expect(fs.existsSync(path.join(p.envDir, "spack.lock"))).toBe(false);
    });
  }
});

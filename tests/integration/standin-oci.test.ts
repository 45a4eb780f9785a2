/**
 * The Spack stand-in's oci:// buildcaches against a real registry (Debian's docker-registry on loopback, started by
 * scripts/ensure-registry.sh): push over the registry's HTTP API as Spack lays it out (blobs, a manifest per spec, an
 * index), install from it in another environment, and loud failures for what it does not do. The registry is the
 * https one (its own CA, trusted through SSL_CERT_FILE as Spack's Python does); over plain http the stand-in does
 * what Spack 1.1's OCI client does with credentials (reads work, pushes fail). The stand-in runs on the host, as in
 * spack-standin.test.ts.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { spackCommands, spackEnvironment, type SpackPaths } from "../../src/spack/contract.js";
import { requireRegistry, type TestRegistry } from "./helpers/registry.js";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
const STANDIN = path.join(FIXTURES, "spack-standin");
const SPACK = path.join(STANDIN, "bin", "spack");
const BUILTIN = path.join(FIXTURES, "spack-packages", "repos", "spack_repo", "builtin");
const CLINGO_STUB = path.join(FIXTURES, "clingo-standin");
const MANIFEST = "application/vnd.oci.image.manifest.v1+json";

let tmp: string;
let registry: TestRegistry;
let plainRegistry: TestRegistry;
let repository: string;

function pathsFor(name: string): SpackPaths {
  const base = path.join(tmp, name);
  return {
    spack: SPACK,
    envDir: path.join(base, "env"),
    installRoot: path.join(base, "install"),
    paddedLength: 128,
    viewRoot: path.join(base, "view"),
    sourceCache: path.join(base, "source-cache"),
    userCache: path.join(base, "user-cache"),
    buildcache: "/nonexistent",
    ccache: path.join(base, "ccache"),
  };
}

function writeEnv(p: SpackPaths, mirror: Record<string, unknown>): void {
  fs.mkdirSync(p.envDir, { recursive: true });
  const env = {
    spack: {
      specs: ["hello"],
      concretizer: { unify: true, reuse: true, targets: { host_compatible: false } },
      config: {
        install_tree: { root: p.installRoot, padded_length: p.paddedLength },
        source_cache: p.sourceCache,
        misc_cache: `${p.userCache}/cache`,
        build_jobs: 2,
      },
      packages: { all: { require: ["target=x86_64_v3"] } },
      mirrors: { "stack-factory": mirror },
      view: { default: { root: p.viewRoot, link_type: "copy" } },
      repos: { builtin: BUILTIN },
    },
  };
  fs.writeFileSync(path.join(p.envDir, "spack.yaml"), YAML.stringify(env));
}

const mirrorAt = (repo: string, extra: Record<string, unknown> = {}, at: TestRegistry = registry) => ({
  url: at.ociUrl(repo),
  signed: false,
  binary: true,
  source: false,
  access_pair: { id_variable: "REG_USER", secret_variable: "REG_PASSWORD" },
  ...extra,
});

async function run(argv: string[], p: SpackPaths, env: Record<string, string> = {}) {
  const [file, ...args] = argv;
  return execa(file!, args, {
    reject: false,
    env: {
      ...spackEnvironment(p),
      TMPDIR: path.join(tmp, "stage-tmp"),
      PYTHONPATH: CLINGO_STUB,
      SSL_CERT_FILE: registry.caFile!,
      REG_USER: registry.username,
      REG_PASSWORD: registry.password,
      ...env,
    },
  });
}

async function installed(p: SpackPaths, env: Record<string, string> = {}) {
  expect((await run(spackCommands.compilerFind(p), p, env)).exitCode).toBe(0);
  return run(spackCommands.install(p, 2), p, env);
}

beforeAll(async () => {
  registry = await requireRegistry();
  plainRegistry = await requireRegistry({ plainHttp: true });
  repository = registry.freshRepository("standin");
  tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "standin-oci-")));
  fs.mkdirSync(path.join(tmp, "stage-tmp"));
});

afterAll(() => {
  if (tmp !== undefined) fs.rmSync(tmp, { recursive: true, force: true });
});

// Steps of one scenario, in this order even when the tests are shuffled (scripts/test.sh): each starts from
// what the ones before left in the caches, as a site's successive runs do.
describe("stand-in: oci:// buildcache in a real registry", { shuffle: false }, () => {
  it("pushes blobs, a manifest per spec and an index; a second push skips what is there", async () => {
    const p = pathsFor("pusher");
    writeEnv(p, mirrorAt(repository));
    const built = await installed(p);
    expect(built.exitCode, built.stderr).toBe(0);
    const push = await run(spackCommands.push(p), p);
    expect(push.exitCode, push.stderr).toBe(0);
    expect(push.stdout).toContain(`==> Selected 4 specs to push to oci://${registry.address}/${repository}`);
    expect(push.stdout).toMatch(/^==> \[\d\/4\] Pushed hello@2\.12\/[a-z2-7]{7}$/m);
    expect(push.stdout).toContain("==> Updated the buildcache index: 4 specs");

    const { tags } = (await registry.get(`/v2/${repository}/tags/list`)) as { tags: string[] };
    expect(tags.sort()).toEqual(
      expect.arrayContaining([
        "index.spack",
        expect.stringMatching(/^hello-2\.12-[a-z2-7]{32}\.spack$/),
        expect.stringMatching(/^zlib-/),
      ]),
    );
    expect(tags).toHaveLength(5);
    const helloTag = tags.find((t) => t.startsWith("hello-"))!;
    const manifest = (await registry.get(`/v2/${repository}/manifests/${helloTag}`, MANIFEST)) as {
      config: { digest: string };
      layers: { digest: string; mediaType: string }[];
    };
    // Its dependencies' tarballs, then its own, as Spack stacks them into a runnable image.
    expect(manifest.layers).toHaveLength(4);
    const config = (await registry.get(`/v2/${repository}/blobs/${manifest.config.digest}`)) as {
      architecture: string;
      spec: { nodes: { name: string }[] };
      binary_cache_checksum: { hash: string };
      rootfs: { diff_ids: string[] };
    };
    expect(config.architecture).toBe("amd64");
    expect(config.spec.nodes[0]!.name).toBe("hello");
    expect(`sha256:${config.binary_cache_checksum.hash}`).toBe(manifest.layers.at(-1)!.digest);
    expect(config.rootfs.diff_ids).toHaveLength(4);

    const again = await run(spackCommands.push(p), p);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stdout).not.toContain("Pushed");
    expect(again.stdout).toContain("==> All specs are already in the buildcache. Use --force to overwrite them.");
  });

  it("another environment installs everything from the registry", async () => {
    const q = pathsFor("installer");
    writeEnv(q, mirrorAt(repository));
    const r = await installed(q);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/==> Extracting hello-2\.12-[a-z2-7]{32} from binary cache/);
    expect(r.stdout).toMatch(
      new RegExp(
        `==> Fetching https://${registry.address.replace(/\./g, "\\.")}/v2/${repository}/blobs/sha256:[0-9a-f]{64}`,
      ),
    );
    expect(r.stdout).not.toContain("Executing phase");
  });

  it("a spec tagged but in no index is not found, as with Spack: it is built", async () => {
    const repo = registry.freshRepository("unindexed");
    const p = pathsFor("unindexed-push");
    writeEnv(p, mirrorAt(repo));
    expect((await installed(p)).exitCode).toBe(0);
    const push = await run(
      spackCommands.push(p).filter((a) => a !== "--update-index"),
      p,
    );
    expect(push.exitCode, push.stderr).toBe(0);
    const q = pathsFor("unindexed-install");
    writeEnv(q, mirrorAt(repo));
    const r = await installed(q);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain("has no buildcache index");
    expect(r.stdout).not.toContain("from binary cache");
    expect(r.stdout).toContain("Executing phase");
  });

  it("fails loudly: no credentials, wrong credentials, an oci:// mirror used for sources", async () => {
    const p = pathsFor("failures");
    writeEnv(p, mirrorAt(repository, { access_pair: undefined }));
    const yamlText = fs.readFileSync(path.join(p.envDir, "spack.yaml"), "utf8").replace(/\n\s*access_pair: null/, "");
    fs.writeFileSync(path.join(p.envDir, "spack.yaml"), yamlText);
    const none = await installed(p);
    expect(none.exitCode).not.toBe(0);
    expect(none.stderr).toMatch(/needs credentials; set access_pair on the mirror/);

    writeEnv(p, mirrorAt(repository));
    const wrong = await installed(p, { REG_PASSWORD: "not-the-password" });
    expect(wrong.exitCode).not.toBe(0);
    expect(wrong.stderr).toMatch(/HTTP 401/);
    expect(wrong.stderr).not.toContain("not-the-password");

    const unset = await installed(p, { REG_PASSWORD: "" });
    expect(unset.stderr).toMatch(/access_pair secret_variable REG_PASSWORD is not set/);

    const q = pathsFor("as-source");
    writeEnv(q, mirrorAt(registry.freshRepository("empty"), { source: true }));
    const source = await installed(q);
    expect(source.exitCode).not.toBe(0);
    expect(source.stderr).toMatch(/reads oci:\/\/ mirrors as buildcaches only/);
  });

  it("https: the registry's certificate is verified (SSL_CERT_FILE names its CA); without it, nothing is read", async () => {
    const p = pathsFor("untrusted");
    writeEnv(p, mirrorAt(registry.freshRepository("untrusted")));
    const r = await installed(p, { SSL_CERT_FILE: "/nonexistent/ca.pem" });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/cannot reach the registry of mirror stack-factory at https:.*CERTIFICATE_VERIFY_FAILED/);
  });

  it("plain http with credentials, as Spack 1.1: reads log in after each 401, a push fails (its retry has no body)", async () => {
    const p = pathsFor("plain-http");
    const repo = plainRegistry.freshRepository("plain");
    writeEnv(p, mirrorAt(repo, {}, plainRegistry));
    const env = { REG_USER: plainRegistry.username, REG_PASSWORD: plainRegistry.password };
    // Reading works: the index is looked up (401, then again with the login: 404, no index yet).
    const built = await installed(p, env);
    expect(built.exitCode, built.stderr).toBe(0);
    expect(built.stderr).toContain("has no buildcache index");
    const push = await run(spackCommands.push(p), p, env);
    expect(push.exitCode).not.toBe(0);
    expect(push.stderr).toMatch(/Broken pipe/);
    expect(push.stderr).not.toContain(plainRegistry.password);
    expect(await plainRegistry.get(`/v2/${repo}/tags/list`)).toBeUndefined();
  });

  it("a package build runs in Spack's cleaned environment: *_ROOT credentials pull and push, and no build sees them", async () => {
    const repo = registry.freshRepository("clean-env");
    const secretEnv = { REG_USER_ROOT: registry.username, REG_PASSWORD_ROOT: registry.password, SF_VISIBLE: "seen" };
    const pair = { access_pair: { id_variable: "REG_USER_ROOT", secret_variable: "REG_PASSWORD_ROOT" } };
    const noPlain = { REG_USER: "", REG_PASSWORD: "" };
    const p = pathsFor("clean-env-push");
    writeEnv(p, mirrorAt(repo, pair));
    // A failed build keeps its stage: spack-build-env.txt is that build's whole environment.
    const failed = await installed(p, { ...noPlain, ...secretEnv, SPACK_STANDIN_FAIL: "zlib" });
    expect(failed.exitCode).not.toBe(0);
    const stageEnv = fs
      .readdirSync(path.join(tmp, "stage-tmp"), { recursive: true, encoding: "utf8" })
      .filter((f) => f.includes("spack-stage-zlib-") && f.endsWith("spack-build-env.txt"));
    expect(stageEnv.length).toBeGreaterThan(0);
    const whole = fs.readFileSync(path.join(tmp, "stage-tmp", stageEnv[0]!), "utf8");
    expect(whole).toContain("SF_VISIBLE=seen");
    expect(whole).not.toContain("REG_PASSWORD_ROOT");
    expect(whole).not.toContain(registry.password);

    const built = await installed(p, { ...noPlain, ...secretEnv });
    expect(built.exitCode, built.stderr).toBe(0);
    const push = await run(spackCommands.push(p), p, { ...noPlain, ...secretEnv });
    expect(push.exitCode, push.stderr).toBe(0);
    expect(push.stdout).toContain("==> Updated the buildcache index: 4 specs");
    // The prefix keeps Spack's own changes only: `unset`/`export` lines, no value of the install's environment.
    const prefixes = fs
      .readdirSync(p.installRoot, { recursive: true, encoding: "utf8" })
      .filter((f) => f.endsWith(".spack/spack-build-env.txt"));
    expect(prefixes.length).toBeGreaterThanOrEqual(3);
    for (const f of prefixes) {
      const text = fs.readFileSync(path.join(p.installRoot, f), "utf8");
      expect(text).toMatch(/^(?:(?:unset [A-Za-z_][A-Za-z0-9_]*|export [A-Za-z_][A-Za-z0-9_]*=\S+);\n)+$/);
      expect(text).toContain("unset REG_PASSWORD_ROOT;");
      expect(text).not.toContain(registry.password);
      expect(text).not.toContain("SF_VISIBLE");
    }
    // And another environment pulls with them.
    const q = pathsFor("clean-env-pull");
    writeEnv(q, mirrorAt(repo, pair));
    const pulled = await installed(q, { ...noPlain, ...secretEnv });
    expect(pulled.exitCode, pulled.stderr).toBe(0);
    expect(pulled.stdout).toMatch(/==> Extracting hello-2\.12-[a-z2-7]{32} from binary cache/);
  });
});

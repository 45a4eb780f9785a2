import { readFileSync } from "node:fs";
import { mkdtemp, readdir, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseStack } from "../../src/config/index.js";
import { parseFactorySettings } from "../../src/config/factory.js";
import { jsonSchemaText, SCHEMA_FILES, SCHEMA_KINDS } from "../../src/config/json-schema.js";
import { renderStarterStack } from "../../src/render/starter-stack.js";
import { MICROARCHS } from "../../src/targets/index.js";
import { schemaErrors } from "../helpers/stack-schema.js";
import { SPACK_PACKAGES, STANDIN, writeTestStack } from "../integration/helpers/stack.js";

const loads = (text: string) => () => parseStack(text, "/t/stack.yaml");

describe("the shipped JSON Schemas", () => {
  it.each(SCHEMA_KINDS)("schema/%s.schema.json is what generation from the valibot schemas gives now", async (kind) => {
    // After a change to the loader's schemas: npm run schemas.
    expect(await readFile(SCHEMA_FILES[kind], "utf8")).toBe(jsonSchemaText(kind));
  });

  it("accepts every example stack file and the good fixtures, which the loader accepts too", async () => {
    const files = [
      ...(await readdir("examples")).filter((f) => f.endsWith(".yaml")).map((f) => join("examples", f)),
      "tests/fixtures/stacks/minimal.yaml",
      "tests/fixtures/stacks/full.yaml",
    ];
    expect(files.length).toBeGreaterThanOrEqual(5);
    for (const file of files) {
      const text = await readFile(file, "utf8");
      expect(loads(text), file).not.toThrow();
      expect(schemaErrors("stack", text), file).toEqual([]);
    }
  });

  it("accepts the starter stack of init for every microarchitecture a host may have", () => {
    for (const m of MICROARCHS) {
      const text = renderStarterStack({ name: "starter", hostTarget: m.name, schema: "/s/stack.schema.json" });
      expect(loads(text), m.name).not.toThrow();
      expect(schemaErrors("stack", text), m.name).toEqual([]);
    }
  });

  it("accepts what the loader accepts through its own rules: YAML numbers as text, every compiler form", () => {
    const base = "specs: [zlib]\ntargets: [zen4]\n";
    for (const text of [
      `name: s\nversion: 25.05\n${base}`,
      `name: 2024\nversion: 1.10\ndescription: 3\n${base}modules: { env: { X: 1, Y: true } }\nspack: { ref: 1.0 }`,
      `name: s\nversion: "1"\n${base}compiler: os`,
      `name: s\nversion: "1"\n${base}compiler: gcc@13.3.0`,
      `name: s\nversion: "1"\n${base}compiler: { spec: gcc@=13.3.0 }`,
      `name: s\nversion: "1"\n${base}compiler: { os: { packages: [gcc-13, "g++-13"] } }`,
      `name: s\nversion: "1"\n${base}spack: { mirrors: { site: /srv/m }, builtin: { url: "https://x.example/p.git", ref: main } }`,
    ]) {
      expect(loads(text), text).not.toThrow();
      expect(schemaErrors("stack", text), text).toEqual([]);
    }
  });

  const ok = 'name: s\nversion: "1"\nspecs: [zlib]\ntargets: [zen4]\n';
  const rejected: [string, string][] = [
    ["an unknown top-level key", `${ok}colour: blue\n`],
    ["an unknown key of spack", `${ok}spack: { url: "https://x.example/s.git", branch: develop }\n`],
    ["an unknown key of spack.builtin", `${ok}spack: { builtin: { path: /x } }\n`],
    ["an unknown key of modules", `${ok}modules: { path: /x }\n`],
    ["an unknown key of compiler", `${ok}compiler: { os: { packages: [gcc] }, flags: -O3 }\n`],
    ["a missing name", 'version: "1"\nspecs: [zlib]\ntargets: [zen4]\n'],
    ["a missing version", "name: s\nspecs: [zlib]\ntargets: [zen4]\n"],
    ["missing specs", 'name: s\nversion: "1"\ntargets: [zen4]\n'],
    ["missing targets", 'name: s\nversion: "1"\nspecs: [zlib]\n'],
    ["specs as a string", 'name: s\nversion: "1"\nspecs: zlib\ntargets: [zen4]\n'],
    ["no specs", 'name: s\nversion: "1"\nspecs: []\ntargets: [zen4]\n'],
    ["a spec as a number", 'name: s\nversion: "1"\nspecs: [1]\ntargets: [zen4]\n'],
    ["targets as a map", 'name: s\nversion: "1"\nspecs: [zlib]\ntargets: { zen4: 1 }\n'],
    ["an unknown target", 'name: s\nversion: "1"\nspecs: [zlib]\ntargets: [zen7]\n'],
    ["a target in GCC's spelling", 'name: s\nversion: "1"\nspecs: [zlib]\ntargets: [znver4]\n'],
    ["a target in capitals", 'name: s\nversion: "1"\nspecs: [zlib]\ntargets: [ZEN4]\n'],
    ["a name as a list", 'name: [a]\nversion: "1"\nspecs: [zlib]\ntargets: [zen4]\n'],
    ["a name with ..", 'name: a..b\nversion: "1"\nspecs: [zlib]\ntargets: [zen4]\n'],
    ["a name with a slash", 'name: a/b\nversion: "1"\nspecs: [zlib]\ntargets: [zen4]\n'],
    ["a version starting with -", 'name: s\nversion: "-1"\nspecs: [zlib]\ntargets: [zen4]\n'],
    ["base_image as a number", `${ok}base_image: 42\n`],
    ["prefix as a number", `${ok}prefix: 42\n`],
    ["spack as a list", `${ok}spack: [a]\n`],
    ["packages as a list", `${ok}packages: [a]\n`],
    ["externals as a string", `${ok}externals: cmake\n`],
    ["an external that is no package name", `${ok}externals: [CMake]\n`],
    ["a compiler that is neither os nor a spec", `${ok}compiler: clang\n`],
    ["an OS compiler package that is no Debian name", `${ok}compiler: { os: { packages: ["gcc; rm -rf /"] } }\n`],
    ["a mirror name with a space", `${ok}spack: { mirrors: { "my mirror": /srv/m } }\n`],
    ["an environment variable name starting with a digit", `${ok}modules: { env: { 1X: a } }\n`],
    ["a module name with ..", `${ok}modules: { name: a..b }\n`],
    ["assets as a string", `${ok}assets: a.txt\n`],
  ];
  it.each(rejected)("rejects %s, as the loader does", (_, text) => {
    expect(loads(text)).toThrow();
    expect(schemaErrors("stack", text)).not.toEqual([]);
  });

  it("rejects the bad fixtures the schema can judge (unknown keys, wrong types, unknown targets)", async () => {
    for (const name of ["bad-targets", "bad-types", "bad-unknown-keys"]) {
      const text = await readFile(`tests/fixtures/stacks/${name}.yaml`, "utf8");
      expect(loads(text), name).toThrow();
      expect(schemaErrors("stack", text), name).not.toEqual([]);
    }
  });

  const factoryOk = [
    "engines:",
    "  - url: unix:///var/run/docker.sock",
    "    cache: /srv/stack-factory/cache",
    "    concurrency: 4",
    "  - url: tcp://build2.example:2376",
    "    tls: certs/build2",
    "  - url: ssh://builder@grace01.example",
    "    name: grace",
    "    identity: keys/builder",
    "    known_hosts: [known_hosts]",
    "    network: host",
    "buildcache: oci://registry.example:5000/hpc/buildcache",
    "credentials: registry.yaml",
    "",
  ].join("\n");

  it("the factory settings schema accepts the README's settings and rejects what the loader rejects", () => {
    expect(() => parseFactorySettings(factoryOk, "/f/factory.yaml")).not.toThrow();
    expect(schemaErrors("factory", factoryOk)).toEqual([]);
    for (const bad of [
      `${factoryOk}colour: blue\n`,
      "engines:\n  - url: unix:///var/run/docker.sock\n    cores: 4\n",
      "engines:\n  - cache: /srv/c\n",
      "engines:\n  - url: unix:///var/run/docker.sock\n    concurrency: 0\n",
      "engines:\n  - url: unix:///var/run/docker.sock\n    concurrency: two\n",
      "engines: []\n",
      "engines:\n  - url: unix:///var/run/docker.sock\n    name: 'a b'\n",
    ]) {
      expect(() => parseFactorySettings(bad, "/f/factory.yaml"), bad).toThrow();
      expect(schemaErrors("factory", bad), bad).not.toEqual([]);
    }
  });
});

describe("the stacks the integration suite builds", () => {
  it("are all checked against the shipped schema as they are written (writeTestStack), in every form used", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sf-schema-"));
    const forms: Parameters<typeof writeTestStack>[1][] = [
      {},
      { name: "bootstrap", specs: ["zlib"], compiler: "gcc@13.3.0" },
      { name: "trio", specs: ["hello"], targets: ["x86_64", "x86_64_v2", "x86_64_v3", "neoverse_v2"] },
      { name: "tiny", extra: 'prefix: /opt/tiny/1.0\nmodules: { env: { TINY_DATA: "${PREFIX}/data" } }' },
      { name: "nobuiltin", spack: `spack: { source: ${JSON.stringify(STANDIN)} }` },
      {
        name: "cloned",
        spack: `spack: { url: "file:///srv/spack", ref: v9.9.9, builtin: { source: ${JSON.stringify(SPACK_PACKAGES)} } }`,
      },
    ];
    for (const form of forms) {
      const file = await writeTestStack(dir, form);
      expect(() => parseStack(readFileSync(file, "utf8"), file), file).not.toThrow();
    }
    // And the helper refuses one the schema refuses, so a stack the schema would flag cannot slip into the suite.
    await expect(writeTestStack(dir, { name: "bad", extra: "colour: blue" })).rejects.toThrow(/refuses the test stack/);
  });
});

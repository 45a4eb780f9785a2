import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  buildcacheLocation,
  chooseEngines,
  engineChoice,
  loadFactorySettings,
  loadRegistryCredentials,
  parseFactorySettings,
} from "../../src/config/factory.js";
import { connectEngine, defaultEngineName, parseEndpoint } from "../../src/docker/engine.js";
import { ConfigError, InputError } from "../../src/errors.js";

function issuesOf(text: string, file = "/etc/sf/factory.yaml"): readonly string[] {
  try {
    parseFactorySettings(text, file);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).issues;
  }
  throw new Error("expected a ConfigError, nothing was thrown");
}

describe("engine endpoints", () => {
  it("takes unix, tcp and ssh URLs apart", () => {
    expect(parseEndpoint("unix:///var/run/docker.sock")).toEqual({ kind: "unix", socketPath: "/var/run/docker.sock" });
    expect(parseEndpoint("tcp://build2.example:2376")).toEqual({ kind: "tcp", host: "build2.example", port: 2376 });
    expect(parseEndpoint("ssh://builder@grace01")).toEqual({
      kind: "ssh",
      host: "grace01",
      port: 22,
      username: "builder",
    });
    expect(parseEndpoint("ssh://grace01:2222")).toEqual({
      kind: "ssh",
      host: "grace01",
      port: 2222,
      username: undefined,
    });
  });

  it("refuses what dockerode cannot reach, saying what is expected", () => {
    for (const [url, why] of [
      ["http://host:2375", /unsupported scheme http/],
      ["unix://relative.sock", /absolute path/],
      ["tcp://host", /needs a port/],
      ["ssh://u:secret@host", /no passwords/],
      ["tcp://host:2376/v1.41", /unexpected path/],
      ["nonsense", /not a URL/],
    ] as const) {
      expect(() => parseEndpoint(url)).toThrow(InputError);
      expect(() => parseEndpoint(url)).toThrow(why);
    }
    expect(() => parseEndpoint("tcp://host")).toThrow(
      /unix:\/\/\/path\/to\/docker.sock, tcp:\/\/host:port or ssh:\/\/user@host/,
    );
  });

  it("reads TLS material from the certificate directory and says which file is missing", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "sf-tls-"));
    try {
      const missing = await connectEngine({ endpoint: { url: "tcp://127.0.0.1:9", tlsDir: dir } }).catch(
        (e: unknown) => e,
      );
      expect(missing).toBeInstanceOf(InputError);
      expect((missing as Error).message).toMatch(/tcp:\/\/127\.0\.0\.1:9: cannot read .*sf-tls-[^/]+\/ca\.pem/);
      expect((missing as InputError).hint).toMatch(/ca\.pem, cert\.pem and key\.pem/);
      for (const f of ["ca.pem", "cert.pem", "key.pem"]) await writeFile(path.join(dir, f), "not a certificate\n");
      // With the files there, the TLS connection is attempted (and nothing listens on port 9).
      const refused = await connectEngine({
        endpoint: { url: "tcp://127.0.0.1:9", tlsDir: dir },
        timeoutMs: 2000,
      }).catch((e: unknown) => e);
      expect((refused as Error).message).toMatch(/tcp:\/\/127\.0\.0\.1:9/);
      const unixTls = await connectEngine({ endpoint: { url: "unix:///var/run/docker.sock", tlsDir: dir } }).catch(
        (e: unknown) => e,
      );
      expect((unixTls as Error).message).toMatch(/tls applies to tcp:\/\/ engines only/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("names engines after their socket or host", () => {
    expect(defaultEngineName("unix:///var/run/docker.sock")).toBe("local");
    expect(defaultEngineName("unix:///var/run/stack-factory-docker2.sock")).toBe("stack-factory-docker2");
    expect(defaultEngineName("tcp://build2:2376")).toBe("build2:2376");
    expect(defaultEngineName("ssh://builder@grace01")).toBe("grace01");
  });
});

describe("factory settings file", () => {
  it("reads engines, a buildcache and credentials, resolving relative paths against the file", () => {
    const settings = parseFactorySettings(
      [
        "engines:",
        "  - url: unix:///var/run/docker.sock",
        "    cache: /srv/sf/cache",
        "    concurrency: 3",
        "    network: host",
        "  - url: tcp://grace01:2376",
        "    name: grace",
        "    tls: certs/grace01",
        "    cache: /scratch/sf",
        "buildcache: oci://registry.example:5000/site/buildcache",
        "credentials: registry.yaml",
        "buildcache_ca: certs/registry-ca.pem",
        "",
      ].join("\n"),
      "/etc/sf/factory.yaml",
    );
    expect(settings).toEqual({
      file: "/etc/sf/factory.yaml",
      engines: [
        {
          name: "local",
          endpoint: { url: "unix:///var/run/docker.sock" },
          cacheRoot: "/srv/sf/cache",
          concurrency: 3,
          network: "host",
        },
        {
          name: "grace",
          endpoint: { url: "tcp://grace01:2376", tlsDir: "/etc/sf/certs/grace01" },
          cacheRoot: "/scratch/sf",
        },
      ],
      buildcache: {
        kind: "oci",
        url: "oci://registry.example:5000/site/buildcache",
        registry: "registry.example:5000",
        repository: "site/buildcache",
        plainHttp: false,
      },
      credentials: "/etc/sf/registry.yaml",
      buildcacheCa: "/etc/sf/certs/registry-ca.pem",
    });
  });

  it("refuses credentials over plain http (the password in clear; Spack cannot push with them) and a CA without an https registry", () => {
    const issues = issuesOf(
      [
        "buildcache: oci+http://127.0.0.1:5000/site/bc", // 1
        "credentials: r.yaml", // 2
        "buildcache_ca: ca.pem", // 3
        "",
      ].join("\n"),
    );
    expect(issues).toEqual([
      expect.stringMatching(
        /^\/etc\/sf\/factory\.yaml:2:1 credentials: credentials need an https registry \(oci:\/\/\): over oci\+http:\/\/ the password would cross the network in clear/,
      ),
      expect.stringMatching(
        /^\/etc\/sf\/factory\.yaml:3:1 buildcache_ca: buildcache_ca is the CA of an https registry/,
      ),
    ]);
    // Without credentials, a loopback registry over http stays allowed.
    expect(parseFactorySettings("buildcache: oci+http://127.0.0.1:5000/site/bc\n", "f.yaml").buildcache).toMatchObject({
      plainHttp: true,
    });
  });

  it("without engines, the local engine as without settings (DOCKER_HOST or the local socket)", () => {
    const settings = parseFactorySettings("buildcache: /shared/sf/buildcache\n", "f.yaml");
    expect(settings.engines).toEqual([]);
    expect(chooseEngines(settings, [])).toEqual([{ name: "local" }]);
    expect(settings.buildcache).toEqual({ kind: "path", path: "/shared/sf/buildcache" });
  });

  it("lists every problem with file:line:col and the dotted path, in file order", () => {
    const issues = issuesOf(
      [
        "engines:",
        "  - url: http://nope:80", // 2
        "    concurrency: 0", // 3
        "  - url: tcp://b:2376",
        "    cache: relative/cache", // 5
        "    colour: blue", // 6
        "buildcache: s3://bucket/x", // 7
        "",
      ].join("\n"),
    );
    expect(issues).toEqual([
      expect.stringMatching(/^\/etc\/sf\/factory\.yaml:2:10 engines\[0\]\.url: not an engine URL: "http:\/\/nope:80"/),
      expect.stringMatching(/^\/etc\/sf\/factory\.yaml:3:18 engines\[0\]\.concurrency: a positive integer/),
      expect.stringMatching(
        /^\/etc\/sf\/factory\.yaml:5:12 engines\[1\]\.cache: the cache root on the engine's host must be an absolute path/,
      ),
      expect.stringMatching(/^\/etc\/sf\/factory\.yaml:6:5 engines\[1\]\.colour: /),
      expect.stringMatching(/^\/etc\/sf\/factory\.yaml:7:13 buildcache: oci:\/\/host\[:port\]\/repository/),
    ]);
  });

  it("ssh engines take an identity file and known_hosts files, relative to the settings file; others refuse them", () => {
    const settings = parseFactorySettings(
      [
        "engines:",
        "  - { url: ssh://b@grace01, identity: keys/b, known_hosts: [kh, /etc/ssh/ssh_known_hosts] }",
        "  - { url: ssh://b@grace02, known_hosts: kh }",
        "",
      ].join("\n"),
      "/etc/sf/factory.yaml",
    );
    expect(settings.engines.map((e) => e.endpoint)).toEqual([
      {
        url: "ssh://b@grace01",
        identityFile: "/etc/sf/keys/b",
        knownHostsFiles: ["/etc/sf/kh", "/etc/ssh/ssh_known_hosts"],
      },
      { url: "ssh://b@grace02", knownHostsFiles: ["/etc/sf/kh"] },
    ]);
    const issues = issuesOf(
      [
        "engines:",
        "  - url: tcp://b:2376",
        "    identity: k",
        "    known_hosts: kh",
        "    insecure_plain_tcp: true",
        "",
      ].join("\n"),
    );
    expect(issues).toEqual([
      expect.stringMatching(
        /^\/etc\/sf\/factory\.yaml:3:5 engines\[0\]\.identity: identity applies to ssh:\/\/ engines only/,
      ),
      expect.stringMatching(/^\/etc\/sf\/factory\.yaml:4:5 engines\[0\]\.known_hosts: known_hosts applies to ssh/),
    ]);
  });

  it("refuses a cache root the engine would take apart as a mount (':' or ',') or that climbs with '..'", () => {
    for (const cache of ["/srv/a:b", "/srv/a,b", "/srv/../etc", "/srv/a b"]) {
      const issues = issuesOf(
        ["engines:", "  - url: tcp://b:2376", `    cache: ${JSON.stringify(cache)}`, ""].join("\n"),
      );
      expect(issues).toEqual([
        expect.stringMatching(/^\/etc\/sf\/factory\.yaml:3:12 engines\[0\]\.cache: a cache root of letters, digits/),
      ]);
    }
  });

  it("refuses two engines of one name, tls on a non-tcp engine, credentials without a registry", () => {
    const issues = issuesOf(
      [
        "engines:",
        "  - url: unix:///run/a.sock",
        "  - url: unix:///srv/a.sock", // 3: same default name "a"
        "    tls: certs", // 4
        "credentials: r.yaml", // 5
        "",
      ].join("\n"),
    );
    expect(issues).toEqual([
      expect.stringMatching(/:3:10 engines\[1\]\.url: engine name "a" is taken by engines\[0\]/),
      expect.stringMatching(/:4:5 engines\[1\]\.tls: tls applies to tcp:\/\/ engines only/),
      expect.stringMatching(/:5:1 credentials: credentials are for an oci:\/\/ buildcache/),
    ]);
  });

  it("says so when the file is missing, empty or not a map", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "sf-factory-"));
    try {
      await expect(loadFactorySettings(path.join(dir, "none.yaml"))).rejects.toThrow(
        /cannot read factory settings file .*none\.yaml: no such file/,
      );
      await writeFile(path.join(dir, "empty.yaml"), "");
      await expect(loadFactorySettings(path.join(dir, "empty.yaml"))).rejects.toThrow(
        /empty\.yaml:1:1: the factory settings file is empty/,
      );
      await writeFile(path.join(dir, "list.yaml"), "- a\n");
      await expect(loadFactorySettings(path.join(dir, "list.yaml"))).rejects.toThrow(/must be a map/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("buildcache locations", () => {
  it("tells a registry from a shared path", () => {
    expect(buildcacheLocation("oci+http://127.0.0.1:5000/sf/bc")).toEqual({
      kind: "oci",
      url: "oci+http://127.0.0.1:5000/sf/bc",
      registry: "127.0.0.1:5000",
      repository: "sf/bc",
      plainHttp: true,
    });
    expect(buildcacheLocation("/nfs/sf//bc/")).toEqual({ kind: "path", path: "/nfs/sf/bc/" });
  });
});

describe("choosing engines", () => {
  it("--engine flags win over the settings file; names are made unique", () => {
    const settings = parseFactorySettings("engines:\n  - url: tcp://a:2376\n    insecure_plain_tcp: true\n", "f.yaml");
    expect(chooseEngines(settings, ["unix:///run/x.sock", "unix:///srv/x.sock"])).toEqual([
      { name: "x", endpoint: { url: "unix:///run/x.sock" } },
      { name: "x-2", endpoint: { url: "unix:///srv/x.sock" } },
    ]);
    expect(chooseEngines(settings, []).map((e) => e.name)).toEqual(["a:2376"]);
  });

  it("with neither, the local engine exactly as today (no endpoint: DOCKER_HOST or the local socket)", () => {
    expect(chooseEngines(undefined, [])).toEqual([{ name: "local" }]);
  });

  it("refuses a bad --engine URL", () => {
    expect(() => chooseEngines(undefined, ["http://x:1"])).toThrow(/unsupported scheme http/);
  });

  it("one choice for build, clean and doctor: given only with a flag or a settings file (one without engines too)", () => {
    expect(engineChoice(undefined, [])).toEqual({ engines: [{ name: "local" }], given: false });
    expect(engineChoice(undefined, ["unix:///run/x.sock"])).toEqual({
      engines: [{ name: "x", endpoint: { url: "unix:///run/x.sock" } }],
      given: true,
    });
    const cacheOnly = parseFactorySettings("buildcache: /srv/bc\n", "f.yaml");
    expect(engineChoice(cacheOnly, [])).toEqual({ engines: [{ name: "local" }], given: true });
  });
});

describe("registry credentials file", () => {
  it("reads username and password from a private file; refuses one others can read; never quotes a value", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "sf-creds-"));
    try {
      const file = path.join(dir, "registry.yaml");
      await writeFile(file, "username: builder\npassword: 'hunter2: yes'\n", { mode: 0o600 });
      expect(await loadRegistryCredentials(file)).toEqual({ username: "builder", password: "hunter2: yes" });

      await chmod(file, 0o644);
      await expect(loadRegistryCredentials(file)).rejects.toThrow(/registry\.yaml is readable by others \(mode 644\)/);

      await writeFile(file, "username: builder\npasswd: topsecret\n", { mode: 0o600 });
      await chmod(file, 0o600);
      const error = (await loadRegistryCredentials(file).catch((e: unknown) => e)) as ConfigError;
      expect(error).toBeInstanceOf(ConfigError);
      expect(error.message).not.toContain("topsecret");
      expect(error.issues.join("\n")).toMatch(/registry\.yaml:2:1 passwd: /);

      await writeFile(file, "username: builder\npassword: [unclosed topsecret\n");
      const bad = (await loadRegistryCredentials(file).catch((e: unknown) => e)) as ConfigError;
      expect(bad).toBeInstanceOf(ConfigError);
      expect(bad.message).not.toContain("topsecret");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/**
 * Factory settings, the files they name, engine URLs and the stack file's reach, written to hurt: every refusal is
 * bad input (exit 2) naming the file and the field, none quotes a secret, none blocks on a FIFO or spins.
 */
import { execFileSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cacheRootProblem } from "../../src/config/cache-root.js";
import { parseRegistryCredentials } from "../../src/config/credentials.js";
import {
  chooseEngines,
  loadFactorySettings,
  loadRegistryCredentials,
  parseFactorySettings,
} from "../../src/config/factory.js";
import { loadStack } from "../../src/config/index.js";
import { cleanReport } from "../../src/cli/commands/clean.js";
import { connectEngine, endpointFromEnvironment, parseEndpoint } from "../../src/docker/engine.js";
import { checkHostKey, globMatches } from "../../src/docker/known-hosts.js";
import { ConfigError, DockerError, type FactoryError, InputError } from "../../src/errors.js";
import { readUserFile } from "../../src/fs/user-file.js";
import { loadSigningKey } from "../../src/sign/key.js";

const PW = "S3cr3t-Pw-7781";
let work: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "sf-hostile-settings-"));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function caught(run: () => Promise<unknown> | unknown): Promise<Error> {
  try {
    await run();
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected an error, nothing was thrown");
}

function issuesOf(text: string, file = "/etc/sf/factory.yaml"): readonly string[] {
  try {
    parseFactorySettings(text, file);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).issues;
  }
  throw new Error("expected a ConfigError, nothing was thrown");
}

describe("secrets in messages", () => {
  it.each([`tcp://u:${PW}@build2:2376`, `ssh://u:${PW}@grace01`])(
    "an engine URL with a password is refused without printing it: %s",
    async (url) => {
      const flag = await caught(() => chooseEngines(undefined, [url]));
      expect(flag).toBeInstanceOf(InputError);
      expect(flag.message).toMatch(/no passwords in engine URLs/);
      expect(flag.message).not.toContain(PW);
      const issues = issuesOf(`engines:\n  - url: "${url}"\n`);
      expect(issues.join("\n")).toMatch(/^\/etc\/sf\/factory\.yaml:2:\d+ engines\[0\]\.url: /);
      expect(issues.join("\n")).not.toContain(PW);
    },
  );

  it.each([
    ["a bare password line", `${PW}\n`],
    [
      "a private key",
      `-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA${PW}\n-----END OPENSSH PRIVATE KEY-----\n`,
    ],
    ["a list", `- ${PW}\n`],
    ["broken YAML", `username: a\npassword: [${PW}\n`],
    ["a secret pasted as a key", `username: a\npassword: b\n"${PW} x": 1\n`],
  ])("a credentials file that is %s is refused with the line, never its content", (_, text) => {
    const error = (() => {
      try {
        parseRegistryCredentials(text, "/etc/sf/registry.yaml");
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error("expected a ConfigError");
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.issues[0]).toMatch(/^\/etc\/sf\/registry\.yaml:\d+:\d+/);
    expect(error.message).not.toContain(PW);
  });

  it("an alias bomb in the credentials file is bad input at its place, not an internal error", () => {
    const levels = ["a: &a [x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < 8; i++)
      levels.push(
        `${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${`*${String.fromCharCode(96 + i)}, `.repeat(8)}*${String.fromCharCode(96 + i)}]`,
      );
    const error = (() => {
      try {
        parseRegistryCredentials(`${levels.join("\n")}\nusername: u\npassword: p\n`, "r.yaml");
      } catch (e) {
        return e as Error;
      }
      throw new Error("expected a ConfigError");
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toMatch(/r\.yaml:\d+:\d+ .*alias bomb/);
  });

  it("an engine URL holding a newline or a tab is refused before parsing, and shown on one line", () => {
    for (const url of ["tcp://build2:2376\n", "ssh://b@gra\nce01", "tcp://build2:23\t76"]) {
      const error = (() => {
        try {
          parseEndpoint(url);
        } catch (e) {
          return e as Error;
        }
        throw new Error(`expected ${JSON.stringify(url)} to be refused`);
      })();
      expect(error).toBeInstanceOf(InputError);
      expect(error.message).toMatch(/contains U\+000[9A]/);
      expect(error.message).not.toMatch(/[\n\t]/);
    }
    expect(issuesOf('engines:\n  - url: "tcp://127.0.0.1:2375\\n"\n')).toEqual([
      expect.stringMatching(/factory\.yaml:2:\d+ engines\[0\]\.url: not an engine URL/),
    ]);
  });

  it("clean keeps an engine's own advice (chmod 600) rather than a generic one", () => {
    const { err } = cleanReport([
      {
        name: "grace",
        where: "ssh://b@grace01",
        reason: "the identity file /k is readable by others",
        answered: false,
        hint: "chmod 600 /k",
      },
    ]);
    expect(err).toBe("stack-factory: engine grace: the identity file /k is readable by others\nhint: chmod 600 /k\n");
  });
});

describe("files the settings and flags name: the kind check, the size cap", () => {
  it("a FIFO, a directory and a device are refused at once, not read", async () => {
    const fifo = path.join(work, "fifo");
    execFileSync("mkfifo", [fifo]);
    for (const [file, kind] of [
      [fifo, "a FIFO"],
      [work, "a directory"],
      ["/dev/zero", "a character device"],
    ] as const) {
      const error = await caught(() => readUserFile(file, { what: "the registry credentials file" }));
      expect(error).toBeInstanceOf(InputError);
      expect(error.message).toBe(`the registry credentials file ${file} is ${kind}, not a regular file`);
    }
    // Through the loaders that read them: the settings file, credentials, known_hosts, --sign-key.
    expect((await caught(() => loadFactorySettings(fifo))).message).toMatch(/is a FIFO, not a regular file/);
    expect((await caught(() => loadRegistryCredentials(fifo))).message).toMatch(/is a FIFO, not a regular file/);
    expect((await caught(() => loadSigningKey({ signKey: fifo }))).message).toMatch(/is a FIFO, not a regular file/);
    const knownHosts = await caught(() =>
      connectEngine({ endpoint: { url: "ssh://b@127.0.0.1:9", knownHostsFiles: [fifo] }, timeoutMs: 500 }),
    );
    expect(knownHosts).toBeInstanceOf(InputError);
    expect(knownHosts.message).toMatch(/known_hosts file .*fifo is a FIFO/);
  });

  it("50 MB of noise as --sign-key is bad input, refused by its size", async () => {
    const noise = path.join(work, "noise.asc");
    await writeFile(noise, Buffer.alloc(50 * 1024 * 1024, 0x41), { mode: 0o600 });
    const error = await caught(() => loadSigningKey({ signKey: noise }));
    expect(error).toBeInstanceOf(InputError);
    expect(error.message).toMatch(/--sign-key .*noise\.asc is 52428800 bytes; expected at most 1048576/);
  });

  it("a TLS directory given as DOCKER_CERT_PATH goes through the same checks", async () => {
    const certs = path.join(work, "docker-certs");
    await mkdir(certs, { recursive: true });
    const endpoint = endpointFromEnvironment({
      DOCKER_HOST: "tcp://127.0.0.1:9",
      DOCKER_TLS_VERIFY: "1",
      DOCKER_CERT_PATH: certs,
    });
    expect(endpoint).toEqual({ url: "tcp://127.0.0.1:9", tlsDir: certs });
    expect(endpointFromEnvironment({ DOCKER_HOST: "ssh://b@grace01" })).toEqual({ url: "ssh://b@grace01" });
    expect(endpointFromEnvironment({})).toBeUndefined();
    expect((await caught(() => endpointFromEnvironment({ DOCKER_HOST: "tcp://x:1\n" }))).message).toMatch(
      /^DOCKER_HOST: engine "tcp:\/\/x:1\\n": contains U\+000A/,
    );
  });
});

describe("one rule for every key file", () => {
  let keyPem: string;
  beforeAll(async () => {
    keyPem = execFileSync("openssl", ["genpkey", "-algorithm", "ed25519"]).toString();
  });

  it("the TLS key.pem, the ssh identity, the credentials file and --sign-key are refused at mode 0644", async () => {
    const tls = path.join(work, "tls");
    await mkdir(tls, { recursive: true });
    await writeFile(path.join(tls, "ca.pem"), "x");
    await writeFile(path.join(tls, "cert.pem"), "x");
    await writeFile(path.join(tls, "key.pem"), keyPem, { mode: 0o644 });
    await chmod(path.join(tls, "key.pem"), 0o644);
    const tlsError = await caught(() => connectEngine({ endpoint: { url: "tcp://127.0.0.1:9", tlsDir: tls } }));
    expect(tlsError).toBeInstanceOf(InputError);
    expect(tlsError.message).toMatch(/key\.pem is readable by others \(mode 644\)/);
    expect((tlsError as InputError).hint).toBe(`chmod 600 ${path.join(tls, "key.pem")}`);

    const identity = path.join(work, "id_open");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", identity]);
    await chmod(identity, 0o644);
    const idError = await caught(() =>
      connectEngine({ endpoint: { url: "ssh://b@127.0.0.1:9", identityFile: identity, knownHostsFiles: [] } }),
    );
    expect(idError).toBeInstanceOf(InputError);
    expect(idError.message).toMatch(/identity file .*id_open is readable by others \(mode 644\)/);

    const creds = path.join(work, "registry.yaml");
    await writeFile(creds, `username: u\npassword: ${PW}\n`, { mode: 0o644 });
    await chmod(creds, 0o644);
    expect((await caught(() => loadRegistryCredentials(creds))).message).toMatch(/readable by others \(mode 644\)/);

    const signKey = path.join(work, "secret.asc");
    await writeFile(signKey, "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nxyz\n-----END PGP PRIVATE KEY BLOCK-----\n", {
      mode: 0o644,
    });
    await chmod(signKey, 0o644);
    const signError = await caught(() => loadSigningKey({ signKey }));
    expect(signError).toBeInstanceOf(InputError);
    expect(signError.message).toMatch(/--sign-key .*secret\.asc is readable by others \(mode 644\)/);
  });

  it.each([
    [0o644, "readable"],
    [0o640, "readable"],
    [0o620, "accessible"],
  ])(
    "--sign-passphrase-file is refused at mode %s, naming the flag and the mode, before gpg sees the key",
    async (mode, who) => {
      const signKey = path.join(work, `secret-${mode.toString(8)}.asc`);
      await writeFile(signKey, "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nxyz\n-----END PGP PRIVATE KEY BLOCK-----\n", {
        mode: 0o600,
      });
      await chmod(signKey, 0o600);
      const passphraseFile = path.join(work, `pass-${mode.toString(8)}.txt`);
      await writeFile(passphraseFile, `${PW}\n`, { mode });
      await chmod(passphraseFile, mode);
      const error = await caught(() => loadSigningKey({ signKey, signPassphraseFile: passphraseFile }));
      expect(error).toBeInstanceOf(InputError);
      expect((error as FactoryError).exitCode).toBe(2);
      expect(error.message).toBe(
        `--sign-passphrase-file ${passphraseFile} is ${who} by others (mode ${mode.toString(8)}); a private key or password file must be 0600 or 0400`,
      );
      expect((error as InputError).hint).toBe(`chmod 600 ${passphraseFile}`);
      expect(error.message).not.toContain(PW);
    },
  );

  it("a key.pem that is not a private key, and garbage after an armor header as --sign-key, are bad input", async () => {
    const tls = path.join(work, "tls-garbage");
    await mkdir(tls, { recursive: true });
    for (const f of ["ca.pem", "cert.pem"]) await writeFile(path.join(tls, f), "x");
    await writeFile(path.join(tls, "key.pem"), "-----BEGIN PRIVATE KEY-----\nnot base64 at all\n", { mode: 0o600 });
    const tlsError = await caught(() => connectEngine({ endpoint: { url: "tcp://127.0.0.1:9", tlsDir: tls } }));
    expect(tlsError).toBeInstanceOf(InputError);
    expect(tlsError.message).toMatch(/key\.pem is not a PEM private key/);

    const signKey = path.join(work, "garbage.asc");
    await writeFile(signKey, "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n!!!! garbage !!!!\n", { mode: 0o600 });
    const signError = await caught(() => loadSigningKey({ signKey }));
    expect(signError).toBeInstanceOf(InputError);
    expect((signError as FactoryError).exitCode).toBe(2);
    expect(signError.message).toMatch(/gpg cannot import it/);
  });

  it("a public key, or an encrypted key, given as the ssh identity is refused before connecting", async () => {
    const plain = path.join(work, "id_plain");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", plain]);
    await chmod(`${plain}.pub`, 0o600);
    const pub = await caught(() =>
      connectEngine({ endpoint: { url: "ssh://b@127.0.0.1:9", identityFile: `${plain}.pub`, knownHostsFiles: [] } }),
    );
    expect(pub).toBeInstanceOf(InputError);
    expect(pub.message).toMatch(/id_plain\.pub (holds a public key|is not an ssh private key)/);

    const locked = path.join(work, "id_locked");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "a passphrase", "-f", locked]);
    const enc = await caught(() =>
      connectEngine({ endpoint: { url: "ssh://b@127.0.0.1:9", identityFile: locked, knownHostsFiles: [] } }),
    );
    expect(enc).toBeInstanceOf(InputError);
    expect(enc.message).toMatch(/id_locked is encrypted/);
    expect((enc as InputError).hint).toMatch(/ssh-add/);
  });
});

describe("plain tcp:// and cache roots", () => {
  it("refuses tcp:// without TLS to another host unless the settings say so; loopback is allowed", async () => {
    expect(issuesOf("engines:\n  - url: tcp://build2:2375\n")).toEqual([
      expect.stringMatching(
        /factory\.yaml:2:\d+ engines\[0\]\.url: tcp:\/\/build2 without TLS: .*gives root on that host/,
      ),
    ]);
    const allowed = parseFactorySettings(
      "engines:\n  - url: tcp://build2:2375\n    insecure_plain_tcp: true\n",
      "/f.yaml",
    );
    expect(allowed.engines[0]?.endpoint).toEqual({ url: "tcp://build2:2375", insecurePlainTcp: true });
    expect(parseFactorySettings("engines:\n  - url: tcp://127.0.0.1:2375\n", "/f.yaml").engines).toHaveLength(1);
    expect((await caught(() => chooseEngines(undefined, ["tcp://build2:2375"]))).message).toMatch(/without TLS/);
    const direct = await caught(() => connectEngine({ endpoint: { url: "tcp://192.0.2.1:2375" } }));
    expect(direct).toBeInstanceOf(InputError);
    expect(direct.message).toMatch(/without TLS/);
  });

  it("an engine cache root under /proc, /sys or /dev is refused like --cache-dir", () => {
    expect(issuesOf("engines:\n  - url: unix:///var/run/docker.sock\n    cache: /proc/self/x\n")).toEqual([
      expect.stringMatching(
        /factory\.yaml:3:12 engines\[0\]\.cache: a cache root under \/proc is on a file system of the kernel's/,
      ),
    ]);
    expect(cacheRootProblem("/sys")).toMatch(/under \/sys/);
    expect(cacheRootProblem("/srv/proc")).toBeUndefined();
  });
});

describe("known_hosts patterns", () => {
  it("matches globs as ssh does, and a pattern of many * without backtracking", () => {
    expect(globMatches("*.example", "a.b.example")).toBe(true);
    expect(globMatches("gr?ce*", "GRACE01")).toBe(true);
    expect(globMatches("*a*b", "xxab")).toBe(true);
    expect(globMatches("a*b", "ab-")).toBe(false);
    const name = `${"a".repeat(60)}b`;
    // A backtracking matcher needs minutes for this (the test would time out).
    expect(globMatches(`${"*a".repeat(40)}*c`, name)).toBe(false);
    expect(checkHostKey({ kh: `${"*a".repeat(40)}*c ssh-ed25519 AAAA\n` }, name, 22, Buffer.from("x"))).toEqual({
      kind: "unknown",
    });
  });
});

describe("ssh errors end the attempt with a message", () => {
  let server: Server;
  let port: number;
  const accepted: Socket[] = [];
  beforeAll(async () => {
    server = createServer((socket) => {
      accepted.push(socket);
      socket.on("error", () => {});
      socket.end("HTTP/1.1 400 garbage, not ssh\r\n\r\n\0\0\0\0garbage\n");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as { port: number }).port;
  });
  afterAll(async () => {
    for (const socket of accepted) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it("a server that answers garbage is a DockerError with the reason, no unhandled 'error' event", async () => {
    const identity = path.join(work, "id_for_garbage");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", identity]);
    const error = await caught(() =>
      connectEngine({
        endpoint: { url: `ssh://b@127.0.0.1:${port}`, identityFile: identity, knownHostsFiles: [] },
        timeoutMs: 3000,
      }),
    );
    expect(error).toBeInstanceOf(DockerError);
    expect(error.message).toMatch(new RegExp(`no Docker engine answers at ssh://b@127\\.0\\.0\\.1:${port}: `));
  });
});

describe("stack values and what a stack file may reach", () => {
  const REQUIRED = 'name: s\nversion: "1"\nspecs: [zlib]\ntargets: [x86_64_v3]\n';

  it("refuses a stack file that is not UTF-8, naming the line", async () => {
    const file = path.join(work, "latin1.yaml");
    await writeFile(
      file,
      Buffer.concat([
        Buffer.from(`${REQUIRED}modules:\n  env:\n    WHO: "Andr`),
        Buffer.from([0xe9]),
        Buffer.from('"\n'),
      ]),
    );
    const error = await caught(() => loadStack(file));
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues).toEqual([
      `${file}:7:15: the byte 0xE9 is not UTF-8 (a Latin-1 file?); save the file as UTF-8`,
    ]);
  });

  it("refuses a __proto__ key under modules.env by name", async () => {
    const file = path.join(work, "proto.yaml");
    await writeFile(file, `${REQUIRED}modules:\n  env:\n    __proto__: x\n    A: b\n`);
    const error = await caught(() => loadStack(file));
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues).toEqual([
      `${file}:7:5 modules.env: the key "__proto__" is not allowed (no field or variable may have that name)`,
    ]);
  });

  it("refuses assets outside the stack file's directory: absolute, ../, or through a symlinked directory", async () => {
    const dir = path.join(work, "stack-dir");
    await mkdir(path.join(dir, "ok"), { recursive: true });
    await writeFile(path.join(dir, "ok", "site.conf"), "x\n");
    await writeFile(path.join(work, "outside.conf"), "secret\n");
    await writeFile(path.join(work, "other.conf"), "secret\n");
    await symlink(work, path.join(dir, "up"));
    const file = path.join(dir, "stack.yaml");
    await writeFile(file, `${REQUIRED}assets: [ok/site.conf, /etc/hostname, ../outside.conf, up/other.conf]\n`);
    const error = await caught(() => loadStack(file));
    expect(error).toBeInstanceOf(ConfigError);
    const issues = (error as ConfigError).issues;
    expect(issues).toHaveLength(3);
    expect(issues[0]).toMatch(
      /stack\.yaml:5:24 assets\[1\]: asset \/etc\/hostname is outside the stack file's directory/,
    );
    expect(issues[1]).toMatch(/assets\[2\]: asset .*outside\.conf is outside the stack file's directory/);
    expect(issues[2]).toMatch(/assets\[3\]: asset .*up\/other\.conf is outside the stack file's directory/);
  });

  it("never lets a file the settings keep secret become part of a build", async () => {
    const dir = path.join(work, "secret-dir");
    await mkdir(path.join(dir, "mirror"), { recursive: true });
    const creds = path.join(dir, "mirror", "registry.yaml");
    await writeFile(creds, `username: u\npassword: ${PW}\n`, { mode: 0o600 });
    await writeFile(path.join(dir, "settings.yaml"), "x: 1\n");
    const file = path.join(dir, "stack.yaml");
    await writeFile(file, `${REQUIRED}spack:\n  mirrors:\n    m: mirror\nassets: [mirror/registry.yaml]\n`);
    const error = await caught(() => loadStack(file, { secrets: [creds] }));
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues).toEqual([
      expect.stringMatching(
        /spack\.mirrors\.m: mirror .*secret-dir\/mirror contains .*registry\.yaml, which the factory keeps secret/,
      ),
      expect.stringMatching(/assets\[0\]: asset .*registry\.yaml is .*registry\.yaml, which the factory keeps secret/),
    ]);
    expect(error.message).not.toContain(PW);
    // Without the settings naming it, the same stack loads.
    await expect(loadStack(file)).resolves.toMatchObject({ assets: [creds] });
  });
});

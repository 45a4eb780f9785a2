import { chmod, mkdir, mkdtemp, readdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { initKeys } from "../../src/sign/keys-init.js";
import { firstLine, loadSigningKey } from "../../src/sign/key.js";
import { signFile } from "../../src/sign/sign-file.js";
import { dearmor, verdictOf, verifyDetached } from "../../src/sign/verify-signature.js";

let work: string;
let site: Awaited<ReturnType<typeof initKeys>>;
let other: Awaited<ReturnType<typeof initKeys>>;
let guarded: Awaited<ReturnType<typeof initKeys>>;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "sf-sign-"));
  site = await initKeys(join(work, "site"), { userId: "Site Builds <builds@example.org>" });
  other = await initKeys(join(work, "other"), { userId: "Someone Else <else@example.org>", algorithm: "ed25519" });
  await writeFile(join(work, "pass"), "correct horse\n", { mode: 0o600 });
  guarded = await initKeys(join(work, "guarded"), {
    userId: "Guarded <g@example.org>",
    algorithm: "ed25519",
    passphraseFile: join(work, "pass"),
  });
}, 60_000);

describe("keys init", () => {
  it("writes a secret key (0600), the public key armored and binary, and the fingerprint", async () => {
    expect(site.fingerprint).toMatch(/^[0-9A-F]{40}$/);
    expect(await readFile(site.files.secret, "utf8")).toContain("BEGIN PGP PRIVATE KEY BLOCK");
    expect(await readFile(site.files.public, "utf8")).toContain("BEGIN PGP PUBLIC KEY BLOCK");
    expect((await readFile(site.files.fingerprint, "utf8")).trim()).toBe(site.fingerprint);
    const { mode } = await import("node:fs/promises").then((fs) => fs.stat(site.files.secret));
    expect(mode & 0o777).toBe(0o600);
    expect(dearmor(await readFile(site.files.public))).toEqual(await readFile(site.files.publicBinary));
  });

  it("never overwrites a key pair", async () => {
    await expect(initKeys(join(work, "site"), { userId: "Again <a@example.org>" })).rejects.toThrow(/exists already/);
  });

  it("writes nothing through a dangling symlink, in the directory or as the directory", async () => {
    for (const name of ["public.asc", "secret.asc", "verify-tarball.sh"]) {
      const dir = join(work, `dangling-${name}`);
      const elsewhere = join(work, `elsewhere-${name}`);
      await mkdir(dir);
      await mkdir(elsewhere);
      await symlink(join(elsewhere, "planted"), join(dir, name));
      await expect(initKeys(dir, { userId: "Dangling <d@example.org>" })).rejects.toThrow(
        new RegExp(`${name.replace(".", "\\.")} is a symlink; a key pair is never written over anything`),
      );
      expect(await readdir(elsewhere)).toEqual([]);
      expect(await readdir(dir)).toEqual([name]);
    }
    const link = join(work, "dangling-dir");
    await symlink(join(work, "no-such-dir"), link);
    await expect(initKeys(link, { userId: "Dangling <d@example.org>" })).rejects.toThrow(/a symlink to nothing/);
    await expect(stat(join(work, "no-such-dir"))).rejects.toThrow(/ENOENT/);
  });
});

describe("the site's verifier (verify-tarball.sh beside the public key)", () => {
  let file: string;
  const verifier = (...args: string[]) => execa("bash", [site.files.verifier, ...args], { reject: false, all: true });

  beforeAll(async () => {
    file = join(work, "release-1.0-x86_64_v3.tar.gz");
    await writeFile(file, Buffer.from("a tarball's bytes\n".repeat(500)));
    await signFile((await loadSigningKey({ signKey: site.files.secret }))!, file);
  });

  it("is written executable, pinned to the key's fingerprint", async () => {
    expect((await stat(site.files.verifier)).mode & 0o777).toBe(0o755);
    const text = await readFile(site.files.verifier, "utf8");
    expect(text).toContain(`\nSITE_FINGERPRINT=${site.fingerprint}\n`);
    expect(text).not.toContain("@FINGERPRINT@");
  });

  it("accepts a tarball signed by the site's key, with public.gpg beside it or --keyring public.asc, under bash or sh", async () => {
    const good = await verifier(file);
    expect(good.exitCode, good.all).toBe(0);
    expect(good.stdout).toBe(`verify-tarball.sh: good signature by ${site.fingerprint} on ${basename(file)}`);
    expect((await verifier("--keyring", site.files.public, file)).exitCode).toBe(0);
    // Plain POSIX syntax: dash runs it too (no bash-only construct, so no bash version matters).
    const dash = await execa("dash", [site.files.verifier, file], { reject: false, all: true });
    expect(dash.exitCode, dash.all).toBe(0);
  });

  it("refuses an altered byte, a missing .asc, another key's signature and a secret key, exit 1", async () => {
    const altered = join(work, "altered.tar.gz");
    const bytes = await readFile(file);
    bytes[100] = (bytes[100] as number) ^ 1;
    await writeFile(altered, bytes);
    await writeFile(`${altered}.asc`, await readFile(`${file}.asc`));
    const bad = await verifier(altered);
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toMatch(/REFUSED altered\.tar\.gz: BAD signature/);

    const unsigned = join(work, "unsigned.tar.gz");
    await writeFile(unsigned, "x");
    const missing = await verifier(unsigned);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toMatch(/REFUSED unsigned\.tar\.gz: no signature .*unsigned\.tar\.gz\.asc/);

    const byOther = join(work, "by-other.tar.gz");
    await writeFile(byOther, await readFile(file));
    await signFile((await loadSigningKey({ signKey: other.files.secret }))!, byOther);
    const foreign = await verifier(byOther);
    expect(foreign.exitCode).toBe(1);
    expect(foreign.stderr).toMatch(/REFUSED by-other\.tar\.gz: signed by key \w+, which is not the site's key/);
    // Another keyring given by hand does not move the pin: the signer must be the site's key.
    const pinned = await verifier("--keyring", other.files.public, byOther);
    expect(pinned.exitCode).toBe(1);
    expect(pinned.stderr).toContain(`signed by ${other.fingerprint}, not by the site's key ${site.fingerprint}`);
    const secret = await verifier("--keyring", site.files.secret, file);
    expect(secret.exitCode).toBe(1);
    expect(secret.stderr).toMatch(/holds a secret key/);
    // One refused tarball among good ones fails the whole check.
    expect((await verifier(file, altered)).exitCode).toBe(1);
    expect((await verifier()).exitCode).toBe(2);
  });

  it("says so when the node has neither gpgv nor gpg", async () => {
    const bin = join(work, "bin-without-gpg");
    await mkdir(bin);
    for (const tool of [
      "dirname",
      "basename",
      "mktemp",
      "rm",
      "mkdir",
      "grep",
      "sed",
      "cut",
      "tr",
      "base64",
      "cp",
      "tail",
    ]) {
      await symlink((await execa("bash", ["-c", `command -v ${tool}`])).stdout, join(bin, tool));
    }
    const run = await execa("/bin/bash", [site.files.verifier, file], { reject: false, all: true, env: { PATH: bin } });
    expect(run.exitCode).toBe(1);
    expect(run.stderr).toMatch(/needs gpgv or gpg, and neither is on PATH/);
  });
});

describe("signing keys from files", () => {
  it("reads the fingerprint and public part; refuses a public key given as --sign-key", async () => {
    const key = await loadSigningKey({ signKey: site.files.secret });
    expect(key?.fingerprint).toBe(site.fingerprint);
    expect(key?.publicKey).toContain("BEGIN PGP PUBLIC KEY BLOCK");
    await expect(loadSigningKey({ signKey: site.files.public })).rejects.toThrow(/not an armored OpenPGP secret key/);
    await expect(loadSigningKey({ signKey: site.files.secret, signKeyId: "x" })).rejects.toThrow(/give one of them/);
  });

  it("checks the passphrase before any build", async () => {
    await expect(loadSigningKey({ signKey: guarded.files.secret })).rejects.toThrow(/may need a passphrase/);
    await writeFile(join(work, "wrong"), "wrong horse\n", { mode: 0o600 });
    await expect(
      loadSigningKey({ signKey: guarded.files.secret, signPassphraseFile: join(work, "wrong") }),
    ).rejects.toThrow(/does not unlock it/);
    const key = await loadSigningKey({ signKey: guarded.files.secret, signPassphraseFile: join(work, "pass") });
    expect(key?.fingerprint).toBe(guarded.fingerprint);
  });

  it("a passphrase file's first line is the passphrase", () => {
    expect(firstLine(Buffer.from("a b\r\nrest")).toString()).toBe("a b");
    expect(firstLine(Buffer.from("x")).toString()).toBe("x");
  });
});

describe("detached signatures", () => {
  it("verify with the signer's public key, fail on one altered byte and with another key", async () => {
    const file = join(work, "thing.tar.gz");
    await writeFile(file, Buffer.from("some tarball bytes\n".repeat(100)));
    const key = await loadSigningKey({ signKey: guarded.files.secret, signPassphraseFile: join(work, "pass") });
    const sig = await signFile(key!, file);
    expect(sig).toBe(`${file}.asc`);
    expect(await readFile(sig, "utf8")).toContain("BEGIN PGP SIGNATURE");
    const good = await verifyDetached(file, sig, guarded.files.public);
    expect(good).toMatchObject({ ok: true, primaryFingerprint: guarded.fingerprint });
    // The binary keyring works as well.
    expect((await verifyDetached(file, sig, guarded.files.publicBinary)).ok).toBe(true);

    const wrongKey = await verifyDetached(file, sig, other.files.public);
    expect(wrongKey).toMatchObject({ ok: false, problem: expect.stringMatching(/not in/) });

    const bytes = await readFile(file);
    bytes[17] = (bytes[17] as number) ^ 1;
    await writeFile(file, bytes);
    expect(await verifyDetached(file, sig, guarded.files.public)).toMatchObject({
      ok: false,
      problem: expect.stringMatching(/BAD signature/),
    });
  });

  it("refuses a secret key as a keyring", async () => {
    const file = join(work, "x");
    await writeFile(file, "x");
    await writeFile(`${file}.asc`, "not a signature");
    await chmod(`${file}.asc`, 0o644);
    expect(await verifyDetached(file, `${file}.asc`, site.files.secret)).toMatchObject({
      ok: false,
      problem: expect.stringMatching(/secret key/),
    });
  });

  it("reads gpg's status lines", () => {
    expect(verdictOf("[GNUPG:] NEWSIG\n", "", "k.asc")).toMatchObject({ ok: false });
    expect(verdictOf("[GNUPG:] ERRSIG ABCD 1 8 00 1 9 FPR\n[GNUPG:] NO_PUBKEY ABCD\n", "", "k.asc")).toMatchObject({
      ok: false,
      problem: "signed by key ABCD, which is not in k.asc",
    });
  });
});

describe("a key of the user's own keyring (--sign-key-id)", () => {
  it("finds it by fingerprint or user id and signs with the user's gpg, the secret never read by the factory", async () => {
    const home = join(work, "user-home");
    await import("node:fs/promises").then((fs) => fs.mkdir(home, { mode: 0o700 }));
    const { execa } = await import("execa");
    await execa("gpg", ["--homedir", home, "--batch", "--import", site.files.secret]);
    const saved = process.env["GNUPGHOME"];
    process.env["GNUPGHOME"] = home;
    try {
      const key = await loadSigningKey({ signKeyId: "builds@example.org" });
      expect(key).toMatchObject({ kind: "agent", fingerprint: site.fingerprint });
      expect(key).not.toHaveProperty("secretKey");
      const file = join(work, "agent-signed");
      await writeFile(file, "payload\n");
      await signFile(key!, file);
      expect((await verifyDetached(file, `${file}.asc`, site.files.public)).ok).toBe(true);
      await expect(loadSigningKey({ signKeyId: "nobody@example.org" })).rejects.toThrow(/no such secret key/);
      await expect(loadSigningKey({ signKeyId: "--import" })).rejects.toThrow(/not a key id/);
    } finally {
      if (saved === undefined) delete process.env["GNUPGHOME"];
      else process.env["GNUPGHOME"] = saved;
      await execa("gpgconf", ["--homedir", home, "--kill", "all"], { reject: false });
    }
  });
});

describe("verify --keyring's check", () => {
  it("requires the signer to be the key the manifest names, and says when the .asc is missing", async () => {
    const { checkTarballSignature } = await import("../../src/sign/tarball-signature.js");
    const file = join(work, "named.tar.gz");
    await writeFile(file, "tarball\n");
    expect(await checkTarballSignature(file, site.files.public)).toMatchObject({
      ok: false,
      message: expect.stringMatching(/no signature: named\.tar\.gz\.asc is missing/),
    });
    await signFile((await loadSigningKey({ signKey: site.files.secret }))!, file);
    expect(await checkTarballSignature(file, site.files.public, site.fingerprint)).toMatchObject({
      ok: true,
      fingerprint: site.fingerprint,
    });
    expect(await checkTarballSignature(file, site.files.public, other.fingerprint)).toMatchObject({
      ok: false,
      message: expect.stringMatching(/but its manifest names the signing key/),
    });
    await expect(checkTarballSignature(file, join(work, "nope.asc"))).rejects.toThrow(/--keyring .*: no such file/);
  });
});

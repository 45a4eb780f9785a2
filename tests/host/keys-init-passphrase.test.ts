/**
 * `keys init --passphrase-file` reads its passphrase as --sign-passphrase-file does (fs/user-file.ts): a FIFO is
 * refused at once (not waited on), a file others may read is refused naming the flag and the mode, an oversized one
 * by its size; each is bad input (exit 2), quotes no passphrase and leaves no key directory behind. A 0600 file
 * protects the key with its first line (checked with the real gpg through --sign-key).
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FactoryError, InputError } from "../../src/errors.js";
import { loadSigningKey } from "../../src/sign/key.js";
import { initKeys } from "../../src/sign/keys-init.js";

const CLI = resolve("dist-js/cli/main.js");
const PW = "correct horse battery staple";
let work: string;

async function caught(run: () => Promise<unknown>): Promise<Error> {
  try {
    await run();
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected an error, nothing was thrown");
}

async function passphraseFile(name: string, mode: number, content = `${PW}\n`): Promise<string> {
  const file = join(work, name);
  await writeFile(file, content, { mode });
  await chmod(file, mode);
  return file;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "sf-keys-pass-"));
});

afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe("keys init --passphrase-file", () => {
  it("refuses a FIFO at once, and makes no key directory", async () => {
    const fifo = join(work, "pass-fifo");
    execFileSync("mkfifo", ["-m", "600", fifo]);
    const dir = join(work, "keys-fifo");
    // The test's own timeout is the "forever": a plain readFile blocks on a FIFO with no writer.
    const error = await caught(() => initKeys(dir, { userId: "Site <s@example.org>", passphraseFile: fifo }));
    expect(error).toBeInstanceOf(InputError);
    expect(error.message).toBe(`--passphrase-file ${fifo} is a FIFO, not a regular file`);
    expect(existsSync(dir)).toBe(false);
  });

  it.each([
    ["644", "readable"],
    ["640", "readable"],
    ["620", "accessible"],
  ])("refuses mode %s, naming the flag and the mode, before any key is made", async (octal, who) => {
    const mode = Number.parseInt(octal, 8);
    const file = await passphraseFile(`pass-${mode.toString(8)}`, mode);
    const dir = join(work, `keys-${mode.toString(8)}`);
    const error = await caught(() => initKeys(dir, { userId: "Site <s@example.org>", passphraseFile: file }));
    expect(error).toBeInstanceOf(InputError);
    expect((error as FactoryError).exitCode).toBe(2);
    expect(error.message).toBe(
      `--passphrase-file ${file} is ${who} by others (mode ${mode.toString(8)}); a private key or password file must be 0600 or 0400`,
    );
    expect((error as InputError).hint).toBe(`chmod 600 ${file}`);
    expect(error.message).not.toContain(PW);
    expect(existsSync(dir)).toBe(false);
  });

  it("refuses a file far larger than a passphrase by its size", async () => {
    const file = await passphraseFile("pass-huge", 0o600, "x".repeat(1024 * 1024));
    const error = await caught(() =>
      initKeys(join(work, "keys-huge"), { userId: "S <s@e.org>", passphraseFile: file }),
    );
    expect(error).toBeInstanceOf(InputError);
    expect(error.message).toMatch(/^--passphrase-file .*pass-huge is 1048576 bytes; expected at most 65536/);
  });

  it("through the CLI: a 0644 file and a FIFO are exit 2 with the flag named", async () => {
    const open = await passphraseFile("pass-cli", 0o644);
    const cli = (file: string) =>
      execa("node", [CLI, "keys", "init", join(work, "keys-cli"), "--passphrase-file", file], {
        reject: false,
        all: true,
        env: { CI: "true" },
      });
    const byMode = await cli(open);
    expect(byMode.exitCode).toBe(2);
    expect(byMode.stderr).toContain(`--passphrase-file ${open} is readable by others (mode 644)`);
    expect(byMode.all).not.toContain(PW);
    const fifo = join(work, "pass-cli-fifo");
    execFileSync("mkfifo", ["-m", "600", fifo]);
    const byKind = await cli(fifo);
    expect(byKind.exitCode).toBe(2);
    expect(byKind.stderr).toContain(`--passphrase-file ${fifo} is a FIFO, not a regular file`);
    expect(existsSync(join(work, "keys-cli", "secret.asc"))).toBe(false);
  });

  it("a 0600 file protects the key with its first line", async () => {
    const file = await passphraseFile("pass-ok", 0o600, `${PW}\nsecond line\n`);
    const made = await initKeys(join(work, "keys-ok"), {
      userId: "Site <s@example.org>",
      passphraseFile: file,
      algorithm: "ed25519",
    });
    const key = await loadSigningKey({ signKey: made.files.secret, signPassphraseFile: file });
    expect(key?.fingerprint).toBe(made.fingerprint);
    const bare = await caught(() => loadSigningKey({ signKey: made.files.secret }));
    expect(bare.message).toMatch(/may need a passphrase/);
  });
});

import { describe, expect, it } from "vitest";
import type { BuildContainer, ExecOptions } from "../../src/docker/index.js";
import { prepareGnupgHome, putSecretKey, removeSecretKey } from "../../src/sign/container-key.js";
import type { FileSigningKey } from "../../src/sign/key.js";

const SECRET = "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQVYBGTOPSECRETBODY\n-----END PGP PRIVATE KEY BLOCK-----\n";
const PASSPHRASE = "hunter2 passphrase";
const key: FileSigningKey = {
  kind: "file",
  source: "site.asc",
  fingerprint: "0123456789ABCDEF0123456789ABCDEF01234567",
  publicKey: "public",
  secretKey: Buffer.from(SECRET),
  passphrase: Buffer.from(PASSPHRASE),
};
const signing = { fingerprint: key.fingerprint, gnupgHome: "/sf/keys/gnupg" };

/** A container that records every exec. */
function recorder(exitCode = 0) {
  const calls: { argv: string[]; options: ExecOptions }[] = [];
  const container = {
    id: "c0ffee",
    exec: async (argv: string[], options: ExecOptions = {}) => {
      calls.push({ argv, options });
      return { exitCode };
    },
  } as unknown as BuildContainer;
  return { calls, container };
}

describe("the signing key in a build container", () => {
  it("reaches it on stdin only: no argv and no environment carries the key or its passphrase", async () => {
    const { calls, container } = recorder();
    await prepareGnupgHome(container, signing);
    await putSecretKey(container, signing, key);
    await removeSecretKey(container, signing);
    const stdin = calls.map((c) => c.options.stdin?.toString() ?? "").join("\n");
    expect(stdin).toContain("TOPSECRETBODY");
    expect(stdin).toContain(PASSPHRASE);
    for (const call of calls) {
      const visible = JSON.stringify([call.argv, call.options.env ?? {}]);
      expect(visible).not.toContain("TOPSECRETBODY");
      expect(visible).not.toContain(PASSPHRASE);
    }
    // gpg reads the passphrase from a file on the tmpfs, through gpg.conf.
    expect(stdin).toContain("pinentry-mode loopback\npassphrase-file /sf/keys/gnupg/passphrase\n");
    const removal = calls.at(-1)!;
    expect(removal.argv.join(" ")).toContain("--delete-secret-keys");
    expect(removal.argv).toContain(key.fingerprint);
  });

  it("refuses another key than the plan's, and says which step of the container failed", async () => {
    const { container } = recorder();
    await expect(putSecretKey(container, { ...signing, fingerprint: "F".repeat(40) }, key)).rejects.toThrow(
      /the plan signs with F+, but the key given is 0123/,
    );
    const failing = recorder(2);
    await expect(putSecretKey(failing.container, signing, key)).rejects.toThrow(
      /importing the signing key in the build container failed with exit code 2/,
    );
  });
});

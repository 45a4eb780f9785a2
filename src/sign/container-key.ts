/**
 * The signing key inside a build container, for the steps that sign (buildcache pushes) and no longer: imported
 * into the target's gpg home on its tmpfs through exec's stdin just before such a step, removed right after it.
 * Command lines here carry paths and the fingerprint only; the key and its passphrase travel on stdin.
 */
import type { BuildContainer } from "../docker/index.js";
import { execChecked } from "../docker/exec-checked.js";
import { BuildError } from "../errors.js";
import type { FileSigningKey } from "./key.js";

export interface ContainerSigning {
  fingerprint: string;
  gnupgHome: string;
}

/** Makes the gpg home (mode 0700) where Spack trusts the public key and, for signing steps, holds the secret one. */
export async function prepareGnupgHome(
  container: BuildContainer,
  signing: ContainerSigning,
  signal?: AbortSignal,
): Promise<void> {
  await run(
    container,
    "making the gpg home",
    ["sh", "-c", 'umask 077 && mkdir -p "$1" && chmod 700 "$1"', "sh", signing.gnupgHome],
    undefined,
    signal,
  );
}

/** Imports the secret key (and, when it has one, its passphrase for gpg's loopback pinentry) into the gpg home. */
export async function putSecretKey(
  container: BuildContainer,
  signing: ContainerSigning,
  key: FileSigningKey,
  signal?: AbortSignal,
): Promise<void> {
  if (key.fingerprint !== signing.fingerprint) {
    throw new BuildError(`the plan signs with ${signing.fingerprint}, but the key given is ${key.fingerprint}`);
  }
  const home = signing.gnupgHome;
  await run(
    container,
    "importing the signing key",
    ["gpg", "--homedir", home, "--batch", "--no-tty", "--import"],
    key.secretKey,
    signal,
  );
  // Spack runs gpg without a terminal: the loopback pinentry reads the passphrase from a file on the tmpfs.
  const conf = [
    "pinentry-mode loopback",
    ...(key.passphrase === undefined ? [] : [`passphrase-file ${home}/passphrase`]),
    "",
  ].join("\n");
  await run(
    container,
    "configuring gpg",
    ["sh", "-c", 'umask 077 && cat > "$1/gpg.conf"', "sh", home],
    Buffer.from(conf),
    signal,
  );
  if (key.passphrase !== undefined) {
    await run(
      container,
      "giving gpg the passphrase",
      ["sh", "-c", 'umask 077 && cat > "$1/passphrase"', "sh", home],
      Buffer.concat([key.passphrase, Buffer.from("\n")]),
      signal,
    );
  }
}

/** Removes the secret key, its passphrase and the agent holding it; the public key stays trusted. */
export async function removeSecretKey(
  container: BuildContainer,
  signing: ContainerSigning,
  signal?: AbortSignal,
): Promise<void> {
  const script = [
    'gpg --homedir "$1" --batch --no-tty --yes --delete-secret-keys "$2" >/dev/null 2>&1 || true',
    'gpgconf --homedir "$1" --kill all >/dev/null 2>&1 || true',
    'rm -rf "$1/private-keys-v1.d" "$1/passphrase" "$1/gpg.conf"',
    'if gpg --homedir "$1" --batch --no-tty --list-secret-keys "$2" >/dev/null 2>&1; then echo "secret key still there" >&2; exit 1; fi',
  ].join("\n");
  await run(
    container,
    "removing the signing key",
    ["sh", "-c", script, "sh", signing.gnupgHome, signing.fingerprint],
    undefined,
    signal,
  );
}

/** One helper command in the container (execChecked), with its stdin if any. */
function run(
  container: BuildContainer,
  what: string,
  argv: string[],
  stdin: Buffer | undefined,
  signal?: AbortSignal,
): Promise<void> {
  return execChecked(container, what, argv, {
    ...(stdin === undefined ? {} : { stdin: stdin }),
    ...(signal === undefined ? {} : { signal }),
  });
}

import { resolve } from "node:path";
import { InputError } from "../../errors.js";
import { initKeys } from "../../sign/keys-init.js";

/** `keys init DIR`: a new signing key pair for a site. */
export async function keysCommand(
  action: string,
  dir: string,
  flags: { name?: string; passphraseFile?: string },
): Promise<number> {
  if (action !== "init")
    throw new InputError(`keys: unknown action "${action}"; the one action is init (stack-factory keys init DIR)`);
  const made = await initKeys(resolve(dir), {
    userId: flags.name ?? "stack-factory signing key <stack-factory@localhost>",
    ...(flags.passphraseFile === undefined ? {} : { passphraseFile: flags.passphraseFile }),
  });
  process.stdout.write(
    [
      `key ${made.fingerprint}`,
      `  ${made.files.secret}  secret key (mode 0600): for build/warm --sign-key; keep it on the factory only`,
      `  ${made.files.public}  public key: for verify --keyring`,
      `  ${made.files.publicBinary}  the same public key as a gpgv keyring (gpgv --keyring ${made.files.publicBinary} TARBALL.asc TARBALL)`,
      `  ${made.files.verifier}  hand it to the clusters with public.gpg: verify-tarball.sh TARBALL, before unpacking it`,
      "",
    ].join("\n"),
  );
  return 0;
}

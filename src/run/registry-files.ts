/**
 * The registry's files in a build container (its credentials, the site's CA): written on the target's registry
 * tmpfs through the exec's stdin, mode 0600 and owned by the build user (the exec runs as the container's user), so
 * they are never in an argument vector, an environment, the container's file system (`docker diff`) or an image.
 */
import type { BuildContainer } from "../docker/index.js";
import { execChecked } from "../docker/exec-checked.js";
import type { TargetRegistryFiles } from "../plan/types.js";

/** Where images keep their system CA bundle (Debian/Ubuntu, RHEL family, SUSE, Alpine), first found wins. */
const SYSTEM_CA_BUNDLES = [
  "/etc/ssl/certs/ca-certificates.crt",
  "/etc/pki/tls/certs/ca-bundle.crt",
  "/etc/ssl/ca-bundle.pem",
  "/etc/ssl/cert.pem",
];

export async function putRegistryFiles(
  container: BuildContainer,
  registry: TargetRegistryFiles,
  signal?: AbortSignal,
): Promise<void> {
  for (const [path, content] of Object.entries(registry.files)) {
    await run(container, `writing ${path}`, ["sh", "-c", 'umask 077 && cat > "$1"', "sh", path], content, signal);
  }
  if (registry.caBundle !== undefined) {
    // The image's own CAs stay trusted (package sources over https), the site's registry CA is added.
    const script = [
      "umask 077",
      'out=$1; site=$2; shift 2; : > "$out"',
      'for f in "$@"; do if [ -s "$f" ]; then cat "$f" >> "$out"; echo >> "$out"; break; fi; done',
      'cat "$site" >> "$out"',
    ].join("\n");
    await run(
      container,
      "making the CA bundle",
      ["sh", "-c", script, "sh", registry.caBundle.path, registry.caBundle.siteCa, ...SYSTEM_CA_BUNDLES],
      undefined,
      signal,
    );
  }
}

/** One helper command in the container (execChecked), with its stdin if any. */
function run(
  container: BuildContainer,
  what: string,
  argv: string[],
  stdin: string | undefined,
  signal?: AbortSignal,
): Promise<void> {
  return execChecked(container, what, argv, {
    ...(stdin === undefined ? {} : { stdin: Buffer.from(stdin, "utf8") }),
    ...(signal === undefined ? {} : { signal }),
  });
}

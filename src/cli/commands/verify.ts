import { basename, dirname, resolve } from "node:path";
import { imageReferenceProblem } from "../../config/guards.js";
import { connectEngine, runOneShot } from "../../docker/index.js";
import { InputError } from "../../errors.js";
import { LAYOUT, verifyTarball } from "../../package/index.js";
import { checkThisNode, parsePortability } from "../../package/node-check.js";
import { checkTarballSignature } from "../../sign/tarball-signature.js";
import { abortOnSignals } from "../signals.js";

/** Two install prefixes for --install-test: a short one and one of exactly 200 characters (the longest install.sh takes). */
export const INSTALL_TEST_PREFIXES = [
  "/tmp/sf-install-test/a",
  `/tmp/sf-install-test/${"l".repeat(200 - "/tmp/sf-install-test/".length)}`,
];

/**
 * The fixed script of --install-test, run by bash in a fresh container: unpack, install at each prefix, run the
 * self-test, and check that the installed tree no longer names the build prefix. User data reaches it only as
 * arguments ($1 top directory, $2 tarball, then the tree's names from layout.ts, then the prefixes), never as script
 * text.
 */
const INSTALL_TEST_SCRIPT = `set -eu
top=$1; tarball=$2; build_prefix_file=$3; metadata=$4; manifest=$5; installer=$6; view=$7; shift 7
work=$(mktemp -d)
cd "$work"
case "$tarball" in
  *.zst) zstd -dc "$tarball" | tar -x ;;
  *) tar -xzf "$tarball" ;;
esac
build_prefix=$(cat "$work/$top/$build_prefix_file")
for prefix in "$@"; do
  echo "== install at $prefix (\${#prefix} characters)"
  "$work/$top/$installer" --prefix "$prefix"
  if grep -rlF --exclude-dir="$metadata" --exclude="$manifest" -- "$build_prefix" "$prefix"; then
    echo "install-test: the files above still name the build prefix" >&2
    exit 1
  fi
  for exe in "$prefix/$view"/bin/*; do
    [ -f "$exe" ] && [ -x "$exe" ] || continue
    if [ "$(head -c4 "$exe" | od -An -c | tr -d ' \\n')" = '177ELF' ] && ldd "$exe" | grep -q 'not found'; then
      echo "install-test: $exe has unresolved libraries" >&2; ldd "$exe" >&2; exit 1
    fi
  done
done
echo "install-test: ok"
`;

export async function verifyCommand(
  tarball: string,
  flags: { installTest?: boolean; image?: string; node?: boolean; keyring?: string },
): Promise<number> {
  const report = await verifyTarball(tarball);
  if (flags.keyring !== undefined) {
    const signature = await checkTarballSignature(tarball, flags.keyring, report.signingFingerprint);
    if (signature.ok) process.stdout.write(`signature: ${signature.message}\n`);
    else report.problems.push(signature.message);
    report.ok &&= signature.ok;
  }
  for (const p of report.problems) process.stdout.write(`problem: ${p}\n`);
  process.stdout.write(
    `${report.ok ? "ok" : "FAILED"}: ${tarball} (${report.files} files${report.top ? `, top directory ${report.top}` : ""})\n`,
  );
  if (!report.ok) return 1;
  if (flags.node === true && (await nodeCheck(report.portability, report.baseImage)) !== 0) return 1;
  if (flags.installTest !== true) return 0;

  const image = flags.image ?? report.baseImage;
  if (image === undefined)
    throw new InputError(`verify --install-test: ${tarball} records no base image; give --image`);
  // The manifest's base image is the tarball's word, not the user's: it must be an image reference too.
  const imageProblem = imageReferenceProblem(image);
  if (imageProblem !== undefined) {
    throw new InputError(
      `verify --install-test: ${flags.image !== undefined ? "--image" : `the base image ${tarball} records`}: ${imageProblem}`,
    );
  }
  const engine = await connectEngine();
  const { signal, dispose } = abortOnSignals();
  try {
    const path = resolve(tarball);
    const { exitCode } = await runOneShot(engine, {
      image,
      cmd: [
        "bash",
        "-c",
        INSTALL_TEST_SCRIPT,
        "install-test",
        report.top ?? "",
        `/pkg/${basename(path)}`,
        LAYOUT.buildPrefix,
        LAYOUT.metadata,
        LAYOUT.manifest,
        LAYOUT.installScript,
        LAYOUT.view,
        ...INSTALL_TEST_PREFIXES,
      ],
      mounts: [{ host: dirname(path), container: "/pkg", readOnly: true }],
      user: "65534:65534",
      labels: { "stack-factory.purpose": "install-test" },
      signal,
      onStdout: (chunk) => process.stdout.write(chunk),
      onStderr: (chunk) => process.stderr.write(chunk),
    });
    return exitCode === 0 ? 0 : 1;
  } finally {
    dispose();
  }
}

/** verify --node: install.sh's "will it run here?" check, for this machine. */
async function nodeCheck(record: unknown, baseImage: string | undefined): Promise<number> {
  if (record === undefined) {
    process.stdout.write(
      "node: the manifest records no portability (a tarball from an older factory): nothing to check against\n",
    );
    return 1;
  }
  const portability = parsePortability(record);
  if (typeof portability === "string") {
    process.stdout.write(`node: the manifest's ${portability}\n`);
    return 1;
  }
  const check = await checkThisNode(portability);
  const needs = Object.values(portability.highest_versions).join(", ");
  if (check.ok) {
    process.stdout.write(
      `node: ok: this machine can run it (${portability.machine}; ${portability.node_libraries.length} system libraries${needs ? `; needs ${needs}` : ""})\n`,
    );
    return 0;
  }
  process.stdout.write(`node: this machine cannot run it:\n${check.problems.map((p) => `  - ${p}\n`).join("")}`);
  process.stdout.write(
    `node: the tree was built on ${baseImage ?? "an unrecorded base image"}; build it on a base image no newer than this machine's system, or run it on a machine that has the above\n`,
  );
  return 1;
}

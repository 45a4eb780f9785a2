#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { cac } from "cac";
import { describeFailure } from "./failure.js";
import {
  cacheRoot,
  checkInputFile,
  checkOutputDir,
  checkOutputFile,
  rawOptionValues,
  repeatedOption,
} from "./options.js";

const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };

/** The single place where errors become exit codes and messages. */
async function run(action: () => Promise<number | void>): Promise<void> {
  try {
    const code = await action();
    process.exitCode = code ?? 0;
  } catch (error) {
    const failure = describeFailure(error);
    process.stderr.write(failure.text);
    process.exitCode = failure.exitCode;
  }
}

/**
 * The kind of every path `build`/`warm` reads or writes, checked before anything starts: the stack file must be a
 * regular file, outputs must be directories or regular files on a real file system.
 */
async function checkRunPaths(
  stack: string | undefined,
  flags: {
    out?: string;
    report?: string;
    reportHtml?: string;
    summary?: string;
    cacheDir?: string;
    signKey?: string;
    signPassphraseFile?: string;
    factory?: string;
    plan?: string;
    keyring?: string;
  },
): Promise<void> {
  if (stack !== undefined) await checkInputFile(stack, "stack file");
  if (flags.plan !== undefined) await checkInputFile(`${flags.plan}/plan.json`, "--plan");
  await checkOutputDir(cacheRoot(flags.cacheDir), "--cache-dir");
  if (flags.out !== undefined) await checkOutputDir(flags.out, "--out");
  if (flags.report !== undefined) await checkOutputFile(flags.report, "--report");
  if (flags.reportHtml !== undefined) await checkOutputFile(flags.reportHtml, "--report-html");
  if (flags.summary !== undefined) await checkOutputFile(flags.summary, "--summary");
  if (flags.signKey !== undefined) await checkInputFile(flags.signKey, "--sign-key");
  if (flags.signPassphraseFile !== undefined) await checkInputFile(flags.signPassphraseFile, "--sign-passphrase-file");
  if (flags.factory !== undefined) await checkInputFile(flags.factory, "--factory");
  if (flags.keyring !== undefined) await checkInputFile(flags.keyring, "--keyring");
}

const cli = cac("stack-factory");

cli
  .command("plan <stack>", "Write the build plan of a stack: spack.yaml per target, builder Dockerfile, steps")
  .option("--target <names>", "Targets to plan (comma-separated or repeated; default: every target of the stack)")
  .option("--out <dir>", "Directory to write the plan's files into")
  .option("--json", "Print the plan as JSON")
  .option("--jobs <n>", "Build jobs per container (default: cores / concurrency, as build)")
  .option("--concurrency <n>", "Containers at once (default: from the host's cores and memory, as build)")
  .option("--memory <size>", "Memory limit per container, as build gives it (it sizes the concurrency)")
  .option("--cache-dir <dir>", "Host cache root the plan is placed under (default: as build)")
  .option("--engine <url>", "A Docker engine to place the plan on (repeatable), as build")
  .option("--factory <file>", "Factory settings (engines, buildcache, credentials), as build")
  .option("--sign-key <file>", "The secret key that will sign the buildcache (its fingerprint goes into the plan)")
  .option("--sign-passphrase-file <file>", "File holding the passphrase of --sign-key")
  .action((stack: string, flags) => run(async () => (await import("./commands/plan.js")).planCommand(stack, flags)));

const runFlags = (command: ReturnType<typeof cli.command>) =>
  command
    .option("--target <names>", "Targets (comma-separated or repeated; default: every target of the stack)")
    .option("--cache-dir <dir>", "Host cache root (default: $STACK_FACTORY_CACHE or the project's cache/)")
    .option("--concurrency <n>", "Containers at once (default: from the host's cores and memory)")
    .option("--jobs <n>", "Build jobs per container (default: cores / concurrency)")
    .option("--cpus <n>", "CPU limit per container")
    .option("--memory <size>", "Memory limit per container (e.g. 8g)")
    .option("--fail-fast", "Stop every target when one fails")
    .option("--keep-container", "Keep a failed build's container for inspection")
    .option("--env <NAME=VALUE>", "Extra environment variable for the build containers (repeatable), e.g. a proxy")
    .option("--report <file>", "Write the run report as JSON")
    .option("--report-html <file>", "Write the run report as a page (default: report.html beside the run's logs)")
    .option(
      "--engine <url>",
      "A Docker engine to build on (repeatable): unix:///path, tcp://host:port or ssh://user@host",
    )
    .option(
      "--factory <file>",
      "Factory settings: engines (cache root and concurrency each), shared buildcache, registry credentials",
    )
    .option("--verbose", "Print every line of the builds and the image build as it comes")
    .option("--fresh", "Concretize afresh even when an earlier run's spack.lock has the same inputs")
    .option(
      "--sign-key <file>",
      "Sign with this armored OpenPGP secret key file (tarballs: <tarball>.asc; the buildcache: signed pushes)",
    )
    .option("--sign-passphrase-file <file>", "The --sign-key's passphrase: the first line of this file")
    .option(
      "--sign-key-id <id>",
      "Sign tarballs with this key of your own gpg keyring and agent (the buildcache stays unsigned)",
    )
    .option(
      "--kit <dir>",
      "Build from a kit (`kit create`), checked against kit.json first; no network in any container",
    )
    .option("--keyring <file>", "With --kit: the kit's signature (kit.json.asc) must verify against this public key");

runFlags(cli.command("build [stack]", "Build the stack for its targets in Docker"))
  .option("--out <dir>", "Output directory for tarballs", { default: "dist" })
  .option("--plan <dir>", "Run a plan written by `plan --out DIR` as written (instead of a stack file)")
  .option("--compress <kind>", "Tarball compression: gzip (default) or zstd")
  .option("--bundle", "Also merge the targets' tarballs into one multi-target bundle (see `bundle`)")
  .action((stack: string | undefined, flags) =>
    run(async () => {
      await checkRunPaths(stack, flags);
      return (await import("./commands/build.js")).buildCommand(stack, flags, "build");
    }),
  );

runFlags(cli.command("warm <stack>", "Fill the buildcache for every target (nightly cache warming); no tarballs"))
  .option("--summary <file>", "Write a short Markdown summary (for CI job pages)")
  .action((stack: string, flags) =>
    run(async () => {
      await checkRunPaths(stack, flags);
      return (await import("./commands/build.js")).buildCommand(stack, flags, "warm");
    }),
  );

cli
  .command("cache <action>", "Cache maintenance: `stats` (size per cache and key) or `prune`")
  .option("--cache-dir <dir>", "Host cache root (default: $STACK_FACTORY_CACHE or the project's cache/)")
  .option("--older-than <days>", "prune: remove entries last used more than DAYS ago")
  .option("--keep-last <n>", "prune: keep the N most recently used entries of each kind")
  .option("--dry-run", "prune: only say what would be removed")
  .option("--json", "stats: machine-readable output")
  .action((action: string, flags) =>
    run(async () => {
      await checkOutputDir(cacheRoot(flags.cacheDir), "--cache-dir");
      return (await import("./commands/cache.js")).cacheCommand(action, flags);
    }),
  );

cli
  .command("bundle <stack>", "Merge the stack's target tarballs, built earlier, into one multi-target bundle")
  .option("--target <names>", "Targets to bundle, in this order (default: every target of the stack)")
  .option("--dist <dir>", "Where the target tarballs are (default: dist)")
  .option("--out <dir>", "Where to write the bundle (default: --dist)")
  .action((stack: string, flags) =>
    run(async () => (await import("./commands/bundle.js")).bundleCommand(stack, flags)),
  );

cli
  .command("verify <tarball>", "Check a stack tarball: checksums, manifest, unsafe entries")
  .option("--install-test", "Also install it at two prefixes in a fresh container and run its self-test")
  .option("--image <image>", "Image for --install-test (default: the base image recorded in the manifest)")
  .option(
    "--node",
    "Also check that this machine can run the tree: its ELF machine, the system libraries and symbol versions it needs",
  )
  .option(
    "--keyring <file>",
    "Also check <tarball>.asc, its detached signature, against this public key file (armored or binary)",
  )
  .action((tarball: string, flags) =>
    run(async () => {
      if (flags.keyring !== undefined) await checkInputFile(flags.keyring, "--keyring");
      return (await import("./commands/verify.js")).verifyCommand(tarball, flags);
    }),
  );

cli
  .command(
    "keys <action> <dir>",
    "Signing keys: `init DIR` makes a site's key pair (secret.asc for --sign-key, public.asc for the clusters)",
  )
  .option("--name <user-id>", "User id of the new key", {
    default: "stack-factory signing key <stack-factory@localhost>",
  })
  .option("--passphrase-file <file>", "Protect the secret key with the first line of this file")
  .action((action: string, dir: string, flags) =>
    run(async () => {
      await checkOutputDir(dir, `keys ${action}`);
      if (flags.passphraseFile !== undefined) await checkInputFile(flags.passphraseFile, "--passphrase-file");
      return (await import("./commands/keys.js")).keysCommand(action, dir, flags);
    }),
  );

cli
  .command(
    "kit <action> [...args]",
    "An air-gapped factory's bundle: `kit create <stack.yaml> DIR` on a connected host, `kit verify DIR` on the other",
  )
  .option("--cache-dir <dir>", "create: host cache root (its kept concretizations are reused)")
  .option("--network <name>", "create: Docker network of its containers (e.g. host, for a proxy on this host)")
  .option("--env <NAME=VALUE>", "create: extra environment variable for its containers (repeatable), e.g. a proxy")
  .option("--with-buildcache", "create: also carry the stack's buildcache (run warm first)")
  .option("--sign-key <file>", "create: sign kit.json with this armored OpenPGP secret key (kit.json.asc)")
  .option("--sign-passphrase-file <file>", "create: the --sign-key's passphrase: the first line of this file")
  .option("--stack <file>", "verify: also check that the kit covers this stack file")
  .option("--target <names>", "verify: only these targets of --stack")
  .option("--keyring <file>", "verify: check kit.json.asc against this public key file")
  .option("--verbose", "create: print every line of its containers")
  .action((action: string, args: string[], flags) =>
    run(async () => {
      if (flags.signKey !== undefined) await checkInputFile(flags.signKey, "--sign-key");
      if (flags.keyring !== undefined) await checkInputFile(flags.keyring, "--keyring");
      if (flags.stack !== undefined) await checkInputFile(flags.stack, "--stack");
      if (action === "create") {
        if (args[0] !== undefined) await checkInputFile(args[0], "stack file");
        await checkOutputDir(cacheRoot(flags.cacheDir), "--cache-dir");
      }
      return (await import("./commands/kit.js")).kitCommand(action, args, flags);
    }),
  );

cli
  .command("targets", "List the microarchitecture targets the factory knows")
  .option("--host", "Show the microarchitecture detected on this host")
  .option("--json", "Machine-readable output")
  .action((flags) => run(async () => (await import("./commands/targets.js")).targetsCommand(flags)));

cli
  .command(
    "doctor [stack]",
    "Check the Docker engine, disk space and cache directories; with a stack, its builder image (python3, clingo)",
  )
  .option("--cache-dir <dir>", "Host cache root to check")
  .option("--engine <url>", "An engine to check (repeatable); default: the --factory file's, else the local one")
  .option("--factory <file>", "Factory settings: check every engine and the buildcache registry")
  .option("--kit <dir>", "Say whether this host can build the stack from this kit alone")
  .action((stack: string | undefined, flags) =>
    run(async () => {
      // A cache root under /proc would make the writability check spin forever.
      await checkOutputDir(cacheRoot(flags.cacheDir), "--cache-dir");
      if (stack !== undefined) await checkInputFile(stack, "stack file");
      if (flags.factory !== undefined) await checkInputFile(flags.factory, "--factory");
      return (await import("./commands/doctor.js")).doctorCommand(flags, stack);
    }),
  );

cli
  .command("clean", "Remove containers left behind by factory runs")
  .option("--run <id>", "Remove the containers of this run (also those kept with --keep-container)")
  .option("--all", "Remove every factory container, also of runs that are still alive")
  .option("--engine <url>", "An engine to clean (repeatable); default: the --factory file's, else the local one")
  .option("--factory <file>", "Factory settings: clean on every engine it names")
  .action((flags) =>
    run(async () => {
      if (flags.factory !== undefined) await checkInputFile(flags.factory, "--factory");
      return (await import("./commands/clean.js")).cleanCommand(flags);
    }),
  );

cli
  .command(
    "schema [kind]",
    "Print the JSON Schema of the stack file (`stack`, the default) or the factory settings (`factory`)",
  )
  .action((kind: string | undefined) => run(async () => (await import("./commands/schema.js")).schemaCommand(kind)));

cli
  .command("init [dir]", "Write a starter stack file for this host, DIR/stack.yaml (never overwrites)")
  .action((dir: string | undefined) =>
    run(async () => {
      await checkOutputDir(dir ?? ".", "init");
      return (await import("./commands/init.js")).initCommand(dir);
    }),
  );

cli.help();
cli.version(pkg.version);

try {
  cli.parse(process.argv, { run: false });
  if (cli.matchedCommand === undefined && cli.args.length > 0) {
    process.stderr.write(`stack-factory: unknown command "${cli.args.join(" ")}"; see stack-factory --help\n`);
    process.exitCode = 2;
  } else if (cli.matchedCommand === undefined && !cli.options["help"] && !cli.options["version"]) {
    cli.outputHelp();
  } else {
    // Values as typed, not as cac's parser coerced them; an empty one is a mistake, not the current directory.
    const definitions = [...(cli.matchedCommand?.options ?? []), ...cli.globalCommand.options];
    const raw = rawOptionValues(process.argv.slice(2), definitions);
    for (const [key, values] of raw) cli.options[key] = values.length === 1 ? values[0] : values;
    const empty = [...raw].find(([, values]) => values.includes(""));
    const repeated =
      empty !== undefined
        ? `--${empty[0].replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} needs a value, got an empty string`
        : repeatedOption(cli.options);
    if (repeated !== undefined) {
      process.stderr.write(`stack-factory: ${repeated}\n`);
      process.exitCode = 2;
    } else {
      await cli.runMatchedCommand();
    }
  }
} catch (error) {
  // cac reports unknown options and missing arguments by throwing.
  process.stderr.write(`stack-factory: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 2;
}

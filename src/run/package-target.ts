import type { BuildContainer } from "../docker/index.js";
import { BuildError } from "../errors.js";
import { CONTAINER } from "../plan/paths.js";
import type { BuildPlan, PackagePlan, TargetPlan } from "../plan/types.js";
import {
  assetFiles,
  buildManifest,
  buildSbom,
  LAYOUT,
  parseSpecs,
  PREPARE_OUTPUTS,
  type Compression,
  type GeneratedFile,
} from "../package/index.js";
import { packInContainer } from "../package/container-pack.js";
import { prepareArgv, stagePath } from "../package/prepare-args.js";
import {
  portabilityFromPrepare,
  portabilityWarnings,
  type Portability,
  type PreparePortability,
} from "../package/node-check.js";
import type { TargetExtra } from "./run-plan.js";
import type { TargetLog } from "./target-log.js";
import { MODULE_SYSTEMS, modulePath } from "../render/module.js";

export interface PackageOptions {
  outDir: string;
  compression: Compression;
  signal: AbortSignal;
  spackCommit: string;
  /** Commit of spack-packages (Spack v1.x). */
  spackPackagesCommit?: string;
  /** The builder image's id (`sha256:...`). */
  imageId: string;
  /** The `spack find --json` output the build captured (the text). */
  specsJson: string;
  /** Fingerprint of the key that will sign the tarball (recorded in the manifest). */
  signingFingerprint?: string;
  /**
   * Where `outDir` is mounted read-write in the container, when the engine runs on this machine: the tarball is
   * then written straight into it instead of being copied out through the engine (packInContainer's sharedOutDir).
   */
  sharedOutDir?: string;
}

/** What prepare-relocation.py reports (prepare.json). */
interface PrepareReport {
  buildPrefix: string;
  outsideRpaths: string[];
  escapingSymlinks: string[];
  files: number;
  /** Text occurrences Spack's boundary rule leaves, files still holding a Spack placeholder. */
  textLeftAlone?: unknown[];
  placeholderFiles?: string[];
  /** Files still holding a piece of an install prefix (`/linux-<target>/<name>-<version>-<hash>`). */
  installPathsLeft?: { file: string; found: string }[];
  /** Entries whose names held a path of the build machine (removed), symlinks to system paths (made by install.sh). */
  droppedNames?: string[];
  /** ELF files whose dead .dynstr bytes could not be cleared (the stale tails of shortened paths stay). */
  dynstrNotCleared?: unknown[];
  systemLinks?: { link: string; target: string }[];
  portability?: PreparePortability;
}

/**
 * Turn a built target into its tarball, while its container is still there: prepare the view for relocation in the
 * container, then pack it there with the generated files (container-pack.ts) and copy the tarball out.
 */
export async function packageTarget(
  plan: BuildPlan,
  target: TargetPlan,
  container: BuildContainer,
  log: TargetLog,
  options: PackageOptions,
): Promise<TargetExtra> {
  const pkg = plan.package;
  if (pkg === undefined) throw new BuildError("this plan packs nothing (a warm plan)");
  const prepared = await prepareView(pkg, target, container, log, options.signal);
  const { report, portability } = prepared;
  const specs = parseSpecs(options.specsJson);
  const files = {
    ...(await generatedFiles(plan, pkg, target, prepared.relocateIndex, report.buildPrefix, specs)),
    [LAYOUT.nodeRequirements]: prepared.nodeRequirements,
    [LAYOUT.systemLinks]: prepared.systemLinks,
  };
  const manifest = buildManifest({
    stack: plan.stack,
    target: target.target,
    compiler: pkg.compiler,
    baseImage: pkg.baseImage,
    imageId: options.imageId,
    spackCommit: options.spackCommit,
    ...(options.spackPackagesCommit === undefined ? {} : { spackPackagesCommit: options.spackPackagesCommit }),
    specs,
    buildPrefix: report.buildPrefix,
    relocateIndex: prepared.relocateIndex,
    dynamicTags: prepared.dynamicTags,
    ...(portability === undefined ? {} : { portability }),
    ...(options.signingFingerprint === undefined ? {} : { signingFingerprint: options.signingFingerprint }),
  });

  log.note(`step package: packing ${report.buildPrefix} into ${options.outDir}`);
  // Packed in the container (GNU tar into the compressor, checksums there); only the finished bytes come out.
  const packed = await packInContainer({
    container,
    view: report.buildPrefix,
    workDir: `${CONTAINER.stage}/pack`,
    top: target.outputs.dirName,
    outDir: options.outDir,
    compression: options.compression,
    files,
    manifest,
    onLog: (chunk) => log.write(chunk),
    ...(options.sharedOutDir === undefined ? {} : { sharedOutDir: options.sharedOutDir }),
    signal: options.signal,
  });
  log.note(`step package: wrote ${packed.path} (${packed.bytes} bytes, ${packed.files} files, ${packed.compressor})`);
  return targetExtra(packed, target, prepared);
}

/** What preparing the view in the container left in its stage directory, and what the log was told of it. */
interface PreparedView {
  report: PrepareReport;
  relocateIndex: string;
  nodeRequirements: string;
  dynamicTags: string;
  systemLinks: string;
  portability: Portability | undefined;
  warnings: string[];
}

/** Runs prepare-relocation.py on the view in the container and reads back what it wrote to the stage. */
async function prepareView(
  pkg: PackagePlan,
  target: TargetPlan,
  container: BuildContainer,
  log: TargetLog,
  signal: AbortSignal,
): Promise<PreparedView> {
  const prepare = prepareArgv(pkg.prepareScript, {
    view: target.paths.viewRoot,
    stage: CONTAINER.stage,
    top: target.outputs.dirName,
    installRoot: target.paths.installRoot,
  });
  log.note(`step package: ${prepare.join(" ")}`);
  const prepared = await container.exec(prepare, {
    signal,
    onStdout: (c) => log.write(c),
    onStderr: (c) => log.write(c),
  });
  if (prepared.exitCode !== 0) {
    throw new BuildError(
      `target ${target.target}: step "package" failed with exit code ${prepared.exitCode} preparing the view for relocation\nfull log: ${log.path}`,
    );
  }
  const stageText = async (name: string) =>
    (await container.readFile(stagePath(CONTAINER.stage, name), signal)).toString("utf8");
  const relocateIndex = await stageText(LAYOUT.relocateIndex);
  const report = JSON.parse(await stageText(PREPARE_OUTPUTS.report)) as PrepareReport;
  noteReport(report, log);
  const portability = report.portability === undefined ? undefined : portabilityFromPrepare(report.portability);
  const warnings = portability === undefined ? [] : portabilityWarnings(portability);
  for (const warning of warnings) log.note(`warning: ${warning}`);
  return {
    report,
    relocateIndex,
    nodeRequirements: await stageText(LAYOUT.nodeRequirements),
    dynamicTags: await stageText(PREPARE_OUTPUTS.dynamicTags),
    systemLinks: await stageText(LAYOUT.systemLinks),
    portability,
    warnings,
  };
}

/** The run report's part of a packed target: the tarball, its node floor and the portability warnings. */
function targetExtra(
  packed: { path: string; bytes: number; sha256: string },
  target: TargetPlan,
  prepared: PreparedView,
): TargetExtra {
  const { portability, warnings } = prepared;
  const glibc = portability?.highest_versions["GLIBC"];
  return {
    tarball: packed.path,
    tarballBytes: packed.bytes,
    tarballSha256: packed.sha256,
    ...(portability === undefined
      ? {}
      : {
          nodeFloor: {
            cpu: target.target,
            machine: portability.machine,
            ...(glibc === undefined ? {} : { glibc }),
          },
        }),
    ...(warnings.length > 0 ? { warnings } : {}),
  };
}

async function generatedFiles(
  plan: BuildPlan,
  pkg: PackagePlan,
  target: TargetPlan,
  relocateIndex: string,
  buildPrefix: string,
  specs: ReturnType<typeof parseSpecs>,
): Promise<Record<string, GeneratedFile>> {
  const { name, version } = plan.stack;
  // Rendered at plan time: they depend on the plan alone.
  if (target.packageFiles === undefined)
    throw new BuildError(`target ${target.target}: the plan has no install script (a warm plan)`);
  const { installScript, modules } = target.packageFiles;
  const moduleFiles = Object.fromEntries(
    MODULE_SYSTEMS.flatMap((system) => {
      const text = modules[system];
      return text === undefined ? [] : [[modulePath(system, pkg.moduleName, version), text]];
    }),
  );
  return {
    [LAYOUT.installScript]: { content: installScript, mode: 0o755 },
    ...moduleFiles,
    [LAYOUT.sbom]: `${JSON.stringify(buildSbom(specs, { name, version }), null, 2)}\n`,
    [LAYOUT.relocateIndex]: relocateIndex,
    [LAYOUT.buildPrefix]: `${buildPrefix}\n`,
    ...(await assetFiles(name, pkg.assets)),
  };
}

/** What preparing the view found that a reader of the log should know: warnings, dropped names, system links. */
function noteReport(report: PrepareReport, log: TargetLog): void {
  for (const entry of report.outsideRpaths) log.note(`warning: RPATH entry outside the view: ${JSON.stringify(entry)}`);
  for (const entry of report.escapingSymlinks) log.note(`warning: symlink leaving the view: ${JSON.stringify(entry)}`);
  for (const entry of report.textLeftAlone ?? [])
    log.note(`warning: build prefix left in a text file (not at a word start): ${JSON.stringify(entry)}`);
  for (const file of report.placeholderFiles ?? []) log.note(`warning: Spack placeholder still in ${file}`);
  for (const entry of report.installPathsLeft ?? [])
    log.note(`warning: a piece of a Spack install prefix still in ${JSON.stringify(entry)}`);
  for (const name of report.droppedNames ?? []) log.note(`dropped ${LAYOUT.view}/${name}: its name holds a build path`);
  for (const entry of report.dynstrNotCleared ?? [])
    log.note(`warning: dead .dynstr bytes (stale tails of old paths) left in ${JSON.stringify(entry)}`);
  for (const { link, target: to } of report.systemLinks ?? [])
    log.note(`${LAYOUT.view}/${link} -> ${to}: made by install.sh on the node, which must have ${to}`);
}

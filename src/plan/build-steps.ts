import type { Stack } from "../config/types.js";
import { LOCKS } from "../cache/layout.js";
import { spackCommands, type SpackPaths } from "../spack/contract.js";
import type { Step, StepId } from "./types.js";

/** What the steps of one target's build depend on. */
export interface StepsInput {
  stack: Stack;
  /** The stack's environment. */
  paths: SpackPaths;
  /** The compiler's own environment, when Spack builds the compiler. */
  compilerPaths: SpackPaths;
  jobs: number;
  /** A warm run fills the buildcache only: no view, nothing recorded for packing. */
  warm: boolean;
  /** The buildcache's push lock: one writer of its index at a time. */
  pushLock: string;
  /** A signed buildcache: the signing key's fingerprint and where the trusted public key sits in the container. */
  signing?: { fingerprint: string; publicKeyPath: string };
}

/**
 * The steps of one target's build, in the order they run: trust the signing key, set up the compiler, register the
 * externals, concretize, fetch, install, keep what a failed install built, push, and (not when warming) the view
 * and the record of what was installed.
 */
export function planSteps(input: StepsInput): Step[] {
  const { stack, paths, signing } = input;
  const signs = signsOf(input);
  const steps: Step[] = [];
  if (signing !== undefined) {
    steps.push({
      id: "trust",
      title: "trust the buildcache's signing key",
      argv: spackCommands.gpgTrust(paths, signing.publicKeyPath),
    });
  }
  steps.push(...compilerSteps(input));
  if (stack.externals.length > 0) {
    steps.push({
      id: "externals",
      title: "register build-only externals",
      argv: spackCommands.externalFind(paths, stack.externals),
    });
  }
  steps.push(
    { id: "concretize", title: "concretize", argv: spackCommands.concretize(paths) },
    // Sources are fetched one target at a time, so that a source fetched by one target is read from the source
    // cache by the others. Optional: an air-gapped factory may have binaries for everything and no sources.
    { id: "fetch", title: "fetch sources", argv: spackCommands.fetch(paths), lock: LOCKS.sourceCache, optional: true },
    { id: "install", title: "install", argv: spackCommands.install(paths, input.jobs) },
    // A late failure keeps what was built: the packages installed before it go to the buildcache, so that a rerun
    // builds only what is left. The same push, under the same lock, as after a whole install.
    keepStep("keep", "install", spackCommands.push(paths, signing?.fingerprint), input.pushLock, signs),
    // Pushes update the buildcache index: one writer at a time per buildcache.
    pushStep("push", "push to the buildcache", paths, input),
  );
  if (!input.warm) {
    steps.push(
      { id: "view", title: "regenerate the view", argv: spackCommands.viewRegenerate(paths) },
      { id: "find", title: "record installed specs", argv: spackCommands.findJson(paths), captureStdout: "specs.json" },
    );
  }
  return steps;
}

/**
 * The compiler's steps. An OS compiler is only found. A compiler Spack builds is built first, in an environment of
 * its own, for the family's generic target (it runs on the build host, whatever the stack's target), pushed to the
 * buildcache so the next build reuses it, and then registered in the stack's environment from its view.
 */
function compilerSteps(input: StepsInput): Step[] {
  const { stack, paths, compilerPaths } = input;
  if (stack.compiler.kind !== "spack") {
    return [{ id: "compiler", title: "set up the compiler", argv: spackCommands.compilerFind(paths) }];
  }
  const push = spackCommands.push(compilerPaths, input.signing?.fingerprint);
  return [
    {
      id: "compiler-install",
      title: `build the compiler ${stack.compiler.spec}`,
      argv: spackCommands.install(compilerPaths, input.jobs),
    },
    keepStep("compiler-keep", "compiler-install", push, input.pushLock, signsOf(input)),
    pushStep("compiler-push", "push the compiler to the buildcache", compilerPaths, input),
    { id: "compiler-view", title: "make the compiler's view", argv: spackCommands.viewRegenerate(compilerPaths) },
    {
      id: "compiler",
      title: "register the compiler",
      argv: spackCommands.compilerFind(paths, [`${compilerPaths.viewRoot}/bin`]),
    },
  ];
}

/** A push of an environment's installed packages to the buildcache, under its push lock, signed when it is signed. */
function pushStep(id: StepId, title: string, paths: SpackPaths, input: StepsInput): Step {
  return {
    id,
    title,
    argv: spackCommands.push(paths, input.signing?.fingerprint),
    lock: input.pushLock,
    ...signsOf(input),
  };
}

function signsOf(input: StepsInput): { secretKey?: true } {
  return input.signing === undefined ? {} : { secretKey: true };
}

/**
 * The step that runs only after `failed` failed: a push of what is installed (Spack pushes the installed packages of
 * a partly installed environment, and says which were not installed). It updates the index under the buildcache's
 * push lock, like every push; nothing is pushed while packages build (no `autopush`), so concurrent targets never
 * write a path buildcache's index at once, and no package build runs with the signing key or the registry's
 * credentials at hand.
 */
function keepStep(id: StepId, failed: StepId, argv: string[], lock: string, signs: { secretKey?: true }): Step {
  return {
    id,
    title: "keep what was installed before the failure (push to the buildcache)",
    argv,
    lock,
    afterFailureOf: failed,
    ...signs,
  };
}

/**
 * One base class for every error the factory reports to a user. The CLI entry point is the only place
 * that maps these to exit codes; everything else throws.
 */
export class FactoryError extends Error {
  readonly exitCode: number;
  readonly hint: string | undefined;
  constructor(message: string, options: { exitCode?: number; hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.exitCode = options.exitCode ?? 1;
    this.hint = options.hint;
  }
}

/** Bad user input: a stack file, a flag, a target name. Exit code 2. */
export class InputError extends FactoryError {
  constructor(message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, { ...options, exitCode: 2 });
  }
}

/** A stack file with one or more problems; every issue is listed, each with file:line:column and a dotted path. */
export class ConfigError extends InputError {
  readonly issues: readonly string[];
  constructor(file: string, issues: readonly string[]) {
    super(
      `${file}: ${issues.length} problem${issues.length === 1 ? "" : "s"}\n${issues.map((i) => `  ${i}`).join("\n")}`,
    );
    this.issues = issues;
  }
}

/** The Docker engine is missing, refused a request, or failed a build. */
export class DockerError extends FactoryError {}

/** A step of a target's build failed inside its container. */
export class BuildError extends FactoryError {}

/** The run was interrupted (SIGINT/SIGTERM). Exit code 130. */
export class CancelledError extends FactoryError {
  constructor(message = "interrupted") {
    super(message, { exitCode: 130 });
  }
}

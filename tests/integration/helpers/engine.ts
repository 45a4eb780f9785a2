import { connectEngine, imageExists, type ConnectOptions, type Engine } from "../../../src/docker/index.js";

/** The local base image integration tests build on (made by scripts/make-test-image.sh; never pulled). */
export const TEST_IMAGE = process.env.STACK_FACTORY_TEST_IMAGE ?? "stack-factory-test/debian:bookworm";

/**
 * Connects to the Docker engine. Integration tests never skip: without an engine they fail, in CI and
 * elsewhere, with a message saying how to start one.
 */
export async function requireEngine(options: ConnectOptions = {}): Promise<Engine> {
  try {
    return await connectEngine(options);
  } catch (error) {
    const where = process.env.CI ? " (CI is set: the job must provide an engine)" : "";
    throw new Error(
      `integration tests need a Docker engine${where}: ${(error as Error).message}; start one with scripts/ensure-docker.sh`,
      { cause: error },
    );
  }
}

/** Fails unless the local test base image exists. */
export async function requireTestImage(engine: Engine): Promise<string> {
  if (!(await imageExists(engine, TEST_IMAGE))) {
    throw new Error(`integration tests need the local image ${TEST_IMAGE}; make it with scripts/make-test-image.sh`);
  }
  return TEST_IMAGE;
}

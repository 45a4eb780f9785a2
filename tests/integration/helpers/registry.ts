import { readFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { parse } from "yaml";

/** The loopback registry integration tests use as an OCI buildcache (scripts/ensure-registry.sh starts it). */
export const TEST_REGISTRY = process.env["STACK_FACTORY_TEST_REGISTRY"] ?? "127.0.0.1:5000";
export const TEST_REGISTRY_CREDENTIALS =
  process.env["STACK_FACTORY_TEST_REGISTRY_CREDENTIALS"] ?? "/var/lib/stack-factory-registry/credentials.yaml";

export interface TestRegistry {
  address: string;
  credentialsFile: string;
  username: string;
  password: string;
  /** A fresh repository path for one test file, so runs never see each other's specs. */
  freshRepository(prefix: string): string;
  /** GET a registry API path with the credentials; the parsed JSON (or undefined on 404). */
  get(path: string, accept?: string): Promise<unknown>;
}

/** Fails, saying how to start one, unless the test registry answers with its credentials. */
export async function requireRegistry(): Promise<TestRegistry> {
  let username: string;
  let password: string;
  try {
    ({ username, password } = parse(await readFile(TEST_REGISTRY_CREDENTIALS, "utf8")) as {
      username: string;
      password: string;
    });
  } catch (error) {
    throw new Error(
      `integration tests need the test registry's credentials at ${TEST_REGISTRY_CREDENTIALS}; start it with scripts/ensure-registry.sh`,
      { cause: error },
    );
  }
  const auth = `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
  const get = async (path: string, accept = "application/json"): Promise<unknown> => {
    const res = await fetch(`http://${TEST_REGISTRY}${path}`, { headers: { Authorization: auth, Accept: accept } });
    if (res.status === 404) return undefined;
    if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status}`);
    return res.json();
  };
  try {
    await get("/v2/");
  } catch (error) {
    throw new Error(
      `integration tests need the registry at ${TEST_REGISTRY}: ${(error as Error).message}; start it with scripts/ensure-registry.sh`,
      {
        cause: error,
      },
    );
  }
  return {
    address: TEST_REGISTRY,
    credentialsFile: TEST_REGISTRY_CREDENTIALS,
    username,
    password,
    freshRepository: (prefix) => `sf-test/${prefix}-${randomBytes(4).toString("hex")}`,
    get,
  };
}

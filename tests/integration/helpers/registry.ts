import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { parse } from "yaml";

/**
 * The loopback registries integration tests use as OCI buildcaches (scripts/ensure-registry.sh starts them): over
 * https with a CA of its own (what a site runs, and the only way Spack pushes with credentials), and over plain
 * http for tests of what an engine's network reaches.
 */
const TLS = {
  address: process.env["STACK_FACTORY_TEST_REGISTRY"] ?? "127.0.0.1:5001",
  credentialsFile:
    process.env["STACK_FACTORY_TEST_REGISTRY_CREDENTIALS"] ?? "/var/lib/stack-factory-registry-tls/credentials.yaml",
  caFile: process.env["STACK_FACTORY_TEST_REGISTRY_CA"] ?? "/var/lib/stack-factory-registry-tls/ca.pem",
};
const PLAIN = {
  address: process.env["STACK_FACTORY_TEST_HTTP_REGISTRY"] ?? "127.0.0.1:5000",
  credentialsFile:
    process.env["STACK_FACTORY_TEST_HTTP_REGISTRY_CREDENTIALS"] ?? "/var/lib/stack-factory-registry/credentials.yaml",
};

export interface TestRegistry {
  address: string;
  /** `https` or `http`. */
  scheme: "https" | "http";
  /** The CA file of the https registry (factory settings `buildcache_ca:`, the stand-in's SSL_CERT_FILE). */
  caFile?: string;
  credentialsFile: string;
  username: string;
  password: string;
  /** The buildcache URL of a repository: `oci://` over https, `oci+http://` over http. */
  ociUrl(repository: string): string;
  /** A fresh repository path for one test file, so runs never see each other's specs. */
  freshRepository(prefix: string): string;
  /** GET a registry API path with the credentials; the parsed JSON (or undefined on 404). */
  get(path: string, accept?: string): Promise<unknown>;
  /** GET a registry API path with the credentials; the bytes (a blob). */
  getBytes(path: string): Promise<Buffer>;
}

/** Fails, saying how to start one, unless the test registry answers with its credentials. */
export async function requireRegistry(options: { plainHttp?: boolean } = {}): Promise<TestRegistry> {
  const plain = options.plainHttp === true;
  const where = plain ? PLAIN : TLS;
  const scheme = plain ? "http" : "https";
  let username: string;
  let password: string;
  let ca: string | undefined;
  try {
    ({ username, password } = parse(await readFile(where.credentialsFile, "utf8")) as {
      username: string;
      password: string;
    });
    ca = plain ? undefined : await readFile(TLS.caFile, "utf8");
  } catch (error) {
    throw new Error(
      `integration tests need the test registry's credentials at ${where.credentialsFile}${plain ? "" : ` and its CA at ${TLS.caFile}`}; start it with scripts/ensure-registry.sh`,
      { cause: error },
    );
  }
  const auth = `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
  const get = async (path: string, accept = "application/json"): Promise<unknown> => {
    const { status, body } = await getUrl(
      `${scheme}://${where.address}${path}`,
      { Authorization: auth, Accept: accept },
      ca,
    );
    if (status === 404) return undefined;
    if (status < 200 || status >= 300) throw new Error(`GET ${path}: HTTP ${status}`);
    return JSON.parse(body.toString("utf8"));
  };
  try {
    await get("/v2/");
  } catch (error) {
    throw new Error(
      `integration tests need the registry at ${scheme}://${where.address}: ${(error as Error).message}; start it with scripts/ensure-registry.sh`,
      { cause: error },
    );
  }
  const getBytes = async (path: string): Promise<Buffer> => {
    const { status, body } = await getUrl(`${scheme}://${where.address}${path}`, { Authorization: auth }, ca);
    if (status < 200 || status >= 300) throw new Error(`GET ${path}: HTTP ${status}`);
    return body;
  };
  return {
    getBytes,
    address: where.address,
    scheme,
    ...(plain ? {} : { caFile: TLS.caFile }),
    credentialsFile: where.credentialsFile,
    username,
    password,
    ociUrl: (repository) => `${plain ? "oci+http" : "oci"}://${where.address}/${repository}`,
    freshRepository: (prefix) => `sf-test/${prefix}-${randomBytes(4).toString("hex")}`,
    get,
  };
}

function getUrl(url: string, headers: Record<string, string>, ca?: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith("https:") ? httpsRequest : httpRequest)(
      url,
      { headers, timeout: 10_000, ...(ca === undefined ? {} : { ca }) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`GET ${url}: no answer within 10 s`)));
    req.on("error", reject);
    req.end();
  });
}

/**
 * One GET of a registry's HTTP API from this host, trusting the system's CAs and, when the factory settings name
 * one, the registry's own CA (`buildcache_ca`): fetch() cannot be given a CA. Follows a few redirects (a registry
 * may send blobs to its storage), and sends the login to the registry's own host only.
 */
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { rootCertificates } from "node:tls";

export interface RegistryResponse {
  status: number;
  header(name: string): string | undefined;
  /** The body as text (at most `maxBytes`). */
  text(): Promise<string>;
}

export interface RegistryGetOptions {
  headers: Record<string, string>;
  ca?: string;
  signal?: AbortSignal;
  /** Give up, saying so, when no answer came within this time. */
  timeoutMs?: number;
  maxBytes?: number;
}

const MAX_REDIRECTS = 5;

export async function registryGet(url: string, options: RegistryGetOptions): Promise<RegistryResponse> {
  const timeout = options.timeoutMs === undefined ? undefined : AbortSignal.timeout(options.timeoutMs);
  const signals = [options.signal, timeout].filter((s): s is AbortSignal => s !== undefined);
  const signal = signals.length === 0 ? undefined : AbortSignal.any(signals);
  try {
    return await follow(url, { ...options, ...(signal === undefined ? {} : { signal }) });
  } catch (error) {
    if (timeout?.aborted === true && options.signal?.aborted !== true)
      throw new Error(`no answer within ${options.timeoutMs} ms`, { cause: error });
    throw error;
  }
}

async function follow(url: string, options: RegistryGetOptions): Promise<RegistryResponse> {
  let target = new URL(url);
  let headers = options.headers;
  for (let hop = 0; ; hop++) {
    const res = await once(target, headers, options);
    const location = res.headers.location;
    if (res.statusCode !== undefined && res.statusCode >= 300 && res.statusCode < 400 && location !== undefined) {
      res.resume();
      if (hop === MAX_REDIRECTS) throw new Error(`more than ${MAX_REDIRECTS} redirects from ${url}`);
      const next = new URL(location, target);
      if (next.protocol !== "https:" && next.protocol !== "http:") throw new Error(`a redirect to ${next.protocol}`);
      if (next.host !== target.host) headers = withoutAuthorization(headers);
      target = next;
      continue;
    }
    return response(res, options.maxBytes ?? 64 * 1024 * 1024);
  }
}

function withoutAuthorization(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([k]) => k.toLowerCase() !== "authorization"));
}

function once(url: URL, headers: Record<string, string>, options: RegistryGetOptions): Promise<IncomingMessage> {
  const https = url.protocol === "https:";
  return new Promise((resolve, reject) => {
    const req = (https ? httpsRequest : httpRequest)(
      url,
      {
        method: "GET",
        headers,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
        ...(https && options.ca !== undefined ? { ca: [...rootCertificates, options.ca] } : {}),
      },
      resolve,
    );
    req.on("error", reject);
    req.end();
  });
}

function response(res: IncomingMessage, maxBytes: number): RegistryResponse {
  return {
    status: res.statusCode ?? 0,
    header: (name) => {
      const value = res.headers[name.toLowerCase()];
      return Array.isArray(value) ? value.join(", ") : value;
    },
    text: async () => {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > maxBytes) {
          res.destroy();
          throw new Error(`an answer larger than ${maxBytes} bytes`);
        }
        chunks.push(chunk);
      }
      return Buffer.concat(chunks).toString("utf8");
    },
  };
}

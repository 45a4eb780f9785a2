/**
 * One GET of a registry's API from this host (doctor's check): over https it trusts the system's CAs and, when the
 * factory settings name one, the registry's own CA (`buildcache_ca`). Resolves with the HTTP status.
 */
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { rootCertificates } from "node:tls";

export function registryStatus(
  url: string,
  headers: Record<string, string>,
  options: { ca?: string; timeoutMs?: number } = {},
): Promise<number> {
  const https = url.startsWith("https:");
  return new Promise((resolve, reject) => {
    const req = (https ? httpsRequest : httpRequest)(
      url,
      {
        method: "GET",
        headers,
        timeout: options.timeoutMs ?? 5000,
        ...(https && options.ca !== undefined ? { ca: [...rootCertificates, options.ca] } : {}),
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer within ${options.timeoutMs ?? 5000} ms`)));
    req.on("error", reject);
    req.end();
  });
}

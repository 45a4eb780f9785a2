/**
 * Checking an ssh engine's host key against OpenSSH known_hosts files, as `ssh` does with StrictHostKeyChecking=yes:
 * the factory never talks to an engine whose key it has not been told (ssh2, which dockerode uses, accepts any key
 * unless told otherwise). Pure: the files' text is passed in.
 *
 * Understood: plain and hashed (`|1|salt|hash`) host fields, comma-separated patterns with `*`, `?` and `!`
 * negation, `[host]:port` for ports other than 22, and `@revoked` lines. `@cert-authority` lines are not (host
 * certificates are not checked): such a host is reported unknown.
 */
import { createHmac } from "node:crypto";

export type HostKeyVerdict =
  | { kind: "known" }
  | { kind: "revoked"; where: string }
  | { kind: "changed"; where: string }
  | { kind: "unknown" };

interface Line {
  marker?: string;
  hosts: string;
  keyType: string;
  key: Buffer;
  where: string;
}

/** The name ssh looks a host up by: `host`, or `[host]:port` when the port is not 22. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function parse(text: string, file: string): Line[] {
  const out: Line[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const fields = line.split(/\s+/);
    const marker = fields[0]?.startsWith("@") ? fields.shift()?.slice(1) : undefined;
    const [hosts, keyType, key] = fields;
    if (hosts === undefined || keyType === undefined || key === undefined) return;
    out.push({
      ...(marker === undefined ? {} : { marker }),
      hosts,
      keyType,
      key: Buffer.from(key, "base64"),
      where: `${file}:${i + 1}`,
    });
  });
  return out;
}

/**
 * ssh's `*` and `?` glob, case-insensitive, without backtracking: the classic two-pointer match that remembers only
 * the last `*` (a pattern of many `*` is matched in time proportional to pattern × name, not exponential).
 */
export function globMatches(pattern: string, name: string): boolean {
  const p = pattern.toLowerCase();
  const n = name.toLowerCase();
  let pi = 0;
  let ni = 0;
  let star = -1;
  let resume = 0;
  while (ni < n.length) {
    if (pi < p.length && (p[pi] === "?" || (p[pi] !== "*" && p[pi] === n[ni]))) {
      pi += 1;
      ni += 1;
    } else if (pi < p.length && p[pi] === "*") {
      star = pi;
      resume = ni;
      pi += 1;
    } else if (star >= 0) {
      pi = star + 1;
      resume += 1;
      ni = resume;
    } else {
      return false;
    }
  }
  while (pi < p.length && p[pi] === "*") pi += 1;
  return pi === p.length;
}

/** Whether a line's host field names `name`. */
function hostMatches(field: string, name: string): boolean {
  if (field.startsWith("|1|")) {
    const [, , salt, hash] = field.split("|");
    if (salt === undefined || hash === undefined) return false;
    const mac = createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest("base64");
    return mac === hash;
  }
  let matched = false;
  for (const pattern of field.split(",")) {
    if (pattern.startsWith("!")) {
      if (globMatches(pattern.slice(1), name)) return false;
    } else if (globMatches(pattern, name)) {
      matched = true;
    }
  }
  return matched;
}

/** The key type written inside an ssh public key blob (its first string). */
export function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) return "";
  const length = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + length).toString("latin1");
}

/** What the known_hosts files (file name → text) say of `key` presented by host:port. */
export function checkHostKey(files: Record<string, string>, host: string, port: number, key: Buffer): HostKeyVerdict {
  const name = knownHostsName(host, port);
  const lines = Object.entries(files).flatMap(([file, text]) => parse(text, file));
  const revoked = lines.find((l) => l.marker === "revoked" && l.key.equals(key));
  if (revoked !== undefined) return { kind: "revoked", where: revoked.where };
  const forHost = lines.filter((l) => l.marker === undefined && hostMatches(l.hosts, name));
  if (forHost.some((l) => l.key.equals(key))) return { kind: "known" };
  const type = keyTypeOf(key);
  const other = forHost.find((l) => l.keyType === type);
  if (other !== undefined) return { kind: "changed", where: other.where };
  return { kind: "unknown" };
}

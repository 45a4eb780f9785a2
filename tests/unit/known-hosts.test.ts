import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { checkHostKey, keyTypeOf, knownHostsName } from "../../src/docker/known-hosts.js";

/** An ssh public key blob: its type, then a body (what a host presents, and known_hosts holds in base64). */
function blob(type: string, fill: number): Buffer {
  const t = Buffer.from(type);
  const body = Buffer.alloc(32, fill);
  const out = Buffer.alloc(8 + t.length + body.length);
  out.writeUInt32BE(t.length, 0);
  t.copy(out, 4);
  out.writeUInt32BE(body.length, 4 + t.length);
  body.copy(out, 8 + t.length);
  return out;
}
const KEY = blob("ssh-ed25519", 1);
const OTHER = blob("ssh-ed25519", 2);
const RSA = blob("ssh-rsa", 3);
const line = (hosts: string, key: Buffer) => `${hosts} ${keyTypeOf(key)} ${key.toString("base64")}`;
const hashed = (name: string) => {
  const salt = Buffer.alloc(20, 7);
  return `|1|${salt.toString("base64")}|${createHmac("sha1", salt).update(name).digest("base64")}`;
};

describe("an ssh engine's host key against known_hosts", () => {
  it("names hosts as ssh does: [host]:port unless the port is 22", () => {
    expect(knownHostsName("grace01", 22)).toBe("grace01");
    expect(knownHostsName("127.0.0.1", 2222)).toBe("[127.0.0.1]:2222");
    expect(keyTypeOf(KEY)).toBe("ssh-ed25519");
  });

  it("knows a host by a plain name, a pattern list, a wildcard or a hashed name", () => {
    for (const hosts of ["grace01", "login,grace01", "grace*", "gr?ce01", hashed("grace01")]) {
      expect(checkHostKey({ f: line(hosts, KEY) }, "grace01", 22, KEY), hosts).toEqual({ kind: "known" });
    }
    expect(checkHostKey({ f: line(hashed("[grace01]:2222"), KEY) }, "grace01", 2222, KEY)).toEqual({
      kind: "known",
    });
  });

  it("a key for another host, another port, or a negated pattern does not count", () => {
    for (const hosts of ["grace02", "[grace01]:2222", "grace*,!grace01", hashed("grace02")]) {
      expect(checkHostKey({ f: line(hosts, KEY) }, "grace01", 22, KEY), hosts).toEqual({ kind: "unknown" });
    }
    expect(checkHostKey({}, "grace01", 22, KEY)).toEqual({ kind: "unknown" });
    expect(checkHostKey({ f: "# comment\n\ngarbage\n" }, "grace01", 22, KEY)).toEqual({ kind: "unknown" });
  });

  it("a host that presents another key of a type known for it has changed; a key of another type is unknown", () => {
    const files = { "/k": `# site hosts\n${line("grace01", KEY)}\n` };
    expect(checkHostKey(files, "grace01", 22, OTHER)).toEqual({ kind: "changed", where: "/k:2" });
    expect(checkHostKey(files, "grace01", 22, RSA)).toEqual({ kind: "unknown" });
  });

  it("a revoked key is refused even where another line knows it; cert-authority lines are not trusted", () => {
    const files = { a: line("grace01", KEY), b: `@revoked * ${keyTypeOf(KEY)} ${KEY.toString("base64")}` };
    expect(checkHostKey(files, "grace01", 22, KEY)).toEqual({ kind: "revoked", where: "b:1" });
    expect(checkHostKey({ c: `@cert-authority ${line("*", KEY)}` }, "grace01", 22, KEY)).toEqual({ kind: "unknown" });
  });
});

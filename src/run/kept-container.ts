import type { Engine } from "../docker/index.js";

/** A word the shell passes through unchanged, else single-quoted. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./^~-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * How to enter a container kept for inspection and how to remove it. Pure. The default engine (reached through
 * DOCKER_HOST or the local socket, no URL given) keeps the plain `docker exec`; an engine reached by URL is named, and
 * both commands carry its URL (`docker -H URL`, `clean --engine URL`), so they reach the engine the container is on.
 */
export function keptContainerHint(
  engine: Pick<Engine, "where" | "name" | "tlsDir">,
  containerId: string,
  runId: string,
): string {
  const id = containerId.slice(0, 12);
  // `where` is the endpoint URL for an engine reached by URL; for the default engine it is a socket path or DOCKER_HOST=...
  if (!/^(unix|tcp|ssh):\/\//.test(engine.where))
    return `container kept for inspection: docker exec -it ${id} bash (remove it with stack-factory clean --run ${runId})`;
  const url = shellWord(engine.where);
  if (engine.tlsDir !== undefined) {
    // TLS needs the certificate files: docker takes them as flags, clean takes them from the factory settings file.
    const file = (name: string) => shellWord(`${engine.tlsDir}/${name}`);
    return (
      `container kept for inspection on engine ${engine.name}: docker -H ${url} --tlsverify --tlscacert ${file("ca.pem")} ` +
      `--tlscert ${file("cert.pem")} --tlskey ${file("key.pem")} exec -it ${id} bash ` +
      `(remove it with stack-factory clean --run ${runId} --factory <the factory settings file>)`
    );
  }
  return (
    `container kept for inspection on engine ${engine.name}: docker -H ${url} exec -it ${id} bash ` +
    `(remove it with stack-factory clean --run ${runId} --engine ${url})`
  );
}

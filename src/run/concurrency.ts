/** Memory one build container is assumed to need when no --memory limit is given. */
const MEMORY_PER_BUILD = 4 * 1024 ** 3;

/**
 * Containers at once and jobs per container, from the host's cores and memory unless given. Pure: the caller
 * passes the host's figures.
 */
export function chooseConcurrency(input: {
  targets: number;
  cores: number;
  memoryBytes: number;
  concurrency?: number;
  jobs?: number;
  memoryLimit?: number;
}): { concurrency: number; jobs: number; reason: string } {
  const perBuild = input.memoryLimit ?? MEMORY_PER_BUILD;
  const byMemory = Math.max(1, Math.floor(input.memoryBytes / perBuild));
  const byCores = Math.max(1, Math.floor(input.cores / 2));
  const concurrency = input.concurrency ?? Math.max(1, Math.min(input.targets, byCores, byMemory));
  const jobs = input.jobs ?? Math.max(1, Math.floor(input.cores / concurrency));
  const reason =
    input.concurrency !== undefined
      ? "as given"
      : `from ${input.cores} cores and ${(input.memoryBytes / 1024 ** 3).toFixed(0)} GiB (${byCores} by cores, ${byMemory} by memory, ${input.targets} targets)`;
  return { concurrency, jobs, reason };
}

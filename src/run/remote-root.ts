/**
 * Preparing the cache root of an engine on another host, through that engine alone (the factory has no other way
 * onto its host): one short-lived container of the builder image, run as root with the cache root mounted (the
 * engine creates it when missing), makes the writable cache directories and gives them to the build user, clears
 * poisoned package-repository clones from Spack's user caches, and receives the read-only trees this host holds
 * (Spack, spack-packages, a stack's repositories and mirrors) through the engine's archive API.
 *
 * Each tree lands in `synced/<kind>-<name>-<digest>/`, named by a digest of what it holds, and is never changed once
 * there: a tree is unpacked under `synced/.incoming/` and renamed into place complete, so a build of another run
 * that mounts an older tree keeps it intact, and a tree already there is not sent again.
 */
import { basename, join, posix } from "node:path";
import { CACHE_LAYOUT } from "../cache/layout.js";
import { packTree, startContainer, type BuildContainer } from "../docker/index.js";
import { BuildError } from "../errors.js";
import { listTree, treeDigest, type TreeEntry } from "../fs/tree.js";
import type { RemoteRootNeeds } from "../plan/placement.js";
import type { Reporter } from "../ui/reporter.js";
import type { RunEngine } from "./engines.js";
import { containerUser, hostPathOf } from "./host-caches.js";

/** Where the engine's cache root is mounted in the preparing container. */
const ROOT = "/sf/remote-root";

/** Makes each directory (relative to the root) and gives it to uid:gid unless it is theirs already. */
const MAKE_DIRS = `set -eu
root=$1; owner=$2; shift 2
for d in "$@"; do
  mkdir -p -- "$root/$d"
  [ "$(stat -c %u:%g -- "$root/$d")" = "$owner" ] || chown -- "$owner" "$root/$d"
done`;

/** Removes package_repos/<hash> clones with a .git but no commit (see user-cache.ts), printing each one's name. */
const CLEAR_POISONED = `set -eu
root=$1; shift
for d in "$@"; do
  for r in "$root/$d"/package_repos/*/; do
    [ -d "$r.git" ] || continue
    git -c safe.directory='*' -C "$r" rev-parse --verify --quiet HEAD >/dev/null 2>&1 && continue
    rm -rf -- "$r"
    basename -- "$r"
  done
done`;

/** Puts a received tree into place, unless another run put the same one there first. */
const PLACE_TREE = `set -eu
incoming=$1; dest=$2
if [ -e "$dest" ]; then rm -rf -- "$incoming"; else mv -T -- "$incoming" "$dest"; fi`;

/**
 * Marks the trees this run mounts as used now, then removes trees no run has used for `days` days (with their marks):
 * on a host the factory reaches only through its engine, nothing else would ever clear them.
 */
const MARK_AND_PRUNE = `set -eu
synced=$1; days=$2; shift 2
mkdir -p -- "$synced/.used"
for n in "$@"; do : > "$synced/.used/$n"; done
find "$synced/.used" -mindepth 1 -maxdepth 1 -type f -mtime "+$days" | while IFS= read -r mark; do
  n=\${mark##*/}
  rm -rf -- "$synced/$n"
  rm -f -- "$mark"
  echo "$n"
done`;

/** Trees unused for this many days are removed from an engine's cache root. */
export const SYNCED_TREE_DAYS = 14;

/** Received trees of runs that died mid-way, a day old or more. */
const CLEAR_STALE_INCOMING = `set -eu
dir=$1
[ -d "$dir" ] || exit 0
find "$dir" -mindepth 1 -maxdepth 1 -mmin +1440 -exec rm -rf -- {} +`;

export interface RemoteRootResult {
  /** Engine-host path of each sent tree, by the plan's mount host (Placement.synced). */
  synced: Map<string, string>;
  /** Trees sent this time (the others were there already). */
  sent: string[];
  bytesSent: number;
}

/** A tree of this host as it is sent: its entries and its name under `synced/`. */
export interface SentTree {
  /** The plan's mount host (Placement.synced's key). */
  host: string;
  /** Where it is on this host. */
  from: string;
  entries: TreeEntry[];
  name: string;
}

/** Lists and names each tree once per run, however many engines it is sent to. */
export type TreeLister = (content: RemoteRootNeeds["contents"][number]) => Promise<SentTree>;

/** A TreeLister for trees whose relative mounts (the Spack and spack-packages clones) are under `sourceRoot`. */
export function treeLister(sourceRoot: string): TreeLister {
  const listed = new Map<string, Promise<SentTree>>();
  return (c) => {
    let tree = listed.get(c.host);
    if (tree === undefined) {
      tree = (async () => {
        const from = hostPathOf(c, sourceRoot);
        const entries = await listTree(from);
        const name = `${c.kind}-${slug(basename(from))}-${treeDigest(entries).slice(0, 20)}`;
        return { host: c.host, from, entries, name };
      })();
      listed.set(c.host, tree);
    }
    return tree;
  };
}

export interface PrepareRemoteOptions {
  /** The builder image, present on that engine. */
  image: string;
  /** Lists the trees to send (one lister for every engine of a run). */
  trees: TreeLister;
  reporter: Reporter;
  signal: AbortSignal;
}

/** Prepare `runEngine`'s cache root for targets needing `needs`. Throws BuildError naming the engine. */
export async function prepareRemoteRoot(
  runEngine: RunEngine,
  needs: RemoteRootNeeds,
  options: PrepareRemoteOptions,
): Promise<RemoteRootResult> {
  const { signal } = options;
  const engine = runEngine.engine;
  const user = containerUser();

  // Digests first: a tree that cannot be read fails before anything is started there.
  const trees = await Promise.all(needs.contents.map(options.trees));

  const container = await startContainer(engine, {
    image: options.image,
    user: "0:0",
    mounts: [{ host: runEngine.cacheRoot, container: ROOT, readOnly: false, create: true }],
    labels: { "stack-factory.purpose": "prepare-cache-root" },
    signal,
  });
  try {
    const run = rootRunner(container, runEngine, signal);
    await run("making the cache directories", [
      "/bin/sh",
      "-c",
      MAKE_DIRS,
      "sh",
      ROOT,
      `${user.uid}:${user.gid}`,
      ...needs.dirs,
    ]);
    if (needs.userCaches.length > 0) await clearUserCaches(run, runEngine, needs.userCaches, options.reporter);
    const incomingDir = posix.join(ROOT, posix.dirname(CACHE_LAYOUT.incoming(engine.runId, 0)));
    await run("clearing stale received trees", ["/bin/sh", "-c", CLEAR_STALE_INCOMING, "sh", incomingDir]);

    const { synced, sent, bytesSent } = await sendTrees(container, run, runEngine, trees, options);
    await markTreesInUse(run, runEngine, trees, options.reporter);
    return { synced, sent, bytesSent };
  } finally {
    await container.remove();
  }
}

/** Runs a command in the cache root's container: its stdout, or a BuildError naming the engine, what and stderr. */
type RootRun = (what: string, argv: string[]) => Promise<string>;

function rootRunner(container: BuildContainer, runEngine: RunEngine, signal: AbortSignal): RootRun {
  return async (what, argv) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const { exitCode } = await container.exec(argv, {
      signal,
      onStdout: (c) => out.push(c),
      onStderr: (c) => err.push(c),
    });
    if (exitCode !== 0) {
      const detail = `exit code ${exitCode}: ${Buffer.concat(err).toString("utf8").trim()}`;
      throw new BuildError(`engine ${runEngine.name}: ${what} under its cache root ${runEngine.cacheRoot}: ${detail}`);
    }
    return Buffer.concat(out).toString("utf8");
  };
}

/** Removes failed package repository clones from Spack's user caches, saying which. */
async function clearUserCaches(
  run: RootRun,
  runEngine: RunEngine,
  userCaches: readonly string[],
  reporter: Reporter,
): Promise<void> {
  const cleared = await run("clearing Spack's user caches", [
    "/bin/sh",
    "-c",
    CLEAR_POISONED,
    "sh",
    ROOT,
    ...userCaches,
  ]);
  for (const name of cleared.split("\n").filter((l) => l !== "")) {
    reporter.emit({
      type: "info",
      message: `engine ${runEngine.name}: removed a failed package repository clone (package_repos/${name}) from Spack's user cache`,
    });
  }
}

/** Marks the run's trees as used now and removes received trees unused for SYNCED_TREE_DAYS, saying which. */
async function markTreesInUse(
  run: RootRun,
  runEngine: RunEngine,
  trees: readonly SentTree[],
  reporter: Reporter,
): Promise<void> {
  const pruned = await run("marking the trees in use", [
    "/bin/sh",
    "-c",
    MARK_AND_PRUNE,
    "sh",
    posix.join(ROOT, CACHE_LAYOUT.synced("")),
    String(SYNCED_TREE_DAYS),
    ...trees.map((t) => t.name),
  ]);
  for (const name of pruned.split("\n").filter((l) => l !== "")) {
    reporter.emit({
      type: "info",
      message: `engine ${runEngine.name}: removed ${name}, unused for ${SYNCED_TREE_DAYS} days`,
    });
  }
}

/** The trees that engine lacks, sent and put into place under its cache root; where each is there, by host path. */
async function sendTrees(
  container: BuildContainer,
  run: RootRun,
  runEngine: RunEngine,
  trees: readonly SentTree[],
  options: PrepareRemoteOptions,
): Promise<RemoteRootResult> {
  const { signal, reporter } = options;
  const synced = new Map<string, string>();
  const sent: string[] = [];
  let bytesSent = 0;
  for (const [n, tree] of trees.entries()) {
    const rel = CACHE_LAYOUT.synced(tree.name);
    synced.set(tree.host, join(runEngine.cacheRoot, rel));
    if ((await container.exec(["test", "-d", posix.join(ROOT, rel)], { signal })).exitCode === 0) continue;
    const incoming = posix.join(ROOT, CACHE_LAYOUT.incoming(runEngine.engine.runId, n));
    await run("making a directory for a received tree", ["mkdir", "-p", "--", incoming]);
    reporter.emit({ type: "info", message: `engine ${runEngine.name}: sending ${tree.from} (${tree.name})` });
    await container.putArchive(incoming, packTree(tree.entries));
    const placeArgv = ["/bin/sh", "-c", PLACE_TREE, "sh", incoming, posix.join(ROOT, rel)];
    await run("putting a received tree into place", placeArgv);
    sent.push(tree.from);
    bytesSent += tree.entries.reduce((sum, e) => sum + e.size, 0);
  }
  return { synced, sent, bytesSent };
}

function slug(text: string): string {
  return text.replace(/[^A-Za-z0-9._-]+/g, "-").slice(0, 40) || "tree";
}

#!/usr/bin/env node
// Fails when the folders under src/ import each other in a cycle (a → b → … → a), or when a folder is named
// like build output. Folders are the first path segment under src/; files directly in src/ form the folder ".".
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const src = resolve(process.argv[2] ?? "src");
const BUILD_OUTPUT_NAMES = new Set(["build", "dist", "out", "target", "lib-cov"]);

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith(".ts") ? [path] : [];
  });
}
const folderOf = (path) => {
  const parts = relative(src, path).split("/");
  return parts.length > 1 ? parts[0] : ".";
};

const graph = new Map();
const edgesSeen = new Map();
for (const file of files(src)) {
  const from = folderOf(file);
  if (!graph.has(from)) graph.set(from, new Set());
  const text = readFileSync(file, "utf8");
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+"(\.[^"]+)"/g)) {
    const target = resolve(dirname(file), m[1]);
    const to = folderOf(target);
    if (to === from) continue;
    graph.get(from).add(to);
    edgesSeen.set(`${from}->${to}`, `${relative(src, file)} imports ${m[1]}`);
  }
}

const problems = [];
for (const folder of graph.keys()) {
  if (BUILD_OUTPUT_NAMES.has(folder)) problems.push(`src/${folder}/ is named like build output`);
}

// Tarjan's strongly connected components: any component of more than one folder is a cycle.
let index = 0;
const stack = [];
const info = new Map();
function strong(v) {
  info.set(v, { index, low: index, onStack: true });
  index += 1;
  stack.push(v);
  for (const w of graph.get(v) ?? []) {
    if (!info.has(w)) {
      strong(w);
      info.get(v).low = Math.min(info.get(v).low, info.get(w).low);
    } else if (info.get(w).onStack) {
      info.get(v).low = Math.min(info.get(v).low, info.get(w).index);
    }
  }
  if (info.get(v).low === info.get(v).index) {
    const component = [];
    let w;
    do {
      w = stack.pop();
      info.get(w).onStack = false;
      component.push(w);
    } while (w !== v);
    if (component.length > 1) {
      const set = new Set(component);
      const edges = [...edgesSeen].filter(([k]) => {
        const [a, b] = k.split("->");
        return set.has(a) && set.has(b);
      });
      problems.push(
        `import cycle between src/ folders ${component.sort().join(", ")}:\n${edges.map(([, why]) => `    ${why}`).join("\n")}`,
      );
    }
  }
}
for (const v of graph.keys()) if (!info.has(v)) strong(v);

if (problems.length > 0) {
  for (const p of problems) process.stderr.write(`check-imports: ${p}\n`);
  process.exit(1);
}
process.stdout.write(`check-imports: ${graph.size} folders under src/, no cycles\n`);

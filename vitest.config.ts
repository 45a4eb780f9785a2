import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      // Fast: pure planning, parsing and rendering, at most a quick git or tar; no node, npm, gcc or Docker.
      { test: { name: "unit", include: ["tests/unit/**/*.test.ts"], testTimeout: 20_000 } },
      // Real host programs (node, gcc, python3, gpg, GNU tar), no Docker.
      { test: { name: "host", include: ["tests/host/**/*.test.ts"], testTimeout: 60_000 } },
      {
        test: {
          name: "integration",
          include: ["tests/integration/**/*.test.ts"],
          testTimeout: 600_000,
          hookTimeout: 900_000,
          fileParallelism: false,
        },
      },
    ],
  },
});

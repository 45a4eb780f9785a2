import { describe, expect, it } from "vitest";
import { chooseConcurrency } from "../../src/run/concurrency.js";

const GiB = 1024 ** 3;

describe("chooseConcurrency", () => {
  it("is bounded by targets, cores and memory, and shares the cores between containers", () => {
    expect(chooseConcurrency({ targets: 5, cores: 32, memoryBytes: 256 * GiB })).toMatchObject({
      concurrency: 5,
      jobs: 6,
    });
    expect(chooseConcurrency({ targets: 5, cores: 4, memoryBytes: 256 * GiB })).toMatchObject({
      concurrency: 2,
      jobs: 2,
    });
    expect(chooseConcurrency({ targets: 5, cores: 64, memoryBytes: 8 * GiB })).toMatchObject({
      concurrency: 2,
      jobs: 32,
    });
    expect(chooseConcurrency({ targets: 1, cores: 2, memoryBytes: 1 * GiB })).toMatchObject({
      concurrency: 1,
      jobs: 2,
    });
  });

  it("keeps what the user gave", () => {
    expect(chooseConcurrency({ targets: 3, cores: 2, memoryBytes: GiB, concurrency: 3, jobs: 1 })).toMatchObject({
      concurrency: 3,
      jobs: 1,
      reason: "as given",
    });
    expect(chooseConcurrency({ targets: 8, cores: 16, memoryBytes: 64 * GiB, memoryLimit: 16 * GiB })).toMatchObject({
      concurrency: 4,
    });
  });
});

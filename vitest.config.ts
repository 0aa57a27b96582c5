import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Integration tests start real brokers and databases on port 0; two cores here.
    maxWorkers: 2,
    globalSetup: [],
  },
});

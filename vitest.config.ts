import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

const src = (path: string) => fileURLToPath(new URL(path, import.meta.url))

// Tests run against the TypeScript sources of every workspace package, so a
// change is tested without a build step; `npm test` still type-checks first.
export default defineConfig({
  resolve: {
    alias: {
      "@gcs-bridge/protocol": src("./packages/protocol/src/index.ts"),
      "@gcs-bridge/transport": src("./packages/transport/src/index.ts"),
      "@gcs-bridge/runtime": src("./packages/runtime/src/index.ts"),
      "@gcs-bridge/guest": src("./packages/guest/src/index.ts"),
      "@gcs-bridge/native": src("./native/lib/index.ts")
    }
  },
  test: {
    include: ["packages/*/test/**/*.test.ts", "native/test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: "forks",
    globalSetup: ["./test-support/tmpdirCheck.ts"],
    reporters: ["default"]
  }
})

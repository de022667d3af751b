import { spawn } from "node:child_process"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { fromReadable } from "../src/internal/stdio.js"

describe("stdio relay from a child's pipe", () => {
  it.live("keeps every byte when the child exits while the consumer is between reads", () =>
    Effect.gen(function* () {
      const size = 4 * 1024 * 1024
      // The child writes everything and exits at once; the consumer lags, so the
      // exit (and Node's flush of the child's stdio) lands between two reads.
      const child = spawn("head", ["-c", String(size), "/dev/zero"], { stdio: ["ignore", "pipe", "ignore"] })
      const total = yield* fromReadable(child.stdout).pipe(
        Stream.tap(() => Effect.sleep("2 millis")),
        Stream.runFold(
          () => 0,
          (n: number, chunk) => n + chunk.length
        )
      )
      expect(total).toBe(size)
    })
  )
})

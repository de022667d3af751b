import { spawn } from "node:child_process"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { fromReadable, ReplayBytes, ReplayTail } from "../src/internal/stdio.js"

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

describe("the replay tail of a re-dialled stream", () => {
  const bytes = (n: number, from = 0) => Uint8Array.from({ length: n }, (_, i) => (from + i) % 251)
  const joined = (parts: ReadonlyArray<Uint8Array>) => Buffer.concat(parts)

  it("holds the last bytes written, in order, across wrap-arounds and oversized chunks", () => {
    const tail = new ReplayTail(10)
    expect(tail.contents()).toEqual([])
    tail.push(bytes(4))
    expect(joined(tail.contents())).toEqual(Buffer.from(bytes(4)))
    tail.push(bytes(5, 4))
    tail.push(bytes(3, 9))
    expect(joined(tail.contents())).toEqual(Buffer.from(bytes(10, 2)))
    tail.push(bytes(25, 12))
    expect(joined(tail.contents())).toEqual(Buffer.from(bytes(10, 27)))
  })

  it("hands out copies: later writes do not change a replay already queued", () => {
    const tail = new ReplayTail(4)
    tail.push(bytes(3))
    const replay = tail.contents()
    tail.push(bytes(4, 50))
    expect(joined(replay)).toEqual(Buffer.from(bytes(3)))
    expect(ReplayBytes).toBe(128 * 1024)
  })
})

/**
 * The README's library example cannot rot: its code blocks must be the files
 * under test/examples (which `tsc -b` type-checks against the real API), and
 * the example runs here against our guest.
 */
import { describe, expect, it } from "@effect/vitest"
import { Guest } from "@gcs-bridge/guest"
import { GuestConnection } from "@gcs-bridge/runtime"
import { MemoryAddress, Transport } from "@gcs-bridge/transport"
import { Effect, Layer, Logger } from "effect"
import { readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { runInContainer } from "./examples/runInContainer.js"

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..")
const readme = readFileSync(join(root, "README.md"), "utf8")

/** The ```ts block that follows `<!-- example: path -->` in the README. */
const exampleBlock = (path: string): string | undefined => {
  const marker = `<!-- example: ${path} -->`
  const at = readme.indexOf(marker)
  if (at < 0) return undefined
  const match = /^\s*```ts\n([\s\S]*?)```/.exec(readme.slice(at + marker.length))
  return match?.[1]
}

describe("README", () => {
  for (const path of [
    "packages/cli/test/examples/runInContainer.ts",
    "packages/cli/test/examples/main.ts",
    "packages/cli/test/examples/migrate.ts"
  ]) {
    it(`shows ${path} exactly`, () => {
      expect(exampleBlock(path)).toBe(readFileSync(join(root, path), "utf8"))
    })
  }

  it.live("the library example runs a container process against our guest and gives its exit code", () =>
    Effect.gen(function* () {
      const lines: Array<string> = []
      const address = new MemoryAddress({ name: "readme" })
      // One in-memory network: the host and the guest share the Transport layer.
      const live = Layer.merge(GuestConnection.layer({ address }), Guest.layer({ address })).pipe(
        Layer.provide(Transport.layerMemory)
      )
      const code = yield* runInContainer("demo", ["sh", "-c", "echo one; printf 'two\\nthree'; exit 3"]).pipe(
        Effect.provide(live),
        Effect.provide(
          Logger.layer([
            Logger.make(({ message }) =>
              lines.push(Array.isArray(message) ? message.join(" ") : String(message))
            )
          ])
        )
      )
      expect(code).toBe(3)
      expect(lines.filter((line) => line.startsWith("demo: "))).toEqual([
        "demo: one",
        "demo: two",
        "demo: three"
      ])
    })
  )
})

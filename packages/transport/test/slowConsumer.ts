/**
 * A slow consumer must hold memory bounded: 256 MiB go through a Connection
 * to a consumer that sleeps after every 256 KiB it handles. The writer can
 * only get as far ahead as the buffers along the way (engine queue, kernel,
 * read-ahead), and the process's live memory must not grow with the volume.
 * Live memory is measured after a forced full GC (V8's gc, exposed at run
 * time) so that garbage awaiting collection does not count.
 */
import { describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import type { Layer } from "effect"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { expect } from "vitest"
import type { Address } from "../src/index.js"
import { Transport } from "../src/index.js"

setFlagsFromString("--expose-gc")
const collectGarbage = runInNewContext("gc") as () => void

const MiB = 1 << 20
const Total = 256 * MiB
const ChunkSize = 64 * 1024
const SampleEvery = 16 * MiB

/** Live memory after a full collection: what the process actually holds. */
const liveBytes = (): { heap: number; rss: number } => {
  collectGarbage()
  const usage = process.memoryUsage()
  return { heap: usage.heapUsed + usage.external, rss: usage.rss }
}

/** Registers the slow-consumer test for `layer`; `address()` gives a fresh address. */
export const slowConsumer = (name: string, layer: Layer.Layer<Transport>, address: () => Address) =>
  describe(`${name}: a slow consumer holds memory bounded`, () => {
    it.live(
      "256 MiB to a consumer that sleeps between pulls",
      () =>
        Effect.gen(function* () {
          const transport = yield* Transport
          const where = address()
          const listener = yield* transport.listen(where, 9)
          const sender = yield* transport.connect(where, 9)
          const receiver = yield* listener.accept()
          const block = Buffer.alloc(ChunkSize, 0x5a)
          let written = 0
          let received = 0
          let maxInFlight = 0
          const base = liveBytes()
          let maxHeapGrowth = 0
          let maxRssGrowth = 0
          let nextSample = SampleEvery
          const sample = () => {
            // Sampled on the writer's side: how far it got ahead of the reader, and what that costs.
            maxInFlight = Math.max(maxInFlight, written - received)
            if (written >= nextSample) {
              nextSample += SampleEvery
              const now = liveBytes()
              maxHeapGrowth = Math.max(maxHeapGrowth, now.heap - base.heap)
              maxRssGrowth = Math.max(maxRssGrowth, now.rss - base.rss)
            }
          }
          const writer = Effect.gen(function* () {
            while (written < Total) {
              yield* sender.write(block)
              written += ChunkSize
              sample()
            }
            yield* sender.endWrite
          })
          // Slow per byte, not per pull: it sleeps after every 256 KiB it handles, so a
          // transport that kept reading while the consumer works would run away.
          let sinceSleep = 0
          const reader = Stream.runForEach(receiver.stream, (chunk) => {
            received += chunk.length
            sinceSleep += chunk.length
            if (sinceSleep < 256 * 1024) return Effect.void
            sinceSleep = 0
            return Effect.sleep("1 millis")
          })
          yield* Effect.all([writer, reader], { concurrency: 2 })
          expect(received).toBe(Total)
          // The writer never ran more than the buffers along the way ahead of the reader.
          expect(maxInFlight).toBeLessThan(8 * MiB)
          expect(maxHeapGrowth).toBeLessThan(64 * MiB)
          expect(maxRssGrowth).toBeLessThan(64 * MiB)
        }).pipe(Effect.provide(layer)),
      60_000
    )
  })

/**
 * A large writeAll against an engine that copies what the kernel does not take (as the native engine does): the
 * Connection offers it a slice at a time, so the copy stays bounded, and the bytes of each write stay together.
 */
import { describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { expect } from "vitest"
import { makeConnection, WriteSlice } from "../src/internal/connection.js"
import type { Connection } from "../src/index.js"
import type { RawEvents, RawSocket } from "../src/internal/rawSocket.js"
import { nextTurn, pattern } from "./helpers.js"

const HighWaterMark = 64 * 1024

/** An engine whose kernel takes `room` bytes whenever its queue is empty; the rest it copies into its queue. */
class CopyingEngine implements RawSocket {
  readonly offered: Array<number> = []
  readonly wire: Array<Uint8Array> = []
  readonly log: Array<string> = []
  maxQueued = 0
  private queue: Array<Uint8Array> = []
  private queuedBytes = 0
  private events: RawEvents | undefined
  constructor(private readonly room: number) {}
  bind(events: RawEvents) {
    this.events = events
  }
  readStart() {}
  readStop() {}
  write(chunks: ReadonlyArray<Uint8Array>) {
    let room = this.queue.length === 0 ? this.room : 0
    let total = 0
    for (const chunk of chunks) {
      total += chunk.length
      const take = Math.min(room, chunk.length)
      if (take > 0) this.wire.push(chunk.slice(0, take))
      room -= take
      if (take < chunk.length) {
        this.queue.push(chunk.slice(take))
        this.queuedBytes += chunk.length - take
      }
    }
    this.offered.push(total)
    this.log.push(`write ${total}`)
    this.maxQueued = Math.max(this.maxQueued, this.queuedBytes)
    return this.queuedBytes <= HighWaterMark
  }
  get queued() {
    return this.queuedBytes
  }
  /** The kernel took everything queued: the engine reports the drain. */
  flush() {
    if (this.queue.length === 0) return false
    this.wire.push(...this.queue)
    this.queue = []
    this.queuedBytes = 0
    this.events!.drain()
    return true
  }
  shutdown(flushed: () => void) {
    this.log.push(`shutdown after ${Buffer.concat(this.wire).length}`)
    flushed()
  }
  close() {}
}

/** Drains the engine turn by turn until every fiber is done. */
const drainUntilDone = (engine: CopyingEngine, fibers: ReadonlyArray<Fiber.Fiber<unknown, unknown>>) =>
  Effect.gen(function* () {
    while (fibers.some((fiber) => fiber.pollUnsafe() === undefined)) {
      yield* nextTurn
      engine.flush()
    }
    for (const fiber of fibers) yield* Fiber.join(fiber)
  })

const open = (engine: CopyingEngine) =>
  makeConnection(engine, { address: "test://copying" }, { family: "memory" })

// 40 distinct 64 KiB chunks: 2.5 MiB, more than two slices.
const chunks = Array.from({ length: 40 }, (_, i) => pattern(64 * 1024, i + 1))
const all = Buffer.concat(chunks)

/** The 2.5 MiB writeAll, and `meanwhile` made once its first slice fills the engine; both run to their end. */
const whileBigWriteWaits = <A, E>(meanwhile: (connection: Connection) => Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const engine = new CopyingEngine(200 * 1024)
    const connection = yield* open(engine)
    const big = yield* Effect.forkChild(connection.writeAll(chunks))
    yield* nextTurn
    // The first slice is in the engine's queue and the big write waits for the drain.
    expect(engine.offered).toEqual([WriteSlice])
    const other = yield* Effect.forkChild(meanwhile(connection))
    yield* drainUntilDone(engine, [big, other])
    return engine
  })

describe("a writeAll larger than a slice", () => {
  // The kernel taking a fifth of a slice, or all of one but 32 KiB (left queued, below the high-water mark).
  it.effect.each([200 * 1024, WriteSlice - 32 * 1024])(
    "is offered to the engine a slice at a time, each after the drain, and arrives whole (room %i)",
    (room) =>
      Effect.gen(function* () {
        const engine = new CopyingEngine(room)
        const connection = yield* open(engine)
        const writing = yield* Effect.forkChild(connection.writeAll(chunks))
        yield* drainUntilDone(engine, [writing])
        expect(Buffer.concat(engine.wire).equals(all)).toBe(true)
        expect(engine.offered.length).toBeGreaterThan(2)
        expect(Math.max(...engine.offered)).toBeLessThanOrEqual(WriteSlice)
        // What the engine had to copy is bounded by a slice, not by the write.
        expect(engine.maxQueued).toBeLessThanOrEqual(WriteSlice)
      }).pipe(Effect.scoped)
  )

  it.effect("splits a single chunk larger than a slice into views", () =>
    Effect.gen(function* () {
      const engine = new CopyingEngine(100 * 1024)
      const connection = yield* open(engine)
      const writing = yield* Effect.forkChild(connection.write(all))
      yield* drainUntilDone(engine, [writing])
      expect(Buffer.concat(engine.wire).equals(all)).toBe(true)
      expect(Math.max(...engine.offered)).toBeLessThanOrEqual(WriteSlice)
    }).pipe(Effect.scoped)
  )

  it.effect("keeps a write made while it waits behind all of its bytes", () =>
    Effect.gen(function* () {
      const marker = Buffer.from("after")
      const engine = yield* whileBigWriteWaits((connection) => connection.write(marker))
      expect(Buffer.concat(engine.wire).equals(Buffer.concat([all, marker]))).toBe(true)
    }).pipe(Effect.scoped)
  )

  it.effect("half-closes after its last slice when endWrite comes while it waits", () =>
    Effect.gen(function* () {
      const engine = yield* whileBigWriteWaits((connection) => connection.endWrite)
      expect(engine.log.at(-1)).toBe(`shutdown after ${all.length}`)
      expect(engine.log.filter((line) => line.startsWith("shutdown"))).toHaveLength(1)
    }).pipe(Effect.scoped)
  )

  it.effect("small writes go to the engine as they come, in one write each", () =>
    Effect.gen(function* () {
      const engine = new CopyingEngine(1 << 30)
      const connection = yield* open(engine)
      yield* connection.writeAll(chunks.slice(0, 4))
      yield* connection.write(chunks[4]!)
      expect(engine.offered).toEqual([4 * 64 * 1024, 64 * 1024])
    }).pipe(Effect.scoped)
  )
})

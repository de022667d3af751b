import { it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber } from "effect"
import { expect } from "vitest"
import { Inbox } from "../src/internal/inbox.js"

const bytes = (...values: Array<number>) => new Uint8Array(values)
const lengths = (chunks: ReadonlyArray<Uint8Array>) => chunks.map((chunk) => chunk.length)

it.effect("a take gets everything offered so far, in order, empty chunks left out", () =>
  Effect.gen(function* () {
    const inbox = new Inbox<string>()
    inbox.offer([bytes(1), new Uint8Array(0)])
    inbox.offer([bytes(2, 2), bytes(3, 3, 3)])
    expect(lengths(yield* inbox.take)).toEqual([1, 2, 3])
    expect(inbox.takeAllUnsafe()).toEqual([])
  })
)

it.effect("a waiting take is resumed inside offer, with every chunk of that read", () =>
  Effect.gen(function* () {
    const inbox = new Inbox<string>()
    let taken: ReadonlyArray<Uint8Array> | undefined
    const reader = yield* Effect.forkChild(Effect.map(inbox.take, (chunks) => (taken = chunks)))
    yield* Effect.yieldNow
    expect(taken).toBeUndefined()
    inbox.offer([bytes(1), bytes(2, 2)])
    // No scheduler turn in between: the reader ran in the offering call.
    expect(taken && lengths(taken)).toEqual([1, 2])
    yield* Fiber.join(reader)
  })
)

it.effect("the end comes after the last chunk, and a failure too; the first end is kept", () =>
  Effect.gen(function* () {
    const ended = new Inbox<string>()
    ended.offer([bytes(1)])
    ended.end()
    ended.fail("late")
    ended.offer([bytes(2)])
    expect(lengths(yield* ended.take)).toEqual([1])
    const end = yield* Effect.exit(ended.take)
    expect(Exit.isFailure(end) && Cause.isDone(Cause.squash(end.cause))).toBe(true)

    const failed = new Inbox<string>()
    failed.offer([bytes(1, 1)])
    failed.fail("reset")
    failed.end()
    expect(lengths(yield* failed.take)).toEqual([2])
    expect(yield* Effect.flip(failed.take)).toBe("reset")
    // The end stays: every later take sees it.
    expect(yield* Effect.flip(failed.take)).toBe("reset")
  })
)

it.effect("an interrupted take leaves no waiter behind: the next read is kept for the next take", () =>
  Effect.gen(function* () {
    const inbox = new Inbox<string>()
    const first = yield* Effect.forkChild(inbox.take)
    yield* Effect.yieldNow
    yield* Fiber.interrupt(first)
    inbox.offer([bytes(4, 4, 4, 4)])
    expect(lengths(yield* inbox.take)).toEqual([4])
  })
)

it.effect("a waiting take is resumed by the end and by a failure", () =>
  Effect.gen(function* () {
    const ending = new Inbox<string>()
    const atEnd = yield* Effect.forkChild(Effect.exit(ending.take))
    yield* Effect.yieldNow
    ending.end()
    const end = yield* Fiber.join(atEnd)
    expect(Exit.isFailure(end) && Cause.isDone(Cause.squash(end.cause))).toBe(true)

    const failing = new Inbox<string>()
    const atFailure = yield* Effect.forkChild(Effect.flip(failing.take))
    yield* Effect.yieldNow
    failing.fail("broken")
    expect(yield* Fiber.join(atFailure)).toBe("broken")
  })
)

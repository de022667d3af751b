/**
 * Why the bridge's writer is a microtask flush and not a fiber woken by an Effect Queue: `count` calls, one
 * after the other, each handed to a consumer fiber that answers it at once (the bridge's caller → writer
 * hop with an instant guest), through each mechanism. No I/O: what is left is the hand-off itself.
 */
import { Deferred, Effect, Fiber, Queue } from "effect"

type Call = Deferred.Deferred<void>

/** Through `Queue.offerUnsafe` / `Queue.takeAll`, as the writer was built before. */
export const viaQueue = (count: number): Effect.Effect<void> =>
  Effect.gen(function* () {
    const queue = yield* Queue.unbounded<Call>()
    const consumer = yield* Effect.forkChild(
      Effect.forever(
        Effect.flatMap(Queue.takeAll(queue), (calls) =>
          Effect.sync(() => calls.forEach((call) => Deferred.doneUnsafe(call, Effect.void)))
        )
      )
    )
    for (let i = 0; i < count; i++) {
      const call = Deferred.makeUnsafe<void>()
      Queue.offerUnsafe(queue, call)
      yield* Deferred.await(call)
    }
    yield* Fiber.interrupt(consumer)
  })

/**
 * Through an array flushed in a microtask, the flush running the consumer's work on a fiber of its own that
 * ends with it, as the bridge's writer works now (no fiber waits for work).
 */
export const viaMicrotask = (count: number): Effect.Effect<void> =>
  Effect.gen(function* () {
    const context = yield* Effect.context<never>()
    const outbox: Array<Call> = []
    let scheduled = false
    const answer = (calls: ReadonlyArray<Call>) =>
      Effect.sync(() => calls.forEach((call) => Deferred.doneUnsafe(call, Effect.void)))
    const flush = () => {
      scheduled = false
      Effect.runForkWith(context)(answer(outbox.splice(0)))
    }
    for (let i = 0; i < count; i++) {
      const call = Deferred.makeUnsafe<void>()
      outbox.push(call)
      if (!scheduled) {
        scheduled = true
        queueMicrotask(flush)
      }
      yield* Deferred.await(call)
    }
  })

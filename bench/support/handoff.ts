/**
 * Why the bridge's writer is woken by a Latch in a microtask and not by an Effect Queue: `count` calls, one
 * after the other, each handed to a consumer fiber that answers it at once (the bridge's caller → writer
 * hop with an instant guest), through each mechanism. No I/O: what is left is the hand-off itself.
 */
import { Deferred, Effect, Fiber, Latch, Queue } from "effect"

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

/** Through an array and a Latch opened in a microtask, as the bridge's writer is woken now. */
export const viaLatch = (count: number): Effect.Effect<void> =>
  Effect.gen(function* () {
    const outbox: Array<Call> = []
    const ready = Latch.makeUnsafe(false)
    let scheduled = false
    const wake = () => {
      scheduled = false
      ready.openUnsafe()
    }
    const consumer = yield* Effect.forkChild(
      Effect.forever(
        Effect.suspend(() => {
          if (outbox.length === 0) {
            ready.closeUnsafe()
            return ready.await
          }
          for (const call of outbox.splice(0)) Deferred.doneUnsafe(call, Effect.void)
          return Effect.void
        })
      )
    )
    for (let i = 0; i < count; i++) {
      const call = Deferred.makeUnsafe<void>()
      outbox.push(call)
      if (!scheduled) {
        scheduled = true
        queueMicrotask(wake)
      }
      yield* Deferred.await(call)
    }
    yield* Fiber.interrupt(consumer)
  })

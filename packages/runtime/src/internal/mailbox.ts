/**
 * The writer's inbox: bounded, many producers, one consumer that takes
 * everything queued at once (so that it can write it with one gather write).
 * Lighter than `Queue` on the hot path: offering is synchronous and wakes the
 * consumer without allocating, and the consumer drains only when it runs, so
 * whatever arrived in between joins the same batch.
 */
import { Effect } from "effect"

type Resume = (effect: Effect.Effect<void>) => void

/** A bounded multi-producer, single-consumer batch queue. */
export class Mailbox<A> {
  private items: Array<A> = []
  private taker: Resume | undefined
  private readonly putters = new Set<Resume>()

  constructor(readonly capacity: number) {}

  /** Queues `item` unless the mailbox is full. */
  offer(item: A): boolean {
    if (this.items.length >= this.capacity) return false
    this.items.push(item)
    const taker = this.taker
    if (taker !== undefined) {
      this.taker = undefined
      taker(Effect.void)
    }
    return true
  }

  /** Completes once there is room again (the producer then retries `offer`). */
  readonly room: Effect.Effect<void> = Effect.async<void>((resume) => {
    if (this.items.length < this.capacity) {
      resume(Effect.void)
      return
    }
    this.putters.add(resume)
    return Effect.sync(() => {
      this.putters.delete(resume)
    })
  })

  private readonly nonEmpty: Effect.Effect<void> = Effect.async<void>((resume) => {
    if (this.items.length > 0) {
      resume(Effect.void)
      return
    }
    this.taker = resume
    return Effect.sync(() => {
      this.taker = undefined
    })
  })

  private drain(): ReadonlyArray<A> {
    const items = this.items
    this.items = []
    if (this.putters.size > 0) {
      const putters = [...this.putters]
      this.putters.clear()
      for (const putter of putters) putter(Effect.void)
    }
    return items
  }

  /** Everything queued, once there is at least one item. Single consumer. */
  readonly takeAll: Effect.Effect<ReadonlyArray<A>> = Effect.zipRight(
    this.nonEmpty,
    Effect.sync(() => this.drain())
  )
}

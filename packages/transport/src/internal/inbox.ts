/**
 * A connection's input read ahead for its one consumer: chunks in arrival order, then at most one end (the end
 * of stream or a failure), which a take sees only once every chunk before it was taken.
 *
 * Hand-made rather than an Effect Queue for one reason: a Queue resumes its waiting taker through the fiber's
 * scheduler, a `setImmediate` per engine read, so every read of a stream consumer costs one more event-loop turn
 * and a scheduler task. Here the waiting take resumes in the engine's own read callback, the same step the bytes
 * came in (the transport bench suite times both on the same reads, in the same run).
 */
import type { Array as Arr } from "effect"
import { Cause, Effect, Exit } from "effect"

type Chunks = Arr.NonEmptyReadonlyArray<Uint8Array>
type Taken<E> = Exit.Exit<Chunks, E | Cause.Done>

const ended: Exit.Exit<never, Cause.Done> = Exit.fail(Cause.Done())

/** Single-consumer input: `offer` from the engine, `take` from the one reader. */
export class Inbox<E> {
  #chunks: Array<Uint8Array> = []
  #end: Exit.Exit<never, E | Cause.Done> | undefined
  #waiting: ((taken: Taken<E>) => void) | undefined

  /** Adds the chunks of one read (empty ones skipped), ignored after the end; a waiting take gets them at once. */
  offer(chunks: ReadonlyArray<Uint8Array>): void {
    if (this.#end !== undefined) return
    for (const chunk of chunks) if (chunk.length > 0) this.#chunks.push(chunk)
    if (this.#chunks.length > 0) this.#wake()
  }

  /** The end of stream, after the chunks already offered; the first end set is kept. */
  end(): void {
    this.#finish(ended)
  }

  /** Ends with `error`, after the chunks already offered; the first end set is kept. */
  fail(error: E): void {
    this.#finish(Exit.fail(error))
  }

  /** Every chunk offered so far, without waiting (possibly none). */
  takeAllUnsafe(): Array<Uint8Array> {
    const chunks = this.#chunks
    if (chunks.length > 0) this.#chunks = []
    return chunks
  }

  /** Every chunk offered so far, waiting for one if there is none; after the last chunk, the end. */
  readonly take: Effect.Effect<Chunks, E | Cause.Done> = Effect.suspend(
    () =>
      this.#poll() ??
      Effect.callback<Chunks, E | Cause.Done>((resume) => {
        const now = this.#poll()
        if (now !== undefined) return resume(now)
        this.#waiting = resume
        return Effect.sync(() => {
          if (this.#waiting === resume) this.#waiting = undefined
        })
      })
  )

  #poll(): Taken<E> | undefined {
    if (this.#chunks.length > 0) return Exit.succeed(this.takeAllUnsafe() as unknown as Chunks)
    return this.#end
  }

  #finish(end: Exit.Exit<never, E | Cause.Done>): void {
    if (this.#end !== undefined) return
    this.#end = end
    this.#wake()
  }

  #wake(): void {
    const resume = this.#waiting
    if (resume === undefined) return
    this.#waiting = undefined
    resume(this.#poll()!)
  }
}

/**
 * Writing into a descriptor the caller opened (a pipe, a FIFO, a file, a terminal) from JavaScript: the path of
 * `Connection.pipeTo` where the engine cannot move the bytes in the kernel. Node has no way to poll a descriptor
 * it did not open for room, so a non-blocking one that is full is tried again after a short pause.
 */
import { write } from "node:fs"
import { Effect, Stream } from "effect"
import type { TransportError } from "../TransportError.js"
import { osError, type Target } from "./rawSocket.js"

/** The pause before a full non-blocking descriptor is tried again. */
const FullRetryMillis = 2

/** Writes all of `chunk` into `fd` (several writes if the kernel takes less); `what` names the write in errors. */
const writeFully = (
  fd: number,
  chunk: Uint8Array,
  target: Target,
  what: string
): Effect.Effect<void, TransportError> =>
  Effect.callback<void, TransportError>((resume) => {
    let at = 0
    const step = () =>
      write(fd, chunk, at, chunk.length - at, null, (err, written) => {
        if (err?.code === "EAGAIN") return void setTimeout(step, FullRetryMillis)
        if (err !== null) return resume(Effect.fail(osError("Write", target, what, err, "write")))
        at += written
        if (at < chunk.length) step()
        else resume(Effect.void)
      })
    step()
  })

/** Writes all `input` into `fd` until its end or `stop`, and gives the byte count. */
export const copyInto = (
  input: Stream.Stream<Uint8Array, TransportError>,
  fd: number,
  target: Target,
  description: string,
  stop: Effect.Effect<unknown>
): Effect.Effect<number, TransportError> =>
  Effect.suspend(() => {
    let moved = 0
    const what = `${description}: piping into descriptor ${fd}`
    const write = (chunk: Uint8Array) =>
      Effect.map(writeFully(fd, chunk, target, what), () => void (moved += chunk.length))
    const copy = Stream.runForEachArray(input, (chunks) => Effect.forEach(chunks, write, { discard: true }))
    return Effect.map(Effect.raceFirst(copy, stop), () => moved)
  })

/**
 * Byte relays between a process's pipes and the host's stdio connections.
 * Bytes pass through untouched, at most 64 KiB per write; a pipe is read only
 * when the previous chunk has been accepted by the connection (and the
 * connection only when the process took the previous chunk), so a slow reader
 * on either side stalls the writer instead of filling memory.
 */
import type { Readable, Writable } from "node:stream"
import type { Connection } from "@gcs-bridge/transport"
import type { Array as Arr, Pull } from "effect"
import { Cause, Effect, Stream } from "effect"

/** Largest chunk handed to a connection in one write. */
export const RelayChunkSize = 64 * 1024

/** `chunk` cut into pieces of at most {@link RelayChunkSize} bytes (views, not copies). */
const pieces = (chunk: Uint8Array): Arr.NonEmptyReadonlyArray<Uint8Array> => {
  if (chunk.length <= RelayChunkSize) return [chunk]
  const parts: Arr.NonEmptyArray<Uint8Array> = [chunk.subarray(0, RelayChunkSize)]
  for (let i = RelayChunkSize; i < chunk.length; i += RelayChunkSize)
    parts.push(chunk.subarray(i, i + RelayChunkSize))
  return parts
}

/**
 * The next chunk of a paused `Readable`, or done at its end. Reading with
 * `read()` keeps the stream paused, so Node stops pulling from the pipe once
 * its small buffer is full: that is the backpressure.
 */
const pull = (readable: Readable): Pull.Pull<Arr.NonEmptyReadonlyArray<Uint8Array>> =>
  Effect.callback((resume) => {
    const attempt = (): boolean => {
      const chunk = readable.read() as Buffer | null
      if (chunk !== null) resume(Effect.succeed(pieces(chunk)))
      else if (readable.readableEnded || readable.destroyed) resume(Cause.done())
      else return false
      return true
    }
    if (attempt()) return
    const cleanup = () => {
      readable.off("readable", onReadable)
      readable.off("end", onEnd)
      readable.off("close", onEnd)
      readable.off("error", onEnd)
    }
    const onReadable = () => {
      if (attempt()) cleanup()
    }
    const onEnd = () => {
      cleanup()
      resume(Cause.done())
    }
    readable.on("readable", onReadable)
    readable.once("end", onEnd)
    readable.once("close", onEnd)
    readable.once("error", onEnd)
    return Effect.sync(cleanup)
  })

const keepPaused = () => {}

/**
 * Keeps a child's output pipe from being flushed away: when a child process
 * exits, Node `resume()`s its stdio pipes unless one is listened to with
 * `readable`, and a resumed pipe with no `data` listener throws its buffered
 * bytes away — output written just before the exit would be lost. Called at
 * spawn, before the process can exit.
 */
export const holdPaused = (readable: Readable | null): void => {
  readable?.on("readable", keepPaused)
}

/**
 * A paused `Readable` as a pull-driven stream of chunks of at most {@link RelayChunkSize} bytes,
 * holding it paused (see {@link holdPaused}) while the stream lives.
 */
export const fromReadable = (readable: Readable): Stream.Stream<Uint8Array> =>
  Stream.unwrap(
    Effect.acquireRelease(
      Effect.sync(() => readable.on("readable", keepPaused)),
      () => Effect.sync(() => readable.off("readable", keepPaused))
    ).pipe(Effect.as(Stream.fromPull(Effect.succeed(pull(readable)))))
  )

/** Writes one chunk, waiting for `drain` when the pipe is full; fails once the pipe is closed. */
const writeChunk = (writable: Writable, chunk: Uint8Array): Effect.Effect<void, "closed"> =>
  Effect.callback<void, "closed">((resume) => {
    if (writable.destroyed || writable.writableEnded) {
      resume(Effect.fail("closed"))
      return
    }
    if (writable.write(chunk)) {
      resume(Effect.void)
      return
    }
    const cleanup = () => {
      writable.off("drain", onDrain)
      writable.off("close", onClose)
      writable.off("error", onClose)
    }
    const onDrain = () => {
      cleanup()
      resume(Effect.void)
    }
    const onClose = () => {
      cleanup()
      resume(Effect.fail("closed"))
    }
    writable.on("drain", onDrain)
    writable.once("close", onClose)
    writable.once("error", onClose)
    return Effect.sync(cleanup)
  })

/**
 * Host → process: everything read from the connection goes to the process's
 * stdin; the host's half-close becomes the end of stdin. Stops quietly when
 * the process closes its stdin or the connection fails.
 */
export const relayStdin = (connection: Connection, stdin: Writable): Effect.Effect<void> =>
  connection.stream.pipe(
    Stream.mapError(() => "closed" as const),
    Stream.runForEach((chunk) => writeChunk(stdin, chunk)),
    Effect.matchEffect({
      onFailure: () => Effect.void,
      onSuccess: () => Effect.sync(() => stdin.end())
    })
  )

/**
 * How an output relay ends (§14.4a): container processes half-close and then
 * wait for the host to close its side; UVM processes close right away (their
 * Linux GCS counterparts write straight into the socket).
 */
export type OutputEnding = "half-close-then-wait" | "close"

/**
 * Process → host: the process's output goes to the connection until the
 * process (and every process sharing the pipe) closes it. When the host
 * stops reading (a write fails), the pipe is destroyed so the writer sees
 * EPIPE, as it would with a closed socket.
 */
export const relayOutput = (
  sources: ReadonlyArray<Readable>,
  connection: Connection,
  ending: OutputEnding
): Effect.Effect<void> => {
  const stream =
    sources.length === 1
      ? fromReadable(sources[0]!)
      : Stream.mergeAll(sources.map(fromReadable), { concurrency: "unbounded" })
  return stream.pipe(
    Stream.runForEach((chunk) => connection.write(chunk)),
    Effect.matchEffect({
      onFailure: () =>
        Effect.sync(() => {
          for (const source of sources) source.destroy()
        }),
      onSuccess: () =>
        connection.endWrite.pipe(
          Effect.andThen(
            ending === "half-close-then-wait" ? Stream.runDrain(connection.stream) : Effect.void
          ),
          Effect.ignore
        )
    }),
    Effect.ensuring(connection.close)
  )
}

/**
 * Byte relays between a process's pipes and the host's stdio connections.
 * Bytes pass through untouched, at most 64 KiB per write; a pipe is read only
 * when the previous chunk has been accepted by the connection (and the
 * connection only when the process took the previous chunk), so a slow reader
 * on either side stalls the writer instead of filling memory.
 */
import type { Readable, Writable } from "node:stream"
import type { Connection, TransportError } from "@gcs-bridge/transport"
import type { Array as Arr, Pull } from "effect"
import { Cause, Duration, Effect, Exit, Scope, Stream } from "effect"

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

/** How much of its output a re-dialled stream is sent again (§14.4). */
export const ReplayBytes = 128 * 1024

/** Pause between two dials of a lost stdio port (§14.4). */
const RedialInterval = Duration.millis(100)

/**
 * The last `capacity` bytes written to a stream, copied into a ring allocated
 * on first use: a fixed amount of memory however small or large the chunks.
 */
export class ReplayTail {
  private ring: Uint8Array | undefined
  /** Where the next byte goes. */
  private end = 0
  private filled = 0

  constructor(readonly capacity: number) {}

  push(chunk: Uint8Array): void {
    const cap = this.capacity
    const ring = (this.ring ??= new Uint8Array(cap))
    const data = chunk.length > cap ? chunk.subarray(chunk.length - cap) : chunk
    const first = Math.min(data.length, cap - this.end)
    ring.set(data.subarray(0, first), this.end)
    ring.set(data.subarray(first), 0)
    this.end = (this.end + data.length) % cap
    this.filled = Math.min(cap, this.filled + data.length)
  }

  /** The bytes held, oldest first, as copies (a connection must not see its chunks change). */
  contents(): ReadonlyArray<Uint8Array> {
    const ring = this.ring
    if (ring === undefined || this.filled === 0) return []
    const start = (this.end - this.filled + this.capacity) % this.capacity
    return start < this.end ? [ring.slice(start, this.end)] : [ring.slice(start), ring.slice(0, this.end)]
  }
}

/**
 * How an output relay outlives the host's end of its connection (§14.4,
 * container init processes only): when a write finds the host gone, the port
 * is dialled again every 100 ms until a host accepts or `stopped` completes.
 */
export interface Redial {
  /** Dials the stream's port again. */
  readonly dial: Effect.Effect<Connection, TransportError, Scope.Scope>
  /** Completes when re-dialling must stop: the container was shut down. */
  readonly stopped: Effect.Effect<void>
  /** Told when the host's end is found gone (`true`) and when re-dialling is over (`false`). */
  readonly onLost?: (lost: boolean) => void
}

/** A failure saying that the host's end is gone (not one this side caused by closing). */
const hostGone = (e: TransportError): boolean =>
  (e.reason === "Write" || e.reason === "Read") &&
  (e.code === "EPIPE" || e.code === "ECONNRESET" || e.code === "ENOTCONN")

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
 * EPIPE, as it would with a closed socket — unless `redial` is given and the
 * host's end is gone: then the pipe is not read while the port is dialled
 * again, and a connection that accepts is first sent the last
 * {@link ReplayBytes} bytes written (the host may see them twice).
 */
export const relayOutput = (
  sources: ReadonlyArray<Readable>,
  first: Connection,
  ending: OutputEnding,
  redial?: Redial
): Effect.Effect<void> =>
  Effect.suspend(() => {
    let connection = first
    /** Owns a re-dialled `connection`. */
    let owner: Scope.Closeable | undefined
    const tail = redial === undefined ? undefined : new ReplayTail(ReplayBytes)

    // One dial; the new connection replaces the old one once it took the replay.
    const attempt = (r: Redial, t: ReplayTail) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function* () {
          const scope = yield* Scope.make()
          const dialled = yield* Effect.exit(
            restore(Scope.provide(r.dial, scope).pipe(Effect.tap((c) => c.writeAll(t.contents()))))
          )
          if (Exit.isFailure(dialled)) {
            yield* Scope.close(scope, Exit.void)
            return yield* Effect.failCause(dialled.cause)
          }
          if (owner !== undefined) yield* Scope.close(owner, Exit.void)
          connection = dialled.value
          owner = scope
        })
      )

    /** Re-dials until a host takes the replay (true) or re-dialling must stop (false). */
    const reconnect = (r: Redial, t: ReplayTail): Effect.Effect<boolean> =>
      Effect.acquireUseRelease(
        Effect.sync(() => r.onLost?.(true)),
        () =>
          Effect.raceFirst(
            Effect.gen(function* () {
              yield* connection.close
              for (;;) {
                const exit = yield* Effect.exit(attempt(r, t))
                if (Exit.isSuccess(exit)) return true
                if (Cause.hasInterruptsOnly(exit.cause)) return yield* Effect.interrupt
                yield* Effect.sleep(RedialInterval)
              }
            }),
            Effect.as(r.stopped, false)
          ),
        () => Effect.sync(() => r.onLost?.(false))
      )

    const send = (chunk: Uint8Array): Effect.Effect<void, TransportError> => {
      if (redial === undefined || tail === undefined) return connection.write(chunk)
      return Effect.suspend(() => {
        tail.push(chunk)
        return connection.write(chunk)
      }).pipe(
        Effect.catchIf(hostGone, (e) =>
          Effect.flatMap(reconnect(redial, tail), (again) => (again ? Effect.void : Effect.fail(e)))
        )
      )
    }

    const stream =
      sources.length === 1
        ? fromReadable(sources[0]!)
        : Stream.mergeAll(sources.map(fromReadable), { concurrency: "unbounded" })
    return stream.pipe(
      Stream.runForEach(send),
      Effect.matchEffect({
        onFailure: () =>
          Effect.sync(() => {
            for (const source of sources) source.destroy()
          }),
        onSuccess: () =>
          Effect.suspend(() =>
            connection.endWrite.pipe(
              Effect.andThen(
                ending === "half-close-then-wait" ? Stream.runDrain(connection.stream) : Effect.void
              ),
              Effect.ignore
            )
          )
      }),
      Effect.ensuring(
        Effect.suspend(() =>
          Effect.andThen(connection.close, owner === undefined ? Effect.void : Scope.close(owner, Exit.void))
        )
      )
    )
  })

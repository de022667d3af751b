/** Recording a bridge connection to a capture file (format: see the README, "Capture format"). @since 0.1.0 */
import type { Connection } from "@gcs-bridge/transport"
import { Data, Effect, type Scope, Sink, Stream } from "effect"
import { createWriteStream } from "node:fs"

/** The 8 bytes a capture file starts with. @since 0.1.0 */
export const Magic = new TextEncoder().encode("GCSCAP01")
/** Direction bytes of a record: what the host sent, what the guest sent. @since 0.1.0 */
export const HostToGuest = 0,
  GuestToHost = 1
/** Record header: direction (1), nanoseconds since the capture began (8, LE), length (4, LE). @since 0.1.0 */
export const RecordHeaderSize = 13
/** Default bound on bytes handed to the file but not yet written. @since 0.1.0 */
export const DefaultMaxPending = 8 * 1024 * 1024

/** The capture file could not be created. @since 0.1.0 */
export class CaptureError extends Data.TaggedError("CaptureError")<{ readonly message: string }> {}

/** An open capture file. @since 0.1.0 */
export interface Recorder {
  /** `connection`, recording what it carries; `inbound` is the direction of what it reads (default `GuestToHost`). */
  readonly wrap: (connection: Connection, inbound?: number) => Connection
  /** Records dropped so far (the file fell behind or failed). */
  readonly dropped: () => number
}

/**
 * Creates (or truncates) the capture file `path`, flushed and closed when the scope closes. The bridge never
 * waits for the file: past `maxPending` bytes not yet written, records are dropped and counted (a warning at
 * the close says how many).
 * @since 0.1.0
 */
export const open = (
  path: string,
  options: { readonly maxPending?: number } = {}
): Effect.Effect<Recorder, CaptureError, Scope.Scope> =>
  Effect.gen(function* () {
    let dropped = 0
    const file = yield* Effect.acquireRelease(
      Effect.callback<ReturnType<typeof createWriteStream>, CaptureError>((resume) => {
        const stream = createWriteStream(path)
        stream.once("error", (e) => resume(Effect.fail(new CaptureError({ message: e.message }))))
        stream.once("ready", () => resume(Effect.succeed(stream)))
      }),
      // `end` flushes and closes (or, after an error, reports it: the stream is already destroyed).
      (stream) =>
        Effect.andThen(
          Effect.callback<void>((resume) => void stream.end(() => resume(Effect.void))),
          () =>
            dropped > 0 ? Effect.logWarning(`capture ${path}: ${dropped} record(s) dropped`) : Effect.void
        )
    )
    const start = process.hrtime.bigint()
    const maxPending = options.maxPending ?? DefaultMaxPending
    let pending = 0
    let failed = false
    // A failed file stops the capture, never the bridge.
    file.on("error", () => void (failed = true))
    file.write(Magic)
    const put = (direction: number, bytes: Uint8Array) => {
      const size = RecordHeaderSize + bytes.length
      if (failed || pending + size > maxPending) return void dropped++
      const header = new DataView(new ArrayBuffer(RecordHeaderSize))
      header.setUint8(0, direction)
      header.setBigUint64(1, process.hrtime.bigint() - start, true)
      header.setUint32(9, bytes.length, true)
      pending += size
      file.write(Buffer.concat([new Uint8Array(header.buffer), bytes]), () => void (pending -= size))
    }
    const wrap = (connection: Connection, inbound: number = GuestToHost): Connection => {
      const outbound = 1 - inbound
      const sent = (chunks: ReadonlyArray<Uint8Array>) =>
        Effect.sync(() => chunks.forEach((chunk) => put(outbound, chunk)))
      return {
        ...connection,
        stream: Stream.tap(connection.stream, (chunk) => Effect.sync(() => put(inbound, chunk))),
        write: (chunk) => Effect.andThen(sent([chunk]), connection.write(chunk)),
        writeAll: (chunks) => Effect.andThen(sent(chunks), connection.writeAll(chunks)),
        sink: Sink.mapInput(connection.sink, (chunk: Uint8Array) => (put(outbound, chunk), chunk))
      }
    }
    return { wrap, dropped: () => dropped }
  })

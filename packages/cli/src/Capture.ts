/** Recording a guest's connections to a capture file (format: see the README, "Capture and replay"). @since 0.1.0 */
import { MessageType } from "@gcs-bridge/protocol"
import type { Connection, TransportService } from "@gcs-bridge/transport"
import { pipeDescriptorTo, pipeStreamTo, Transport } from "@gcs-bridge/transport"
import { Data, Effect, Layer, type Scope, Sink, Stream } from "effect"
import { createWriteStream } from "node:fs"

/** The 8 bytes a capture file starts with: version 2, whose records name their vsock port. @since 0.1.0 */
export const Magic = new TextEncoder().encode("GCSCAP02")
/** The 8 bytes a version 1 capture (bridge only, no port in its records) starts with; still read. @since 0.1.0 */
export const MagicV1 = new TextEncoder().encode("GCSCAP01")
/** Direction bytes of a record: what the host sent, what the guest sent. @since 0.1.0 */
export const HostToGuest = 0,
  GuestToHost = 1
/**
 * Record header of version 2: direction (1), nanoseconds since the capture began (8, LE), length (4, LE),
 * vsock port (4, LE; `0x40000000` is the bridge). Version 1 stops before the port. @since 0.1.0
 */
export const RecordHeaderSize = 17
/** Record header of version 1: direction, time, length. @since 0.1.0 */
export const RecordHeaderSizeV1 = 13
/** Default bound on bytes handed to the file but not yet written, shared by every recorded connection. @since 0.1.0 */
export const DefaultMaxPending = 8 * 1024 * 1024

/** The capture file could not be created. @since 0.1.0 */
export class CaptureError extends Data.TaggedError("CaptureError")<{ readonly message: string }> {}

/** Options of `Recorder.wrap`. @since 0.1.0 */
export interface WrapOptions {
  /** The vsock port the connection is on (default the bridge's, `0x40000000`). */
  readonly port?: number
  /** The direction of what it reads (default `GuestToHost`). */
  readonly inbound?: number
}

/** An open capture file. @since 0.1.0 */
export interface Recorder {
  /** `connection`, recording what it carries. */
  readonly wrap: (connection: Connection, options?: WrapOptions) => Connection
  /** Records dropped so far (the file fell behind or failed). */
  readonly dropped: () => number
}

/**
 * Creates (or truncates) the capture file `path`, flushed and closed when the scope closes. No connection
 * ever waits for the file: past `maxPending` bytes not yet written (one bound for all of them), records are
 * dropped and counted (a warning at the close says how many).
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
    // A failed file stops the capture, never a connection.
    file.on("error", () => void (failed = true))
    file.write(Magic)
    const put = (direction: number, port: number, bytes: Uint8Array) => {
      const size = RecordHeaderSize + bytes.length
      if (failed || pending + size > maxPending) return void dropped++
      const header = new DataView(new ArrayBuffer(RecordHeaderSize))
      header.setUint8(0, direction)
      header.setBigUint64(1, process.hrtime.bigint() - start, true)
      header.setUint32(9, bytes.length, true)
      header.setUint32(13, port, true)
      pending += size
      file.write(Buffer.concat([new Uint8Array(header.buffer), bytes]), () => void (pending -= size))
    }
    const wrap = (connection: Connection, options: WrapOptions = {}): Connection => {
      const port = options.port ?? MessageType.LinuxGcsVsockPort
      const inbound = options.inbound ?? GuestToHost
      const outbound = 1 - inbound
      const sent = (chunks: ReadonlyArray<Uint8Array>) =>
        Effect.sync(() => chunks.forEach((chunk) => put(outbound, port, chunk)))
      // No `handoff`: bytes of a socket handed to a child would bypass the record.
      const { handoff: _, ...rest } = connection
      const write = (chunk: Uint8Array) => Effect.andThen(sent([chunk]), connection.write(chunk))
      const stream = Stream.tap(connection.stream, (chunk) => Effect.sync(() => put(inbound, port, chunk)))
      return {
        ...rest,
        stream,
        // Through the recorded stream: the engine's own pipe would move the bytes past the record.
        pipeTo: (fd, options) => pipeStreamTo(stream, fd, connection.description, options),
        pipeFrom: (fd, options) => pipeDescriptorTo(fd, write, connection.description, options),
        forEach: (onChunk) => connection.forEach((chunk) => (put(inbound, port, chunk), onChunk(chunk))),
        write,
        writeAll: (chunks) => Effect.andThen(sent(chunks), connection.writeAll(chunks)),
        sink: Sink.mapInput(connection.sink, (chunk: Uint8Array) => (put(outbound, port, chunk), chunk))
      }
    }
    return { wrap, dropped: () => dropped }
  })

/** Options of `transport` and `layer`. @since 0.1.0 */
export interface TransportOptions {
  /** Also record the connections of the other ports (stdio); default false, the bridge only. */
  readonly stdio?: boolean
}

/**
 * `service` with the connections its listeners accept recorded by `recorder`, as a host sees them (what they
 * read came from the guest): the bridge's, and with `stdio` those of every other port. `connect` is left
 * alone (a host listens; an embedded guest's dials are the same bytes seen from the other end).
 * @since 0.1.0
 */
export const transport = (
  service: TransportService,
  recorder: Recorder,
  options: TransportOptions = {}
): TransportService => ({
  ...service,
  listen: (address, port, listenOptions) =>
    port !== MessageType.LinuxGcsVsockPort && options.stdio !== true
      ? service.listen(address, port, listenOptions)
      : Effect.map(service.listen(address, port, listenOptions), (listener) => ({
          address: listener.address,
          port: listener.port,
          description: listener.description,
          accept: (accept) => Effect.map(listener.accept(accept), (c) => recorder.wrap(c, { port }))
        }))
})

/**
 * The `Transport` in context, recording to the capture file `path` (see `transport`), which is open as long
 * as the layer.
 * @since 0.1.0
 */
export const layer = (
  path: string,
  options: TransportOptions & { readonly maxPending?: number } = {}
): Layer.Layer<Transport, CaptureError, Transport> =>
  Layer.effect(
    Transport,
    Effect.gen(function* () {
      const recorder = yield* open(path, options)
      return transport(yield* Transport, recorder, options)
    })
  )

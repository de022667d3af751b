/** A connected byte stream to a peer, whatever carries it. */
import type { Socket } from "node:net"
import type { Effect, Sink, Stream } from "effect"
import { copyFrom, copyInto, withDescriptor } from "./internal/descriptor.js"
import type { TransportError } from "./TransportError.js"

/** Who is on the other end, as far as the transport can tell: a vsock CID, a Hyper-V VM id, a Unix uid (native engine only), and the vsock port. */
export interface PeerIdentity {
  readonly family: "vsock" | "hvsock" | "unix" | "memory"
  readonly cid?: number
  readonly vmId?: string
  readonly port?: number
  readonly uid?: number
}

/** How `Connection.pipeTo` / `pipeFrom` run. */
export interface PipeOptions {
  /** Ends the relay early (the bytes not yet moved stay unread), with the count so far. */
  readonly stop?: Effect.Effect<unknown>
  /** The count of bytes moved so far, as it grows: for a byte counter of a relay that runs for hours. */
  readonly onProgress?: (moved: number) => void
}

/**
 * A full-duplex byte connection owned by the `Scope` it was acquired in: closing that scope closes it.
 * Reading is pull-driven: bytes are taken from the socket only while the consumer of `stream` asks for them,
 * with at most a few hundred KiB read ahead, so a slow consumer never makes memory grow. Writing waits while
 * the send queue is above its high-water mark.
 */
export interface Connection {
  /** Human-readable origin, e.g. `"hybrid:///tmp/x.sock port 1073741825"`. */
  readonly description: string
  readonly peer: PeerIdentity
  /** Inbound bytes up to the peer's EOF. Single consumer: a concurrent second fails (`Read`); sequential ones continue. */
  readonly stream: Stream.Stream<Uint8Array, TransportError>
  /**
   * Reading for a consumer that never waits: each chunk is handed to `onChunk` synchronously, in the engine's own
   * read callback, with nothing queued and no fiber woken per read; bytes already read ahead come first. Completes at
   * the peer's EOF and fails like `stream`; interrupting it stops reading; a throw from `onChunk` ends it as a
   * defect. The same single consumer as `stream`, so its claim excludes a concurrent `stream` or `forEach`.
   */
  readonly forEach: (onChunk: (chunk: Uint8Array) => void) => Effect.Effect<void, TransportError>
  /**
   * Moves every inbound byte into `fd` (a pipe, FIFO, file or terminal the caller opened and keeps open) up to the
   * peer's EOF, and gives the byte count. The native engine on Linux does it inside the kernel (splice): no byte
   * reaches JavaScript, and a full `fd` holds the peer back; other engines, and bytes already read ahead, go
   * chunk by chunk through `fs.write`. `options.stop` ends it early with the count so far; `options.onProgress` hears
   * the count as it grows (each MiB or so in the kernel, each chunk otherwise). The same single consumer as
   * `stream`; once the engine pipes, the input has no other reader. A failure of `fd` is a `Write` error.
   */
  readonly pipeTo: (fd: number, options?: PipeOptions) => Effect.Effect<number, TransportError>
  /**
   * Sends everything `fd` (a pipe, FIFO or file the caller opened and keeps open) holds up to its end, and gives
   * the byte count; it does not half-close (use `endWrite`). The native engine on Linux does it inside the kernel
   * (splice), waiting for an empty FIFO to be written; other engines, or bytes still queued, read it chunk by chunk
   * through `fs.read`. Writes are refused (`Write`, EBUSY) until it ends; interrupting it leaves the engine sending
   * up to the end or the close. A failure reading `fd` is a `Read` error naming the descriptor. `options.onProgress`
   * as for `pipeTo`.
   */
  readonly pipeFrom: (
    fd: number,
    options?: Pick<PipeOptions, "onProgress">
  ) => Effect.Effect<number, TransportError>
  /** Queues `chunk` (over 1 MiB: in slices, as `writeAll`); completes once the send queue is below its high-water
   * mark. The chunk must not be mutated afterwards. */
  readonly write: (chunk: Uint8Array) => Effect.Effect<void, TransportError>
  /**
   * Queues several chunks with one gather write where the engine allows it, then waits like `write`. More than
   * 1 MiB goes a 1 MiB slice at a time, each once the last has left (so an engine that copies what the kernel has
   * no room for never copies more); writes made meanwhile wait their turn, so the bytes of each write stay together.
   */
  readonly writeAll: (chunks: ReadonlyArray<Uint8Array>) => Effect.Effect<void, TransportError>
  /** Writes every chunk it receives (with `writeAll`); it does not half-close at the end — use `endWrite`. */
  readonly sink: Sink.Sink<void, Uint8Array, never, TransportError>
  /** Half-close: the peer reads EOF once everything queued before has been sent. Idempotent. */
  readonly endWrite: Effect.Effect<void, TransportError>
  /** Closes both directions at once, discarding unsent bytes. Idempotent. */
  readonly close: Effect.Effect<void>
  /** This socket for `spawn`'s `stdio` while untouched (never read, written or ended), else or without an fd
   * `undefined`; then close this Connection and use it no more (the child's copy stays; libuv makes it blocking). */
  readonly handoff?: () => Socket | number | undefined
}

/**
 * `Connection.pipeTo` for a stream of your own (a wrapper's, say): writes everything `input` yields into `fd`
 * chunk by chunk until its end or `options.stop`, and gives the byte count; `description` names the source in errors.
 */
export const pipeStreamTo = (
  input: Stream.Stream<Uint8Array, TransportError>,
  fd: number,
  description: string,
  options: PipeOptions = {}
): Effect.Effect<number, TransportError> => {
  const target = { address: description }
  return withDescriptor(fd, target, description, "pipeTo", () =>
    copyInto(input, fd, target, description, options)
  )
}

/**
 * `Connection.pipeFrom` through a writer of your own (a wrapper's, say): reads `fd` chunk by chunk up to its end,
 * hands each chunk to `write`, and gives the byte count; `description` names the destination in errors.
 */
export const pipeDescriptorTo = (
  fd: number,
  write: (chunk: Uint8Array) => Effect.Effect<void, TransportError>,
  description: string,
  options: Pick<PipeOptions, "onProgress"> = {}
): Effect.Effect<number, TransportError> => {
  const target = { address: description }
  return withDescriptor(fd, target, description, "pipeFrom", () =>
    copyFrom(fd, write, target, description, options.onProgress)
  )
}

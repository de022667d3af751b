/**
 * Writing into and reading from a descriptor the caller opened (a pipe, a FIFO, a file, a terminal) from
 * JavaScript: the path of `Connection.pipeTo` / `pipeFrom` where the engine cannot move the bytes in the kernel.
 * Node has no way to poll a descriptor it did not open, so a non-blocking one that is full (or empty) is tried
 * again after a short pause.
 */
import { fstatSync, read, write } from "node:fs"
import { Effect, Stream } from "effect"
import type { PipeOptions } from "../Connection.js"
import type { TransportError } from "../TransportError.js"
import { osError, type Target, transportError } from "./rawSocket.js"

/** The pause before a full (or, read, empty) non-blocking descriptor is tried again. */
const FullRetryMillis = 2
/** The most one read takes. */
const ReadSize = 64 * 1024

// A closed descriptor would otherwise be found only by the first write, which may never come.
const isOpen = (fd: number) => {
  try {
    fstatSync(fd)
    return true
  } catch {
    return false
  }
}

/** `undefined` for an open descriptor, else the error `pipeTo` / `pipeFrom` fail with: a number `fs` would throw on
 * synchronously, or a closed descriptor, is a typed failure at once. Asked once, before either path starts. */
export const badDescriptor = (
  fd: number,
  target: Target,
  description: string,
  syscall: "pipeTo" | "pipeFrom"
): TransportError | undefined =>
  Number.isSafeInteger(fd) && fd >= 0 && fd <= 0x7fffffff && isOpen(fd)
    ? undefined
    : transportError(
        syscall === "pipeTo" ? "Write" : "Read",
        target,
        `${description}: ${String(fd)} is not an open file descriptor`,
        "EBADF",
        syscall
      )

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

/** Writes all `input` into `fd` (an open descriptor: see badDescriptor) until its end or `stop`, and gives the
 * byte count. */
export const copyInto = (
  input: Stream.Stream<Uint8Array, TransportError>,
  fd: number,
  target: Target,
  description: string,
  { onProgress, stop = Effect.never }: PipeOptions
): Effect.Effect<number, TransportError> =>
  Effect.suspend(() => {
    let moved = 0
    const what = `${description}: piping into descriptor ${fd}`
    const write = (chunk: Uint8Array) =>
      Effect.map(writeFully(fd, chunk, target, what), () => {
        moved += chunk.length
        onProgress?.(moved)
      })
    const copy = Stream.runForEachArray(input, (chunks) => Effect.forEach(chunks, write, { discard: true }))
    return Effect.map(Effect.raceFirst(copy, stop), () => moved)
  })

/** The next bytes of `fd` (a fresh buffer: the caller may keep it), or `undefined` at its end. While `fd` is
 * empty, `gone()` is asked before each retry: an error there ends the wait. */
const readSome = (
  fd: number,
  target: Target,
  what: string,
  gone: () => TransportError | undefined
): Effect.Effect<Uint8Array | undefined, TransportError> =>
  Effect.callback<Uint8Array | undefined, TransportError>((resume) => {
    const step = () =>
      read(fd, Buffer.allocUnsafe(ReadSize), 0, ReadSize, null, (err, got, buffer) => {
        const error = err?.code === "EAGAIN" ? gone() : undefined
        if (error !== undefined) return resume(Effect.fail(error))
        if (err?.code === "EAGAIN") return void setTimeout(step, FullRetryMillis)
        if (err !== null) return resume(Effect.fail(osError("Read", target, what, err, "read")))
        resume(Effect.succeed(got === 0 ? undefined : buffer.subarray(0, got)))
      })
    step()
  })

/** Reads `fd` (an open descriptor: see badDescriptor) up to its end, handing each piece to `send`, and gives the
 * byte count; `gone` as for readSome. */
export const copyFrom = (
  fd: number,
  send: (chunk: Uint8Array) => Effect.Effect<void, TransportError>,
  target: Target,
  description: string,
  onProgress?: (moved: number) => void,
  gone: () => TransportError | undefined = () => undefined
): Effect.Effect<number, TransportError> =>
  Effect.suspend(() => {
    let moved = 0
    const what = `${description}: piping from descriptor ${fd}`
    const loop: Effect.Effect<number, TransportError> = Effect.flatMap(
      readSome(fd, target, what, gone),
      (chunk) =>
        chunk === undefined
          ? Effect.succeed(moved)
          : Effect.andThen(
              send(chunk),
              Effect.suspend(() => {
                moved += chunk.length
                onProgress?.(moved)
                return loop
              })
            )
    )
    return loop
  })

/** `use()` once `fd` is known to be an open descriptor, else its EBADF failure. */
export const withDescriptor = <A>(
  fd: number,
  target: Target,
  description: string,
  syscall: "pipeTo" | "pipeFrom",
  use: () => Effect.Effect<A, TransportError>
): Effect.Effect<A, TransportError> =>
  Effect.suspend(() => {
    const bad = badDescriptor(fd, target, description, syscall)
    return bad === undefined ? use() : Effect.fail(bad)
  })

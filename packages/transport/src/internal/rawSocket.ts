/**
 * The engine-neutral socket every engine (Node `net`, the native engine, the
 * in-memory pipe) adapts to, kept close to readiness: the engines move bytes
 * and report what happened; the one Connection (connection.ts) holds the
 * policy — read-ahead, waiting for drain, half-close after the flush, one
 * failure fanned out to readers and writers.
 */

/** An operating-system style error: `code` like `ECONNRESET`, `syscall` like `read`. */
export interface RawError {
  readonly code: string
  readonly syscall?: string
  readonly message: string
}

/** What a socket reports. */
export interface RawEvents {
  /** Bytes, only while reading is started. */
  data(chunk: Uint8Array): void
  /** The peer's EOF; no data follows. */
  end(): void
  /** The first failure; the socket is unusable in both directions afterwards. */
  error(error: RawError): void
  /** The send queue drained after a write returned false, or emptied. */
  drain(): void
}

/** A connected stream socket, seen from its owner. */
export interface RawSocket {
  /** Registers the event handlers, replacing earlier ones. */
  bind(events: RawEvents): void
  readStart(): void
  readStop(): void
  /** Queues bytes (one gather write where possible); false above the high-water mark, `drain` follows. May throw. */
  write(chunks: ReadonlyArray<Uint8Array>): boolean
  /** Bytes that must be flushed before `shutdown` (0 for engines that order the half-close themselves). */
  readonly queued: number
  /** Half-closes now. May throw. */
  shutdown(): void
  /** Closes both directions; idempotent; no event fires afterwards. */
  close(): void
}

/** Turns anything thrown by an engine into a RawError. */
export const toRawError = (cause: unknown, fallbackSyscall?: string): RawError => {
  const c = (typeof cause === "object" && cause !== null ? cause : {}) as {
    code?: unknown
    syscall?: unknown
    message?: unknown
  }
  const syscall = typeof c.syscall === "string" ? c.syscall : fallbackSyscall
  return {
    code: typeof c.code === "string" ? c.code : "EIO",
    message: typeof c.message === "string" ? c.message : String(cause),
    ...(syscall === undefined ? {} : { syscall })
  }
}

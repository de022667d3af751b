/**
 * The engine-neutral socket every transport adapts to (Node `net`, the native
 * engine, the in-memory pipe), so that one Connection implementation carries
 * the backpressure and lifetime rules for all of them. The shape follows the
 * native engine's: callbacks are single slots (registering again replaces),
 * reads happen only between `readStart` and `readStop`.
 */

/** An operating-system style error: `code` like `ECONNRESET`, `syscall` like `read`. */
export interface RawError {
  readonly code: string
  readonly syscall?: string
  readonly message: string
}

/** A connected stream socket, seen from its owner. */
export interface RawSocket {
  /** Inbound bytes while reading is started; `null` = the peer's EOF (sent once, after which no data follows). */
  onData(cb: (chunk: Uint8Array | null) => void): void
  /** A fatal error: the socket is unusable in both directions afterwards. */
  onError(cb: (error: RawError) => void): void
  /** The send queue emptied (or fell below the low-water mark) after a write returned false. */
  onDrain(cb: () => void): void
  readStart(): void
  readStop(): void
  /** Queues bytes; false when the send queue is above its high-water mark. May throw a RawError-shaped error. */
  write(chunk: Uint8Array): boolean
  /** Queues several chunks with one gather write where possible. */
  writev(chunks: ReadonlyArray<Uint8Array>): boolean
  /** Half-close after the queue is flushed. */
  shutdown(cb: (error: RawError | null) => void): void
  /** Closes both directions; idempotent; no callback fires afterwards. */
  close(): void
}

/** Turns anything thrown by an engine into a RawError. */
export const toRawError = (cause: unknown, fallbackSyscall?: string): RawError => {
  if (typeof cause === "object" && cause !== null) {
    const c = cause as { code?: unknown; syscall?: unknown; message?: unknown }
    const code = typeof c.code === "string" ? c.code : "EIO"
    const syscall = typeof c.syscall === "string" ? c.syscall : fallbackSyscall
    const message = typeof c.message === "string" ? c.message : String(cause)
    return syscall === undefined ? { code, message } : { code, syscall, message }
  }
  return fallbackSyscall === undefined
    ? { code: "EIO", message: String(cause) }
    : { code: "EIO", syscall: fallbackSyscall, message: String(cause) }
}

/** A RawError as a throwable, for engines that report synchronous failures by throwing. */
export class RawFailure extends Error implements RawError {
  readonly code: string
  readonly syscall?: string
  constructor(error: RawError) {
    super(error.message)
    this.code = error.code
    if (error.syscall !== undefined) this.syscall = error.syscall
  }
}

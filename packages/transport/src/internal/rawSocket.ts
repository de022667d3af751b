/**
 * The engine-neutral socket every engine (Node `net`, native, in-memory) adapts to: engines move bytes and
 * report events; the one Connection (connection.ts) holds the policy — read-ahead, drain waits, half-close
 * after the flush, one failure fanned out to readers and writers. Plus TransportErrors from engine reports.
 */
import type { Socket } from "node:net"
import { TransportError, type TransportErrorReason } from "../TransportError.js"

/** An operating-system style error: `code` like `ECONNRESET`, `syscall` like `read`. */
export interface RawError {
  readonly code: string
  readonly syscall?: string
  readonly message: string
}

/** What a socket reports. */
export interface RawEvents {
  /** The bytes of one engine read, in order (one chunk or more), only while reading is started. */
  data(chunks: ReadonlyArray<Uint8Array>): void
  /** The peer's EOF; no data follows. */
  end(): void
  /** The first failure; the socket is unusable in both directions afterwards. */
  error(error: RawError): void
  /** The send queue drained after a write returned false, or emptied. */
  drain(): void
  /** `pipeFrom` reached its descriptor's end and sent everything. */
  piped?(): void
  /** A pump moved more bytes (read `piped`). */
  progress?(): void
}

/** A connected stream socket, seen from its owner. */
export interface RawSocket {
  /** Registers the event handlers, replacing earlier ones. */
  bind(events: RawEvents): void
  readStart(): void
  readStop(): void
  /** Queues bytes (one gather write where possible); false above the high-water mark, `drain` follows. May throw. */
  write(chunks: ReadonlyArray<Uint8Array>): boolean
  /** Bytes that must be flushed before `shutdown` (0 for engines that order the half-close themselves); an engine
   * reporting any emits `drain` once they are gone. */
  readonly queued: number
  /** Half-closes; `flushed` runs once every byte written before it has left. May throw. */
  shutdown(flushed: () => void): void
  /** Closes both directions; idempotent; no event fires afterwards. */
  close(): void
  /**
   * Moves all further input into `fd` inside the engine, reporting `end` once it is all there and no `data`
   * (see `Connection.pipeTo`); throws (`code` ENOSYS) where the platform cannot. Engines without it: absent.
   */
  pipeTo?(fd: number): void
  /** Sends what `fd` holds up to its end inside the engine, then reports `piped`; `write` is refused meanwhile. */
  pipeFrom?(fd: number): void
  /** Bytes `pipeTo` / `pipeFrom` have moved. */
  readonly piped?: number
  /** The socket as `spawn` takes it in `stdio` (see `Connection.handoff`), if the engine has one. */
  handoff?(): Socket | number | undefined
}

/** Turns anything thrown by an engine into a RawError. */
export const toRawError = (cause: unknown, fallbackSyscall?: string): RawError => {
  const c = (typeof cause === "object" && cause !== null ? cause : {}) as Record<string, unknown>
  const syscall = typeof c.syscall === "string" ? c.syscall : fallbackSyscall
  return {
    code: typeof c.code === "string" ? c.code : "EIO",
    message: typeof c.message === "string" ? c.message : String(cause),
    ...(syscall === undefined ? {} : { syscall })
  }
}

/** The operation a routing or address error is reported against. */
export type Phase = "Listen" | "Connect"

/** What an error is about: the formatted address and, when one applies, the vsock port. */
export type Target = { readonly address: string; readonly port?: number }

/** `"<address> port <port>"`, the description of connections and listeners. */
export const describe = (target: Target): string =>
  target.port === undefined ? target.address : `${target.address} port ${target.port}`

/** A TransportError about `target`, with the OS error `code` and `syscall` when there are any. */
export const transportError = (
  reason: TransportErrorReason,
  target: Target,
  message: string,
  code?: string,
  syscall?: string
): TransportError =>
  new TransportError({
    reason,
    address: target.address,
    ...(target.port === undefined ? {} : { port: target.port }),
    ...(code === undefined ? {} : { code }),
    ...(syscall === undefined ? {} : { syscall }),
    message
  })

/** A TransportError for what an engine threw or reported: `<what>: <OS message>`. */
export const osError = (
  reason: TransportErrorReason,
  target: Target,
  what: string,
  cause: unknown,
  syscall?: string
): TransportError => {
  const raw = toRawError(cause, syscall)
  return transportError(reason, target, `${what}: ${raw.message}`, raw.code, raw.syscall)
}

/** The error of an address family a layer does not carry. */
export const unsupported = (phase: Phase, target: Target, why: string) =>
  transportError(phase, target, why, "EAFNOSUPPORT", phase === "Listen" ? "socket" : "connect")

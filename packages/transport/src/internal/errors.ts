import type { TransportErrorReason } from "../TransportError.js"
import { TransportError } from "../TransportError.js"
import type { RawError } from "./rawSocket.js"

/** What an error is about: the formatted address and, when one applies, the vsock port. */
export interface Target {
  readonly address: string
  readonly port?: number
}

/** Builds a TransportError for `target`, carrying the OS error code of `raw` when there is one. */
export const transportError = (
  reason: TransportErrorReason,
  target: Target,
  message: string,
  raw?: RawError
): TransportError =>
  new TransportError({
    reason,
    address: target.address,
    ...(target.port === undefined ? {} : { port: target.port }),
    ...(raw === undefined ? {} : { code: raw.code }),
    ...(raw?.syscall === undefined ? {} : { syscall: raw.syscall }),
    message
  })

/** `"<address> port <port>"`, the description of connections and listeners. */
export const describe = (target: Target): string =>
  target.port === undefined ? target.address : `${target.address} port ${target.port}`

/** The error of an address family a layer does not carry. */
export const unsupported = (phase: "Listen" | "Connect", target: Target, why: string) =>
  transportError(phase, target, why, {
    code: "EAFNOSUPPORT",
    syscall: phase === "Listen" ? "socket" : "connect",
    message: "address family not supported"
  })

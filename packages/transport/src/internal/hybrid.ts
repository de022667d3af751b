/**
 * The host side of the Firecracker / Cloud Hypervisor hybrid vsock handshake:
 * on a fresh connection to the VMM's Unix socket send `CONNECT <port>\n`; the
 * VMM answers `OK <assigned port>\n` once the guest accepted, or closes the
 * connection when nothing listens on that port in the guest. Bytes the guest
 * sends right after the answer are kept for the Connection.
 */
import { Effect } from "effect"
import type { TransportError } from "../TransportError.js"
import type { Target } from "./errors.js"
import { transportError } from "./errors.js"
import type { RawError, RawSocket } from "./rawSocket.js"
import { toRawError } from "./rawSocket.js"

/** Longest acceptable answer line: `OK 4294967295\n` is 14 bytes. */
const MaxReplyBytes = 32

const LineFeed = 0x0a

/** The bytes that followed the `OK <n>\n` line and the VMM-assigned port. */
export interface HandshakeResult {
  readonly leftover: ReadonlyArray<Uint8Array>
  readonly assignedPort: number
}

const printable = (bytes: Uint8Array): string => JSON.stringify(Buffer.from(bytes).toString("latin1"))

/**
 * Runs the handshake on `raw` (connected, not yet reading). The deadline is
 * the caller's (`Effect.timeoutFail`); interruption stops reading and leaves
 * closing the socket to its owner.
 */
export const hybridHandshake = (
  raw: RawSocket,
  port: number,
  target: Target
): Effect.Effect<HandshakeResult, TransportError> =>
  Effect.callback<HandshakeResult, TransportError>((resume) => {
    let received = Buffer.alloc(0)
    let settled = false
    const settle = (effect: Effect.Effect<HandshakeResult, TransportError>) => {
      if (settled) return
      settled = true
      raw.readStop()
      resume(effect)
    }
    const failed = (error: RawError) =>
      settle(
        Effect.fail(
          transportError("Connect", target, `hybrid vsock handshake failed: ${error.message}`, error)
        )
      )
    // A VMM that hangs up refuses the connection (nothing listens on that guest
    // port); one that answers anything but `OK <n>` is refused by us.
    const refuse = (why: string, code: "ECONNREFUSED" | "EPROTO") =>
      settle(
        Effect.fail(
          transportError(code === "EPROTO" ? "PeerRefused" : "Connect", target, why, {
            code,
            syscall: "connect",
            message: why
          })
        )
      )
    const notOk = (answer: Uint8Array, more = "") =>
      refuse(`the VMM answered CONNECT ${port} with ${printable(answer)}${more}, not OK <port>`, "EPROTO")
    raw.bind({
      data: (chunk) => {
        if (settled) return
        received = Buffer.concat([received, chunk])
        const end = received.indexOf(LineFeed)
        if (end < 0) {
          if (received.length > MaxReplyBytes) notOk(received.subarray(0, MaxReplyBytes), "…")
          return
        }
        const match = /^OK ([0-9]{1,10})$/.exec(received.subarray(0, end).toString("latin1"))
        const assignedPort = match === null ? Number.NaN : Number(match[1])
        if (!(assignedPort <= 0xffffffff)) return notOk(received.subarray(0, end + 1))
        const rest = received.subarray(end + 1)
        settle(Effect.succeed({ leftover: rest.length > 0 ? [rest] : [], assignedPort }))
      },
      end: () =>
        refuse(
          `the VMM closed the connection without answering CONNECT ${port}: nothing accepts on guest port ${port}`,
          "ECONNREFUSED"
        ),
      error: failed,
      drain: () => {}
    })
    try {
      raw.write([Buffer.from(`CONNECT ${port}\n`, "latin1")])
    } catch (cause) {
      return failed(toRawError(cause, "write"))
    }
    raw.readStart()
    return Effect.sync(() => {
      settled = true
      raw.readStop()
    })
  })

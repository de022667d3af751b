/**
 * `gcsctl caps [--guest ADDRESS]`: what the guest said in the negotiation —
 * protocol version, OS and capabilities — as JSON.
 *
 * @since 0.1.0
 */
import { ProtocolError } from "@gcs-bridge/protocol"
import { Effect, Option } from "effect"
import { Command } from "effect/cli"
import { withGuest } from "../GuestSession.js"
import { escapeControls } from "../internal/terminalText.js"
import * as CliOptions from "../options.js"

/**
 * The `caps` command. The capabilities are printed as the guest sent them
 * (keys in its order, unknown ones kept, absent ones absent), not as the
 * decoded Schema with its defaults; C1 controls and DEL, which JSON leaves
 * raw, are escaped.
 *
 * @since 0.1.0
 */
export const caps = Command.make("caps", CliOptions.session, (options) =>
  withGuest(
    "caps",
    options,
    ({ connection, receivedCapabilities }) =>
      Effect.try({
        try: () =>
          escapeControls(
            JSON.stringify(
              {
                protocol: connection.protocol,
                os: connection.os,
                // The decoded form only if the tap missed the response, which the
                // bridge's identical frame reader would have refused first.
                capabilities: Option.getOrElse(receivedCapabilities, () => connection.gcsCapabilities)
              },
              null,
              2
            ),
            true
          ),
        // Nesting deep enough to exhaust the stack: the guest's doing, said as such.
        catch: () =>
          new ProtocolError.ProtocolError({
            reason: "InvalidBody",
            message: "the guest's capabilities are nested too deeply to print"
          })
      }),
    true
  )
).pipe(
  Command.withDescription(
    "Connect to the guest and print the negotiated protocol version, the guest OS and its capabilities (as the guest sent them) as JSON."
  )
)

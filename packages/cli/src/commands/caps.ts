/**
 * `gcsctl caps [--guest ADDRESS]`: what the guest said in the negotiation —
 * protocol version, OS and capabilities — as JSON.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { Command } from "effect/cli"
import { withGuest } from "../GuestSession.js"
import * as CliOptions from "../options.js"

/**
 * The `caps` command.
 *
 * @since 0.1.0
 */
export const caps = Command.make("caps", CliOptions.session, (options) =>
  withGuest("caps", options, (connection) =>
    Effect.succeed(
      JSON.stringify(
        { protocol: connection.protocol, os: connection.os, capabilities: connection.gcsCapabilities },
        null,
        2
      )
    )
  )
).pipe(
  Command.withDescription(
    "Connect to the guest and print the negotiated protocol version, the guest OS and its capabilities as JSON."
  )
)

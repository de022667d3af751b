/**
 * The soak's guest, in a process of its own so that the host's descriptors and
 * heap are measured alone (and the two share the machine's cores):
 * `node soakGuest.js <socket path base> <engine>`. Serves one connection and
 * exits when the host closes it.
 */
import { Guest } from "@gcs-bridge/guest"
import { Transport, UnixAddress } from "@gcs-bridge/transport"
import { Effect, Logger, LogLevel } from "effect"

const [path, engine] = process.argv.slice(2)
if (path === undefined) {
  console.error("usage: soakGuest.js <socket path base> [native|node]")
  process.exit(2)
}

Effect.runPromise(
  Guest.run({
    address: new UnixAddress({ path }),
    once: true,
    retryInterval: "5 millis",
    console: "none"
  }).pipe(
    Effect.provide(engine === "node" ? Transport.layerNode : Transport.layer),
    Logger.withMinimumLogLevel(LogLevel.Warning)
  )
).then(
  () => process.exit(0),
  (error: unknown) => {
    console.error("soak guest failed:", error)
    process.exit(1)
  }
)

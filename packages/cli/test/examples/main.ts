import { NodeRuntime } from "@effect/platform-node"
import { GuestConnection } from "@gcs-bridge/runtime"
import { Transport, VsockAddress } from "@gcs-bridge/transport"
import { Duration, Effect, Layer } from "effect"
import { runInContainer } from "./runInContainer.js"

// Listen for the guest of the QEMU VM with guest-cid=3 on AF_VSOCK port 0x40000000,
// accept it within 2 minutes, and negotiate protocol version 4.
const GuestLive = GuestConnection.layer({
  address: new VsockAddress({ cid: 3 }),
  connectTimeout: Duration.minutes(2)
}).pipe(Layer.provide(Transport.layer))

runInContainer("demo", ["uname", "-a"]).pipe(
  Effect.flatMap((code) => Effect.log(`exit code ${code}`)),
  Effect.catchTags({
    GuestError: (e) => Effect.logError(`guest refused: ${e.hresultName ?? e.hresult} ${e.message}`),
    BridgeClosed: (e) => Effect.logError(`bridge closed (${e.reason}): ${e.message}`)
  }),
  Effect.provide(GuestLive),
  NodeRuntime.runMain
)

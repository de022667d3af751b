/**
 * Our guest as a peer process (what `gcsctl guest --connect unix://PATH
 * --once` does): dials the host's bridge port on the Unix socket base `path`,
 * serves that one connection with `Guest.run`, and exits when the host closes
 * it — so the host's CPU figures never include the guest's work. SIGTERM
 * stops it cleanly (every process it started is killed).
 *
 * `maxInFlight` is raised from its default (1024): every live process holds a
 * WaitForProcess in flight, and the scale benchmark keeps 10,000 alive.
 *
 * Argument: JSON `{ path, engine }` (`engine`: `native` for `Transport.layer`,
 * `node` for `Transport.layerNode`). Exits 0 after a clean end, 1 otherwise.
 */
import { Guest } from "@gcs-bridge/guest"
import { Transport, UnixAddress } from "@gcs-bridge/transport"
import { Cause, Effect, Exit, Fiber, Logger, LogLevel } from "effect"

const { path, engine } = JSON.parse(process.argv[2] ?? "{}") as {
  readonly path: string
  readonly engine: "native" | "node"
}

const program = Guest.run({
  address: new UnixAddress({ path }),
  once: true,
  connectTimeout: "60 seconds",
  maxInFlight: 65_536
}).pipe(
  Effect.provide(engine === "node" ? Transport.layerNode : Transport.layer),
  Logger.withMinimumLogLevel(LogLevel.Warning)
)

const fiber = Effect.runFork(program)
process.once("SIGTERM", () => {
  Effect.runFork(Fiber.interrupt(fiber))
})
Effect.runPromise(Fiber.await(fiber)).then((exit) => {
  if (Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)) {
    console.error(`guest peer: ${Cause.pretty(exit.cause)}`)
    process.exit(1)
  }
  process.exit(Exit.isSuccess(exit) ? 0 : 143)
})

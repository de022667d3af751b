/**
 * The `gcsctl` executable: runs one invocation against the real process
 * (stdio, signals, file system) and exits with its status.
 *
 * @since 0.1.0
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Transport } from "@gcs-bridge/transport"
import { Cause, Effect, Exit, Layer } from "effect"
import { runCli } from "./Cli.js"
import { Signals } from "./Signals.js"
import { Stdio } from "./Stdio.js"

const program = runCli(process.argv.slice(2)).pipe(
  Effect.provide(Layer.mergeAll(NodeServices.layer, Stdio.layerNode, Signals.layerNode, Transport.layer))
)

// A fiber waiting on a guest holds no libuv handle of its own while the
// transport sets up, so the loop is kept alive until the program is done.
const keepAlive = setInterval(() => undefined, 2 ** 31 - 1)

// Not NodeRuntime.runMain: it interrupts the program on SIGINT/SIGTERM,
// where `run` forwards them to the remote process (Signals).
Effect.runFork(program).addObserver((exit) => {
  clearInterval(keepAlive)
  if (Exit.isSuccess(exit)) {
    // Explicit exit: a stdin still being read (run -i) must not keep us alive
    // after the remote process is gone. Output was flushed before this point.
    process.exit(exit.value)
  }
  process.stderr.write(`gcsctl: internal error: ${Cause.pretty(exit.cause).split("\n")[0] ?? "unknown"}\n`)
  process.exit(70)
})

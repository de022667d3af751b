/**
 * The `gcsctl` executable: runs one invocation against the real process
 * (stdio, signals, file system) and exits with its status.
 *
 * @since 0.1.0
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Cause, Effect, Exit, Layer } from "effect"
import { Transport } from "@gcs-bridge/transport"
import { runCli } from "./Cli.js"
import { Signals } from "./Signals.js"
import { Stdio } from "./Stdio.js"

const program = runCli(process.argv.slice(2)).pipe(
  Effect.provide(Layer.mergeAll(NodeContext.layer, Stdio.layerNode, Signals.layerNode, Transport.layer))
)

// A fiber waiting on a guest holds no libuv handle of its own while the
// transport sets up, so the loop is kept alive until the program is done.
const keepAlive = setInterval(() => undefined, 2 ** 31 - 1)

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

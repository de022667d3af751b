/**
 * `@gcs-bridge/cli`: the `gcsctl` command tree as a library, so that it can
 * be run in-process (tests, embedding) with other stdio, signal and
 * transport sources. The executable is `bin/gcsctl.js` (`src/main.ts`).
 *
 * @since 0.1.0
 */

/** Recording a bridge connection to a capture file (`gcsctl run --capture`). @since 0.1.0 */
export * as Capture from "./Capture.js"
/** The decoder behind `gcsctl decode`. @since 0.1.0 */
export * as CaptureDecoder from "./CaptureDecoder.js"
/** The command tree and the program that runs one invocation. @since 0.1.0 */
export { gcsctl, runCli, version, type CliEnvironment } from "./Cli.js"
/** The failures of gcsctl itself. @since 0.1.0 */
export * from "./CliError.js"
/** One-line rendering of every failure. @since 0.1.0 */
export * as ErrorLine from "./ErrorLine.js"
/** Exit statuses. @since 0.1.0 */
export { ExitCode, ExitStatus } from "./ExitStatus.js"
/** Signals as a service. @since 0.1.0 */
export { Signals, signalNumber, type HandledSignal, type SignalsService } from "./Signals.js"
/** The local standard streams as a service. @since 0.1.0 */
export { Stdio, type LocalTerminal, type StdioService, type TerminalSize } from "./Stdio.js"

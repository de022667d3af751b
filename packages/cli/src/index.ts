/**
 * `@gcs-bridge/cli`: the `gcsctl` command tree as a library, so it can be run
 * in-process (tests, embedding) with other stdio and signal sources.
 *
 * @since 0.1.0
 */
export * as CaptureDecoder from "./CaptureDecoder.js"
export { gcsctl, runCli, version, type CliEnvironment } from "./Cli.js"
export * from "./CliError.js"
export * as ErrorLine from "./ErrorLine.js"
export { ExitCode, ExitStatus } from "./ExitStatus.js"
export { Signals, signalNumber, type HandledSignal, type SignalsService } from "./Signals.js"
export { Stdio, type LocalTerminal, type StdioService, type TerminalSize } from "./Stdio.js"

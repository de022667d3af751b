/**
 * Every failure `gcsctl` can meet, as one line of plain text: what happened,
 * where (the guest's address), and for guest errors the HRESULT by name. No
 * stack traces: a user's mistake or a guest's misbehaviour is not a bug in
 * `gcsctl`, and the line must be readable in a log or a CI report.
 *
 * @since 0.1.0
 */
import { Guid, MessageType, ProtocolError } from "@gcs-bridge/protocol"
import { BridgeClosed, GuestError } from "@gcs-bridge/runtime"
import { AddressError, TransportError } from "@gcs-bridge/transport"
import { Cause, Effect, Option, Result } from "effect"
import { CliError } from "effect/cli"
import { EmbeddedGuestError, HexInputError, Interrupted, StdioError, UsageError } from "./CliError.js"
import { ExitCode, setExitStatus, type ExitStatus } from "./ExitStatus.js"
import { signalNumber } from "./Signals.js"
import { Stdio } from "./Stdio.js"
import { escapeControls } from "./internal/terminalText.js"

/**
 * What the line may say about where the failure happened.
 *
 * @since 0.1.0
 */
export interface ErrorContext {
  /** The guest's address as the user gave it (or the embedded guest's). */
  readonly guest?: string
  /** The accept timeout in force, for "the guest never came". */
  readonly acceptTimeout?: string
}

/**
 * Collapses whitespace (including newlines) so the result is one line, and
 * escapes the control characters left: the text may carry the guest's words.
 */
const oneLine = (text: string): string => escapeControls(text.replace(/\s+/g, " ").trim())

const hex32 = (n: number): string => `0x${(n >>> 0).toString(16).padStart(8, "0")}`

const describeTransport = (error: TransportError, context: ErrorContext): string => {
  const where = error.port === undefined ? error.address : `${error.address} port ${hex32(error.port)}`
  const os = error.code === undefined ? "" : ` [${error.code}]`
  switch (error.reason) {
    case "Listen":
      return `cannot listen on ${where}: ${error.message}${os}`
    case "Accept":
      return `accepting on ${where} failed: ${error.message}${os}`
    case "AcceptTimeout":
      return `the guest never came: nothing connected to ${where} within ${context.acceptTimeout ?? "the accept timeout"}`
    case "Connect":
      return `cannot connect to ${where}: ${error.message}${os}`
    case "ConnectTimeout":
      return `connecting to ${where} timed out: ${error.message}`
    case "Read":
    case "Write":
      return `connection ${where} failed (${error.reason.toLowerCase()}): ${error.message}${os}`
    case "Closed":
      return `connection ${where} is closed: ${error.message}`
    case "PeerRefused":
      return `refused an unexpected peer on ${where}: ${error.message}`
  }
}

const describeGuest = (error: GuestError): string => {
  const name = error.hresultName
  const code = name === undefined ? hex32(error.hresult) : `${name} (${hex32(error.hresult)})`
  const target =
    error.containerId === "" || error.containerId === Guid.NullGuid ? "" : ` for ${error.containerId}`
  return `guest error ${code} in ${error.proc}${target}: ${error.message}`
}

const describeBridgeClosed = (error: BridgeClosed, context: ErrorContext): string => {
  switch (error.reason) {
    case "EndOfStream":
      return "the guest closed the bridge"
    case "Unresponsive":
      return `the guest stopped responding: ${error.message}`
    case "Closed":
      return `the bridge is closed: ${error.message}`
    case "Defect":
      return `the bridge stopped on an internal error: ${error.message}`
    case "Transport":
      return error.cause === undefined
        ? `the bridge failed: ${error.message}`
        : `the bridge failed: ${describe(error.cause, context)}`
    case "Protocol":
      return error.cause === undefined
        ? `the guest broke the protocol: ${error.message}`
        : `the guest broke the protocol: ${describe(error.cause, context)}`
  }
}

const describeProtocol = (error: ProtocolError.ProtocolError): string => {
  const details: Array<string> = []
  if (error.messageType !== undefined) details.push(MessageType.typeName(error.messageType))
  if (error.id !== undefined) details.push(`id ${error.id}`)
  if (error.offset !== undefined) details.push(`offset ${error.offset}`)
  const suffix = details.length === 0 ? "" : ` (${details.join(", ")})`
  return `protocol violation, ${error.reason}: ${error.message}${suffix}`
}

/** The options every command has (effect/cli's own), which its suggestions leave out. */
const globalOptions = ["--help", "--version", "--log-level", "--completions", "--wizard"]

/** Edit distance, for "did you mean": small strings only. */
const distance = (a: string, b: string): number => {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const next = [i]
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    row = next
  }
  return row[b.length]!
}

/** `unknown option '--versoin' (did you mean --version?)`, naming the subcommand when there is one. */
const unknownOption = (error: CliError.UnrecognizedOption): string => {
  const near =
    error.suggestions.length > 0
      ? error.suggestions
      : globalOptions.filter((option) => distance(option, error.option.split("=")[0]!) <= 2)
  const command = error.command?.slice(1).join(" ") ?? ""
  return `unknown option '${error.option}'${command === "" ? "" : ` for ${command}`}${
    near.length === 0 ? "" : ` (did you mean ${near.join(" or ")}?)`
  }`
}

const describe = (error: unknown, context: ErrorContext): string => {
  if (CliError.isCliError(error)) {
    return error._tag === "UnrecognizedOption" ? unknownOption(error) : error.message
  }
  if (error instanceof AddressError) return `bad address '${error.input}': ${error.message}`
  if (error instanceof TransportError) return describeTransport(error, context)
  if (error instanceof ProtocolError.ProtocolError) return describeProtocol(error)
  if (error instanceof GuestError) return describeGuest(error)
  if (error instanceof BridgeClosed) return describeBridgeClosed(error, context)
  if (error instanceof EmbeddedGuestError) return error.message
  if (error instanceof StdioError) {
    return `cannot use ${error.stream}: ${error.message}${error.code === undefined ? "" : ` [${error.code}]`}`
  }
  if (error instanceof HexInputError) return `bad hex input: ${error.message}`
  if (error instanceof Interrupted) {
    if (error.forced === true) {
      return `interrupted by ${error.signal} again: stopped at once, without waiting for the guest; what it ran may still be running there`
    }
    return error.undelivered === undefined
      ? `interrupted by ${error.signal}`
      : `interrupted by ${error.signal}, which the guest did not deliver to the process (${error.undelivered}); it may still be running in the guest`
  }
  if (error instanceof UsageError) return error.message
  if (error instanceof Error) return error.message
  return String(error)
}

/** Errors whose text names their own address, so the guest's is not repeated. */
const namesItsAddress = (error: unknown): boolean =>
  error instanceof TransportError ||
  (error instanceof BridgeClosed && error.reason === "Transport" && error.cause instanceof TransportError) ||
  error instanceof EmbeddedGuestError ||
  CliError.isCliError(error) ||
  error instanceof StdioError ||
  error instanceof HexInputError ||
  error instanceof Interrupted ||
  error instanceof UsageError

/**
 * The one-line description of a failure, without the program-name prefix.
 *
 * @since 0.1.0
 */
export const describeError = (error: unknown, context: ErrorContext = {}): string => {
  const text = oneLine(describe(error, context))
  return context.guest !== undefined && !namesItsAddress(error) ? `${context.guest}: ${text}` : text
}

/**
 * The full line written to stderr: `gcsctl <command>: <what happened>`.
 *
 * @since 0.1.0
 */
export const errorLine = (command: string, error: unknown, context: ErrorContext = {}): string =>
  `gcsctl${command === "" ? "" : ` ${command}`}: ${describeError(error, context)}`

/**
 * The one line for a defect (a bug in gcsctl or one of its packages): its
 * message and a pointer to the full trace, which `GCSCTL_DEBUG=1` prints.
 *
 * @since 0.1.0
 */
export const defectLine = (command: string, cause: Cause.Cause<unknown>): string => {
  const defect = Result.getOrUndefined(Cause.findDefect(cause))
  const message = defect instanceof Error ? defect.message : String(defect)
  return `gcsctl${command === "" ? "" : ` ${command}`}: internal error: ${oneLine(message)} (GCSCTL_DEBUG=1 shows the trace)`
}

/**
 * Whoever read our stdout has gone (`gcsctl … | head`): not worth a line,
 * the status says it, as for a process killed by SIGPIPE.
 */
const isClosedStdout = (error: unknown): boolean =>
  error instanceof StdioError && error.stream === "stdout" && error.code === "EPIPE"

/**
 * The exit status for a failure: 2 for a wrong command line, 128 + n for a
 * signal, 141 for a closed stdout, otherwise the command's own failure status.
 *
 * @since 0.1.0
 */
export const exitStatusFor = (error: unknown, status: number): number => {
  if (isClosedStdout(error)) return ExitCode.ClosedStdout
  if (CliError.isCliError(error) || error instanceof UsageError) return ExitCode.Usage
  if (error instanceof Interrupted) return 128 + signalNumber[error.signal]
  return status
}

/**
 * Turns the failures of a command into its line on stderr and its exit status
 * (`exitStatusFor`); defects get their own line. Interruption passes through.
 *
 * @since 0.1.0
 */
export const reportFailures =
  (command: string, status: number, context: ErrorContext = {}) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<void, never, R | Stdio | ExitStatus> =>
    effect.pipe(
      Effect.asVoid,
      Effect.catchCause((cause) => {
        if (Cause.hasInterruptsOnly(cause)) return Effect.failCause(cause as Cause.Cause<never>)
        const failure = Cause.findErrorOption(cause)
        const line = Option.isSome(failure)
          ? isClosedStdout(failure.value)
            ? ""
            : `${errorLine(command, failure.value, context)}\n`
          : `${defectLine(command, cause)}\n`
        const debug =
          Option.isNone(failure) && process.env["GCSCTL_DEBUG"] === "1"
            ? `${escapeControls(Cause.pretty(cause), true)}\n`
            : ""
        return Stdio.use((stdio) => stdio.err(`${debug}${line}`)).pipe(
          Effect.ignore,
          Effect.andThen(
            setExitStatus(Option.isSome(failure) ? exitStatusFor(failure.value, status) : ExitCode.Failure)
          )
        )
      })
    )

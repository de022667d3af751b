/**
 * Command-line flags shared by several commands, with their validation: a
 * value that cannot be used is a `CliError.ValidationError` naming the flag,
 * which `ErrorLine` turns into one line and exit status 2.
 *
 * @since 0.1.0
 */
import { type Address, formatAddress, parseAddress } from "@gcs-bridge/transport"
import { Duration, Effect, Option } from "effect"
import { CliError, Flag } from "effect/cli"

const invalid = (message: string) => new CliError.ValidationError({ message })

/** Succeeds with the value `parse` finds in `text`, or fails with `message`. */
const parseOr =
  <A>(parse: (text: string) => Option.Option<A>, message: (text: string) => string) =>
  (text: string): Effect.Effect<A, CliError.ValidationError> =>
    Option.match(parse(text), { onNone: () => Effect.fail(invalid(message(text))), onSome: Effect.succeed })

/**
 * Parses a transport address given on the command line. `memory://` addresses
 * are refused: they exist only inside one process, so no guest could come.
 *
 * @since 0.1.0
 */
export const parseCliAddress = (
  flag: string,
  text: string
): Effect.Effect<Address, CliError.ValidationError> =>
  parseAddress(text).pipe(
    Effect.mapError((error) => invalid(`bad ${flag}: ${error.message}`)),
    Effect.filterOrFail(
      (address) => address._tag !== "MemoryAddress",
      (address) =>
        invalid(`bad ${flag} '${formatAddress(address)}': a memory:// address exists only inside one process`)
    )
  )

/**
 * `--guest ADDRESS`: where to wait for the guest; absent means the embedded guest.
 *
 * @since 0.1.0
 */
export const guest: Flag.Flag<Option.Option<Address>> = Flag.String("guest").pipe(
  Flag.withMetavar("ADDRESS"),
  Flag.withDescription(
    "Address to listen on for the guest (vsock://CID, hvsock://VM-GUID, hybrid:///path, unix:///path). " +
      "Default: an embedded guest in this process, over Unix sockets in a private temporary directory."
  ),
  Flag.mapEffect((text) => parseCliAddress("--guest", text)),
  Flag.optional
)

const durationPattern = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/

const unitMillis = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const

/**
 * Parses `500ms`, `30s`, `2m`, `1h` or a bare number of seconds.
 *
 * @since 0.1.0
 */
export const parseDuration = (text: string): Option.Option<Duration.Duration> => {
  const match = durationPattern.exec(text.trim())
  if (match === null) return Option.none()
  const millis = Number(match[1]) * unitMillis[(match[2] ?? "s") as keyof typeof unitMillis]
  return Number.isFinite(millis) && millis > 0 ? Option.some(Duration.millis(millis)) : Option.none()
}

/**
 * `--name DURATION`, parsed as a duration (a wrong one is a usage error naming the flag).
 *
 * @since 0.2.0
 */
export const duration = (name: string, description: string): Flag.Flag<Duration.Duration> =>
  Flag.String(name).pipe(
    Flag.withMetavar("DURATION"),
    Flag.withDescription(description),
    Flag.mapEffect(
      parseOr(
        parseDuration,
        (text) => `bad --${name} '${text}': expected a positive duration such as 500ms, 30s or 2m`
      )
    )
  )

/**
 * The default time to wait for a guest to connect: two minutes, as the Go host (a VM has to boot first).
 *
 * @since 0.1.0
 */
export const DefaultAcceptTimeout: Duration.Duration = Duration.minutes(2)

/**
 * `--accept-timeout DURATION`: how long to wait for the guest (and for each
 * stdio connection) before giving up.
 *
 * @since 0.1.0
 */
export const acceptTimeout: Flag.Flag<Duration.Duration> = duration(
  "accept-timeout",
  "How long to wait for the guest to connect: 500ms, 30s, 2m, 1h or seconds (default 2m)."
).pipe(Flag.withDefault(DefaultAcceptTimeout))

const envName = /^[^=\0]+$/

/**
 * Splits `KEY=VALUE` (the value may be empty or contain `=`).
 *
 * @since 0.1.0
 */
export const parseEnv = (text: string): Option.Option<readonly [string, string]> => {
  const at = text.indexOf("=")
  if (at <= 0) return Option.none()
  const key = text.slice(0, at)
  const value = text.slice(at + 1)
  return envName.test(key) && !value.includes("\0") ? Option.some([key, value] as const) : Option.none()
}

const envEntry = parseOr(parseEnv, (text) => `bad --env '${text}': expected KEY=VALUE with a non-empty KEY`)

/**
 * `--env KEY=VALUE`, repeatable: environment variables of the process.
 *
 * @since 0.1.0
 */
export const env: Flag.Flag<ReadonlyArray<readonly [string, string]>> = Flag.String("env").pipe(
  Flag.withMetavar("KEY=VALUE"),
  Flag.withAlias("e"),
  Flag.withDescription("Set an environment variable of the process, KEY=VALUE (repeatable)."),
  Flag.atLeast(0),
  Flag.mapEffect((texts) => Effect.forEach(texts, envEntry))
)

/**
 * A boolean flag: present means true.
 *
 * @since 0.1.0
 */
export const boolean = (name: string, description: string): Flag.Flag<boolean> =>
  Flag.Boolean(name).pipe(Flag.withDescription(description), Flag.withDefault(false))

/**
 * The flags of every command that talks to a guest: where it is, how long to wait.
 *
 * @since 0.1.0
 */
export const session = { guest, acceptTimeout }

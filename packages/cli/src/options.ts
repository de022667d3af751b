/**
 * Command-line options shared by several commands, with their validation:
 * a value that cannot be used is a `ValidationError` naming the option, which
 * `ErrorLine` turns into one line and exit status 2.
 *
 * @since 0.1.0
 */
import { HelpDoc, Options, ValidationError } from "@effect/cli"
import { type Address, formatAddress, parseAddress } from "@gcs-bridge/transport"
import { Duration, Effect, Option } from "effect"

const invalid = (message: string) => ValidationError.invalidValue(HelpDoc.p(message))

/**
 * Parses a transport address given on the command line. `memory://` addresses
 * are refused: they exist only inside one process, so no guest could come.
 *
 * @since 0.1.0
 */
export const parseCliAddress = (
  option: string,
  text: string
): Effect.Effect<Address, ValidationError.ValidationError> =>
  parseAddress(text).pipe(
    Effect.mapError((error) => invalid(`bad ${option}: ${error.message}`)),
    Effect.filterOrFail(
      (address) => address._tag !== "MemoryAddress",
      (address) =>
        invalid(
          `bad ${option} '${formatAddress(address)}': a memory:// address exists only inside one process`
        )
    )
  )

/**
 * `--guest ADDRESS`: where to wait for the guest; absent means the embedded guest.
 *
 * @since 0.1.0
 */
export const guest: Options.Options<Option.Option<Address>> = Options.text("guest").pipe(
  Options.withDescription(
    "Address to listen on for the guest (vsock://CID, hvsock://VM-GUID, hybrid:///path, unix:///path). " +
      "Default: an embedded guest in this process, over Unix sockets in a private temporary directory."
  ),
  Options.mapEffect((text) => parseCliAddress("--guest", text)),
  Options.optional
)

const durationPattern = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/

/**
 * Parses `500ms`, `30s`, `2m`, `1h` or a bare number of seconds.
 *
 * @since 0.1.0
 */
export const parseDuration = (text: string): Option.Option<Duration.Duration> => {
  const match = durationPattern.exec(text.trim())
  if (match === null) return Option.none()
  const value = Number(match[1])
  const millis =
    value * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(match[2] ?? "s") as "ms" | "s" | "m" | "h"]
  return Number.isFinite(millis) && millis > 0 ? Option.some(Duration.millis(millis)) : Option.none()
}

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
export const acceptTimeout: Options.Options<Duration.Duration> = Options.text("accept-timeout").pipe(
  Options.withDescription(
    "How long to wait for the guest to connect: 500ms, 30s, 2m, 1h or seconds (default 2m)."
  ),
  Options.mapEffect((text) =>
    Option.match(parseDuration(text), {
      onNone: () =>
        Effect.fail(
          invalid(`bad --accept-timeout '${text}': expected a positive duration such as 500ms, 30s or 2m`)
        ),
      onSome: Effect.succeed
    })
  ),
  Options.withDefault(DefaultAcceptTimeout)
)

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

/**
 * `--env KEY=VALUE`, repeatable: environment variables of the process.
 *
 * @since 0.1.0
 */
export const env: Options.Options<ReadonlyArray<readonly [string, string]>> = Options.text("env").pipe(
  Options.withAlias("e"),
  Options.withDescription("Set an environment variable of the process, KEY=VALUE (repeatable)."),
  Options.repeated,
  Options.mapEffect((texts) =>
    Effect.forEach(texts, (text) =>
      Option.match(parseEnv(text), {
        onNone: () => Effect.fail(invalid(`bad --env '${text}': expected KEY=VALUE with a non-empty KEY`)),
        onSome: Effect.succeed
      })
    )
  )
)

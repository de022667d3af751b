import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Option } from "effect"
import { normalizeArgs } from "../src/CommandLine.js"
import { parseDuration, parseEnv } from "../src/options.js"
import { invoke } from "./harness.js"

/** The outcome must be exactly one line on stderr, nothing on stdout, and the status. */
const expectOneLine = (
  outcome: { status: number; stdout: string; stderr: string },
  status: number,
  line: string
) => {
  expect(outcome.stdout).toBe("")
  expect(outcome.stderr).toBe(`${line}\n`)
  expect(outcome.status).toBe(status)
}

describe("command line: mistakes are one line on stderr and status 2", () => {
  it.effect("a bad address", () =>
    Effect.gen(function* () {
      const outcome = yield* invoke(["run", "--guest", "vsock://nope", "--", "true"])
      expect(outcome.status).toBe(2)
      expect(outcome.stdout).toBe("")
      expect(outcome.stderr).toMatch(/^gcsctl: bad --guest: .*vsock:\/\/nope.*\n$/)
      expect(outcome.stderr.split("\n")).toHaveLength(2)
    })
  )

  it.effect("an address that exists only in-process", () =>
    Effect.gen(function* () {
      expectOneLine(
        yield* invoke(["caps", "--guest", "memory://vm"]),
        2,
        "gcsctl: bad --guest 'memory://vm': a memory:// address exists only inside one process"
      )
    })
  )

  it.effect("a bad --env", () =>
    Effect.gen(function* () {
      expectOneLine(
        yield* invoke(["run", "-e", "A=1", "--env", "=oops", "--", "true"]),
        2,
        "gcsctl: bad --env '=oops': expected KEY=VALUE with a non-empty KEY"
      )
    })
  )

  it.effect("a bad --accept-timeout", () =>
    Effect.gen(function* () {
      expectOneLine(
        yield* invoke(["caps", "--accept-timeout", "soon"]),
        2,
        "gcsctl: bad --accept-timeout 'soon': expected a positive duration such as 500ms, 30s or 2m"
      )
    })
  )

  it.effect("an unknown command", () =>
    Effect.gen(function* () {
      expectOneLine(
        yield* invoke(["launch", "--", "true"]),
        2,
        "gcsctl: unknown command 'launch': Invalid subcommand for gcsctl - use one of 'run', 'guest', 'caps', 'stacks', 'decode', 'replay'"
      )
    })
  )

  it.effect("an unknown option of a command without arguments", () =>
    Effect.gen(function* () {
      expectOneLine(
        yield* invoke(["stacks", "--verbose"]),
        2,
        "gcsctl: unknown option '--verbose' for stacks"
      )
    })
  )

  it.effect("run: an unknown option before -- is not taken for the command", () =>
    Effect.gen(function* () {
      expectOneLine(
        yield* invoke(["run", "--detach", "--", "true"]),
        2,
        "gcsctl run: unknown option '--detach' for run"
      )
    })
  )

  it.effect("run: the command must follow --", () =>
    Effect.gen(function* () {
      expectOneLine(
        yield* invoke(["run", "uname", "-a"]),
        2,
        "gcsctl run: put the command after --: gcsctl run [OPTIONS] -- CMD [ARGS...]"
      )
      expectOneLine(
        yield* invoke(["run", "uname", "--"]),
        2,
        "gcsctl run: unexpected argument 'uname' before --: gcsctl run [OPTIONS] -- CMD [ARGS...]"
      )
    })
  )

  it.effect("run: a container id that no runtime would accept", () =>
    Effect.gen(function* () {
      expectOneLine(
        yield* invoke(["run", "--container", "../etc", "--", "true"]),
        2,
        "gcsctl run: bad --container '../etc': a container id is 1-128 letters, digits, '_', '.' or '-', starting with a letter or digit"
      )
    })
  )

  it.effect("guest: a bad --fault spec", () =>
    Effect.gen(function* () {
      const outcome = yield* invoke([
        "guest",
        "--connect",
        "unix:///tmp/x.sock",
        "--fault",
        "drop-after=soon"
      ])
      expect(outcome.status).toBe(2)
      expect(outcome.stderr).toMatch(
        /^gcsctl: bad --fault 'drop-after=soon': drop-after: expected a whole number.*\n$/
      )
    })
  )
})

describe("command line: help and version", () => {
  it.effect("--version prints the version and exits 0", () =>
    Effect.gen(function* () {
      const outcome = yield* invoke(["--version"])
      expect(outcome).toMatchObject({ status: 0, stderr: "" })
      expect(outcome.stdout.trim()).toBe("0.1.0")
    })
  )

  it.effect("run --help describes the options and exits 0", () =>
    Effect.gen(function* () {
      const outcome = yield* invoke(["run", "--help"])
      expect(outcome.status).toBe(0)
      for (const option of [
        "--guest",
        "--container",
        "--interactive",
        "--tty",
        "--env",
        "--cwd",
        "--accept-timeout",
        "--copy-after-exit",
        "--reconnect [=DURATION]",
        "--capture FILE"
      ]) {
        expect(outcome.stdout).toContain(option)
      }
    })
  )

  it.effect("the top-level help lists decode and replay", () =>
    Effect.gen(function* () {
      const outcome = yield* invoke(["--help"])
      expect(outcome.status).toBe(0)
      for (const command of ["decode", "replay"]) expect(outcome.stdout).toContain(command)
    })
  )

  it.effect("a --reconnect window that is not a duration is a usage error", () =>
    Effect.gen(function* () {
      const outcome = yield* invoke(["run", "--reconnect=soon", "--", "true"])
      expect(outcome.status).toBe(2)
      expect(outcome.stderr).toContain("--reconnect")
    })
  )
})

describe("command line: values", () => {
  it("durations", () => {
    expect(parseDuration("500ms").pipe(Option.map(Duration.toMillis))).toEqual(Option.some(500))
    expect(parseDuration("1.5s").pipe(Option.map(Duration.toMillis))).toEqual(Option.some(1500))
    expect(parseDuration("2m").pipe(Option.map(Duration.toMillis))).toEqual(Option.some(120_000))
    expect(parseDuration("1h").pipe(Option.map(Duration.toMillis))).toEqual(Option.some(3_600_000))
    expect(parseDuration("30").pipe(Option.map(Duration.toMillis))).toEqual(Option.some(30_000))
    for (const bad of ["", "0", "0s", "-1s", "5x", "s", "1e3"])
      expect(parseDuration(bad)).toEqual(Option.none())
  })

  it("environment entries", () => {
    expect(parseEnv("A=1")).toEqual(Option.some(["A", "1"]))
    expect(parseEnv("A=")).toEqual(Option.some(["A", ""]))
    expect(parseEnv("A=b=c")).toEqual(Option.some(["A", "b=c"]))
    for (const bad of ["A", "=1", "", "A\u0000B=1"]) expect(parseEnv(bad)).toEqual(Option.none())
  })

  it("a bare --container gets an empty value; the command after -- is never touched", () => {
    expect(normalizeArgs(["run", "--container", "--", "x"])).toEqual(["run", "--container", "", "--", "x"])
    expect(normalizeArgs(["run", "--container", "-i", "--", "x"])).toEqual([
      "run",
      "--container",
      "",
      "-i",
      "--",
      "x"
    ])
    expect(normalizeArgs(["run", "--container", "box", "--", "x"])).toEqual([
      "run",
      "--container",
      "box",
      "--",
      "x"
    ])
    expect(normalizeArgs(["run", "--", "x", "--container"])).toEqual(["run", "--", "x", "--container"])
  })
})

import { describe, expect, it } from "@effect/vitest"
import { Effect, PubSub, Stream } from "effect"
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { invoke, signalHub } from "./harness.js"

const tempDir = (): string => mkdtempSync(join(tmpdir(), "gcsctl-test-"))

/** A temporary directory for the test, removed afterwards even when the test fails. */
const scopedDir = Effect.acquireRelease(Effect.sync(tempDir), (dir) =>
  Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** Runs `effect` with TMPDIR pointing at a fresh directory, and gives what is left in it afterwards. */
const withTmpdir = <A, E>(
  effect: Effect.Effect<A, E>
): Effect.Effect<readonly [A, ReadonlyArray<string>], E> =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const dir = tempDir()
      const saved = process.env["TMPDIR"]
      process.env["TMPDIR"] = dir
      return { dir, saved }
    }),
    ({ dir }) => Effect.map(effect, (a) => [a, readdirSync(dir)] as const),
    ({ dir, saved }) =>
      Effect.sync(() => {
        if (saved === undefined) delete process.env["TMPDIR"]
        else process.env["TMPDIR"] = saved
        rmSync(dir, { recursive: true, force: true })
      })
  )

describe("gcsctl run on the embedded guest", () => {
  it.live("relays stdout and stderr byte for byte and exits with the process's status", () =>
    Effect.gen(function* () {
      const [outcome, left] = yield* withTmpdir(
        invoke(["run", "--", "sh", "-c", "echo out; echo err >&2; exit 3"])
      )
      expect(outcome).toMatchObject({ status: 3, stdout: "out\n", stderr: "err\n" })
      // The private directory of the embedded guest's sockets is gone.
      expect(left).toEqual([])
    })
  )

  it.live("-i relays stdin, and its end reaches the process", () =>
    Effect.gen(function* () {
      const input = ["first line\n", "second ", "line\n", "\u00e9\u00e8 bytes \u0000\u00ff\n"]
      const outcome = yield* invoke(["run", "-i", "--", "cat"], { stdin: input })
      expect(outcome.status).toBe(0)
      expect(outcome.stdout).toBe(input.join(""))
      expect(outcome.stderr).toBe("")
    })
  )

  it.live("without -i the process's stdin is not connected", () =>
    Effect.gen(function* () {
      const outcome = yield* invoke(["run", "--", "sh", "-c", "cat; echo done"], { stdin: ["ignored\n"] })
      expect(outcome).toMatchObject({ status: 0, stdout: "done\n" })
    })
  )

  it.live("--env, --cwd and the default PATH reach the process", () =>
    Effect.gen(function* () {
      const dir = yield* scopedDir
      const outcome = yield* invoke([
        "run",
        "--env",
        "GREETING=a<b>&c",
        "-e",
        "EMPTY=",
        "--cwd",
        dir,
        "--",
        "sh",
        "-c",
        'printf "%s|%s|%s|%s\\n" "$GREETING" "${EMPTY-unset}" "$(pwd)" "$PATH"'
      ])
      expect(outcome.status).toBe(0)
      expect(outcome.stdout).toBe(
        `a<b>&c||${dir}|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n`
      )
    })
  )

  it.live("--container runs the command as a container's init process", () =>
    Effect.gen(function* () {
      const outcome = yield* invoke([
        "run",
        "--container",
        "box-1",
        "--env",
        "WHO=container",
        "--",
        "sh",
        "-c",
        'echo "hello from $WHO in $(pwd)"; exit 4'
      ])
      expect(outcome).toMatchObject({ status: 4, stdout: "hello from container in /\n", stderr: "" })
    })
  )

  it.live("a bare --container picks an id", () =>
    Effect.gen(function* () {
      const outcome = yield* invoke(["run", "--container", "-i", "--", "cat"], { stdin: ["via init\n"] })
      expect(outcome).toMatchObject({ status: 0, stdout: "via init\n", stderr: "" })
    })
  )

  it.live("a reader that goes away (EPIPE) ends the run quietly with 141, and the process with it", () =>
    Effect.gen(function* () {
      const outcome = yield* invoke(["run", "--", "yes"], { closeStdoutAfter: 1 })
      expect(outcome).toMatchObject({ status: 141, stderr: "" })
      expect(outcome.stdout.startsWith("y\n")).toBe(true)
    })
  )

  it.live("a command the guest cannot start: one line with the HRESULT name, status 125", () =>
    Effect.gen(function* () {
      const outcome = yield* invoke(["run", "--", "/nonexistent/command"])
      expect(outcome.status).toBe(125)
      expect(outcome.stdout).toBe("")
      expect(outcome.stderr).toMatch(
        /^gcsctl run: embedded guest: guest error Fail \(0x80004005\) in ExecuteProcess: .*\/nonexistent\/command.*\n$/
      )
    })
  )

  it.live("SIGTERM is forwarded to a container process, whose own status is kept", () =>
    Effect.gen(function* () {
      const signals = yield* signalHub()
      const outcome = yield* invoke(
        [
          "run",
          "--container",
          "--",
          "sh",
          "-c",
          'trap "echo got TERM; exit 7" TERM; echo ready; sleep 30 & wait'
        ],
        {
          signals,
          onStdout: (text) => (text === "ready\n" ? PubSub.publish(signals, "SIGTERM") : Effect.void)
        }
      )
      expect(outcome).toMatchObject({ status: 7, stdout: "ready\ngot TERM\n", stderr: "" })
    })
  )

  it.live("a signal the guest cannot deliver (UVM process on a Linux GCS) ends gcsctl with 128 + n", () =>
    Effect.gen(function* () {
      const signals = yield* signalHub()
      const outcome = yield* invoke(["run", "--", "sh", "-c", "echo ready; sleep 30"], {
        signals,
        onStdout: (text) => (text === "ready\n" ? PubSub.publish(signals, "SIGINT") : Effect.void)
      })
      expect(outcome.status).toBe(130)
      expect(outcome.stderr).toMatch(
        /^gcsctl run: interrupted by SIGINT, which the guest did not deliver to the process \(guest error SystemNotFound \(0xc037010e\) in SignalProcess: .*\); it may still be running in the guest\n$/
      )
    })
  )
})

describe("gcsctl caps and stacks", () => {
  it.live("caps prints the negotiated version, the OS and Linux capabilities as JSON", () =>
    Effect.gen(function* () {
      const outcome = yield* invoke(["caps"])
      expect(outcome.status).toBe(0)
      expect(outcome.stderr).toBe("")
      const caps = JSON.parse(outcome.stdout) as Record<string, unknown>
      expect(caps).toMatchObject({
        protocol: 4,
        os: "linux",
        capabilities: {
          RuntimeOsType: "Linux",
          SupportedSchemaVersions: [{ Major: 2, Minor: 1 }],
          GuestDefinedCapabilities: {
            NamespaceAddRequestSupported: true,
            SignalProcessSupported: true,
            DumpStacksSupported: true,
            DeleteContainerStateSupported: true
          }
        }
      })
    })
  )

  it.live("stacks prints the guest's stack dump", () =>
    Effect.gen(function* () {
      const outcome = yield* invoke(["stacks"])
      expect(outcome.status).toBe(0)
      expect(outcome.stdout).toContain("negotiated v4")
      expect(outcome.stdout.endsWith("\n")).toBe(true)
    })
  )

  it.live("a guest that never comes: one line naming the address and the timeout", () =>
    Effect.gen(function* () {
      const dir = yield* scopedDir
      const outcome = yield* invoke([
        "caps",
        "--guest",
        `unix://${dir}/gcs.sock`,
        "--accept-timeout",
        "200ms"
      ])
      expect(outcome).toMatchObject({
        status: 1,
        stdout: "",
        stderr: `gcsctl caps: the guest never came: nothing connected to unix://${dir}/gcs.sock port 0x40000000 within 200ms\n`
      })
    })
  )

  it.live("SIGINT while waiting for the guest: one line, status 130", () =>
    Effect.gen(function* () {
      const dir = yield* scopedDir
      const signals = yield* signalHub()
      yield* PubSub.publish(signals, "SIGINT")
      const outcome = yield* invoke(["stacks", "--guest", `hybrid://${dir}/gcs.sock`], { signals })
      expect(outcome).toMatchObject({
        status: 130,
        stdout: "",
        stderr: "gcsctl stacks: interrupted by SIGINT\n"
      })
    })
  )
})

describe("gcsctl run against gcsctl guest (both in-process, over hybrid vsock sockets)", () => {
  const pair = (faults: ReadonlyArray<string>, command: ReadonlyArray<string>) =>
    Effect.gen(function* () {
      const dir = yield* scopedDir
      const guestArgs = [
        "guest",
        "--connect",
        `unix://${dir}/gcs.sock`,
        "--once",
        ...faults.flatMap((f) => ["--fault", f])
      ]
      const [host, guest] = yield* Effect.all(
        [
          invoke(["run", "--guest", `hybrid://${dir}/gcs.sock`, "--accept-timeout", "20s", "--", ...command]),
          invoke(guestArgs)
        ],
        { concurrency: 2 }
      )
      return { host, guest, dir }
    })

  it.live("runs the command", () =>
    Effect.gen(function* () {
      const { host, guest } = yield* pair([], ["sh", "-c", "echo over the bridge; exit 5"])
      expect(host).toMatchObject({ status: 5, stdout: "over the bridge\n", stderr: "" })
      expect(guest).toMatchObject({ status: 0, stdout: "" })
    })
  )

  it.live("a guest flooding notifications for unknown containers: a few lines, summarised", () =>
    Effect.gen(function* () {
      const { host } = yield* pair(["flood=20000"], ["sh", "-c", "echo done"])
      expect(host).toMatchObject({ status: 0, stdout: "done\n", stderr: "" })
      expect(host.logs.length).toBeLessThanOrEqual(20)
      expect(host.logs.some((line) => /\d+ more/.test(line))).toBe(true)
    })
  )

  it.live("a guest that drops the bridge: one line, status 125", () =>
    Effect.gen(function* () {
      const { host, dir } = yield* pair(["drop-after=1"], ["true"])
      expect(host).toMatchObject({
        status: 125,
        stdout: "",
        stderr: `gcsctl run: guest at hybrid://${dir}/gcs.sock: the guest closed the bridge\n`
      })
    })
  )

  it.live("a guest that breaks the protocol: one line naming the violation, status 125", () =>
    Effect.gen(function* () {
      const { host, dir } = yield* pair(["oversize-after=1"], ["true"])
      expect(host.status).toBe(125)
      expect(host.stdout).toBe("")
      expect(host.stderr).toMatch(
        new RegExp(
          `^gcsctl run: guest at hybrid://${dir}/gcs.sock: the guest broke the protocol: protocol violation, Oversize: .*\\n$`
        )
      )
    })
  )
})

describe("gcsctl guest", () => {
  it.live("stops cleanly on SIGTERM while it waits for a host: status 0, nothing printed", () =>
    Effect.gen(function* () {
      const dir = yield* scopedDir
      const signals = yield* signalHub()
      yield* PubSub.publish(signals, "SIGTERM")
      const outcome = yield* invoke(["guest", "--connect", `unix://${dir}/gcs.sock`], { signals })
      expect(outcome).toMatchObject({ status: 0, stdout: "", stderr: "" })
    })
  )
})

describe("stdin from a stream", () => {
  it.live("-i relays input that arrives over time", () =>
    Effect.gen(function* () {
      const chunks = Array.from({ length: 50 }, (_, i) => `chunk ${i}\n`)
      const stdin = Stream.fromIterable(chunks).pipe(
        Stream.map((s) => new TextEncoder().encode(s)),
        Stream.tap(() => Effect.yieldNow)
      )
      const outcome = yield* invoke(["run", "-i", "--", "wc", "-l"], { stdin })
      expect(outcome).toMatchObject({ status: 0, stderr: "" })
      expect(outcome.stdout.trim()).toBe("50")
    })
  )
})

/**
 * gcsctl against a scripted guest (frames written by the test) and against
 * what a hostile guest can make it print: the OCI spec it sends, the
 * capabilities it shows, escaped guest text, bounded and summarised logs,
 * what it says while it waits, and command-line messages a user can act on.
 */
import { describe, expect, it } from "@effect/vitest"
import { Frame, FrameDecoder, MessageType } from "@gcs-bridge/protocol"
import { Transport, UnixAddress } from "@gcs-bridge/transport"
import { Deferred, Effect, Logger, Option, PubSub, References, Schedule, type Scope, Stream } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Logging from "../src/internal/logging.js"
import { escapeControls } from "../src/internal/terminalText.js"
import { Stdio } from "../src/Stdio.js"
import { invoke, signalHub } from "./harness.js"

const scopedDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "gcsctl-hard-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

const utf8 = new TextEncoder()

/** A frame answering `request` with `body` as JSON. */
const answer = (request: Frame.Frame, body: unknown): Uint8Array =>
  Frame.encodeFrame(MessageType.responseType(request.type), request.id, utf8.encode(JSON.stringify(body)))

const notification = (body: unknown): Uint8Array =>
  Frame.encodeFrame(MessageType.NotifyContainer, 0, utf8.encode(JSON.stringify(body)))

const is = (frame: Frame.Frame, proc: MessageType.ProcName) =>
  frame.type === MessageType.requestType(MessageType.Proc[proc])

const linuxCapabilities = {
  RuntimeOsType: "Linux",
  SupportedSchemaVersions: [{ Major: 2, Minor: 1 }],
  GuestDefinedCapabilities: { SignalProcessSupported: true, DeleteContainerStateSupported: true }
}

/** What a scripted guest does for one request: the frames to write back, after any effect it needs. */
type Script = (
  request: Frame.Frame
) => ReadonlyArray<Uint8Array> | Effect.Effect<ReadonlyArray<Uint8Array>, unknown, Transport | Scope.Scope>

/**
 * A guest written frame by frame: dials the host's bridge (`unix://` side of
 * a `hybrid://` listener), answers each request with the frames `script`
 * gives, and returns every request it received once the host hung up.
 */
const scriptedGuest = (path: string, script: Script) =>
  Effect.scoped(
    Effect.gen(function* () {
      const transport = yield* Transport
      const connection = yield* transport
        .connect(new UnixAddress({ path }), MessageType.LinuxGcsVsockPort)
        .pipe(Effect.retry({ schedule: Schedule.spaced("20 millis"), times: 500 }))
      const reader = new FrameDecoder.FrameReader({ maxFrameSize: 1 << 20 })
      const received: Array<Frame.Frame> = []
      yield* Stream.runForEach(connection.stream, (chunk) =>
        Effect.forEach(reader.push(chunk), (frame) => {
          received.push(frame)
          const out = script(frame)
          return Effect.flatMap(Effect.isEffect(out) ? out : Effect.succeed(out), (frames) =>
            frames.length === 0 ? Effect.void : connection.writeAll(frames)
          )
        })
      ).pipe(Effect.ignore)
      return received
    })
  ).pipe(Effect.provide(Transport.layer))

const negotiated = (request: Frame.Frame, capabilities: unknown = linuxCapabilities) =>
  is(request, "NegotiateProtocol")
    ? [answer(request, { Result: 0, Version: 4, Capabilities: capabilities })]
    : []

const bodyOf = (frame: Frame.Frame): Record<string, unknown> =>
  JSON.parse(new TextDecoder().decode(frame.payload)) as Record<string, unknown>

describe("the real Linux GCS: what gcsctl sends", () => {
  it.live("run --container sends an OCI spec with `linux` (namespaces) and the /proc and /dev mounts", () =>
    Effect.gen(function* () {
      const dir = yield* scopedDir
      const socket = join(dir, "gcs.sock")
      const [host, received] = yield* Effect.all(
        [
          invoke(["run", "--guest", `hybrid://${socket}`, "--container", "box", "--", "true"]),
          scriptedGuest(socket, (request) =>
            is(request, "Create")
              ? [answer(request, { Result: 0x80004005 | 0, ErrorMessage: "the test guest stops here" })]
              : negotiated(request)
          )
        ],
        { concurrency: 2 }
      )
      expect(host.status).toBe(125)
      const create = received.find((frame) => is(frame, "Create"))
      expect(create).toBeDefined()
      const config = JSON.parse(bodyOf(create!)["ContainerConfig"] as string) as {
        OciSpecification: {
          linux?: { namespaces?: ReadonlyArray<{ type: string }> }
          mounts?: ReadonlyArray<{ destination: string; type: string }>
        }
      }
      const spec = config.OciSpecification
      expect(spec.linux?.namespaces?.map((ns) => ns.type)).toEqual(["pid", "ipc", "uts", "mount"])
      expect(spec.mounts).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ destination: "/proc", type: "proc" }),
          expect.objectContaining({ destination: "/dev", type: "tmpfs" })
        ])
      )
    })
  )

  it.live(
    "caps prints the capabilities as the guest sent them: no defaults added, its key order, unknown keys kept",
    () =>
      Effect.gen(function* () {
        const dir = yield* scopedDir
        const socket = join(dir, "gcs.sock")
        // No ModifyServiceSettingsSupported, no SendHost* flags; an order of its own and a key we do not know.
        const sent = {
          SupportedSchemaVersions: [{ Major: 2, Minor: 1 }],
          RuntimeOsType: "Linux",
          FutureFlag: { Nested: [1, "two"] },
          GuestDefinedCapabilities: { DumpStacksSupported: true }
        }
        const [host] = yield* Effect.all(
          [
            invoke(["caps", "--guest", `hybrid://${socket}`]),
            scriptedGuest(socket, (request) => negotiated(request, sent))
          ],
          { concurrency: 2 }
        )
        expect(host).toMatchObject({ status: 0, stderr: "" })
        const printed = JSON.parse(host.stdout) as { protocol: number; os: string; capabilities: object }
        expect(printed).toEqual({ protocol: 4, os: "linux", capabilities: sent })
        expect(Object.keys(printed.capabilities)).toEqual(Object.keys(sent))
        expect(host.stdout).not.toContain("ModifyServiceSettingsSupported")
      })
  )
})

describe("a hostile guest's text never drives the terminal", () => {
  it("control characters are escaped; a multi-line text keeps its lines", () => {
    expect(escapeControls("a\u001b]0;owned\u0007b\u001b[2Kc\u009bd\re\u007f")).toBe(
      "a\\x1b]0;owned\\x07b\\x1b[2Kc\\u009bd\\x0de\\u007f"
    )
    expect(escapeControls("line 1\n\tline\u001b 2", true)).toBe("line 1\n\tline\\x1b 2")
  })

  it.live("escape sequences in a GuestError message and a container id are printed escaped", () =>
    Effect.gen(function* () {
      const dir = yield* scopedDir
      const socket = join(dir, "gcs.sock")
      const evilId = "\u001b[2Kevil\u009b31m"
      const [host] = yield* Effect.all(
        [
          invoke(["run", "--guest", `hybrid://${socket}`, "--container", "box", "--", "true"]),
          scriptedGuest(socket, (request) =>
            is(request, "Create")
              ? [
                  answer(request, {
                    Result: 0x80004005 | 0,
                    ErrorMessage: "\u001b]0;owned\u0007no \u001b[2Kway\r\u001b[1A"
                  })
                ]
              : [
                  ...negotiated(request),
                  notification({ ContainerId: evilId, Type: "UnexpectedExit", Operation: "None", Result: 0 })
                ]
          )
        ],
        { concurrency: 2 }
      )
      expect(host.status).toBe(125)
      // Nothing on stderr is a control character but the line ends.
      // eslint-disable-next-line no-control-regex
      expect(host.rawStderr).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/)
      expect(host.stderr).toContain("\\x1b]0;owned\\x07no \\x1b[2Kway \\x1b[1A")
      expect(host.logs.join("\n")).toContain("\\x1b[2Kevil\\u009b31m")
    })
  )
})

describe("gcsctl's logger: bounded, rate-limited, summarised", () => {
  /** Runs `log` with the logger over a stderr whose writes wait until `open` is done. */
  const withLogger = (log: Effect.Effect<void>, gated: boolean) =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      if (!gated) yield* Deferred.succeed(gate, undefined)
      const written: Array<string> = []
      const stdio = {
        stdin: Stream.empty,
        out: () => Effect.void,
        err: (chunk: Uint8Array | string) =>
          Effect.andThen(
            Deferred.await(gate),
            Effect.sync(() => void written.push(String(chunk)))
          ),
        terminal: Option.none()
      }
      yield* Effect.scoped(
        Effect.gen(function* () {
          const { logger } = yield* Logging.make()
          yield* log.pipe(Effect.provide(Logger.layer([logger])))
          yield* Deferred.succeed(gate, undefined)
        })
      ).pipe(Effect.provideService(Stdio, stdio))
      return written
        .join("")
        .split("\n")
        .filter((line) => line !== "")
    })

  it.effect("100,000 warnings of one kind: five lines and one summary with the exact count of the rest", () =>
    Effect.gen(function* () {
      const lines = yield* withLogger(
        Effect.forEach(
          Array.from({ length: 100_000 }, (_, i) => i),
          (i) => Effect.logWarning(`notification for container ${i.toString(16).padStart(64, "0")}, unknown`),
          { discard: true }
        ),
        false
      )
      expect(lines).toHaveLength(6)
      expect(lines[0]).toBe(`gcsctl: warn: notification for container ${"0".repeat(64)}, unknown`)
      expect(lines[5]).toBe(
        `gcsctl: warn: 99995 more like this: notification for container ${(99_999).toString(16).padStart(64, "0")}, unknown`
      )
    })
  )

  it.effect(
    "a stderr that does not keep up: a bounded number of lines wait, the rest is counted exactly",
    () =>
      Effect.gen(function* () {
        const total = 100_000
        const lines = yield* withLogger(
          Effect.forEach(
            Array.from({ length: total }, (_, i) => i),
            (i) => Effect.logDebug(`frame ${i}`),
            { discard: true }
          ).pipe(Effect.provideService(References.MinimumLogLevel, "Debug")),
          true
        )
        const shown = lines.filter((line) => line.startsWith("gcsctl: debug: frame "))
        const notes = lines.filter((line) => line.includes("log lines dropped"))
        const dropped = notes.reduce(
          (sum, note) => sum + Number(/(\d+) log lines dropped/.exec(note)?.[1]),
          0
        )
        expect(shown.length).toBeLessThanOrEqual(2 * Logging.defaultLimits.queued)
        expect(shown.length + dropped).toBe(total)
        expect(notes[0]).toMatch(/^gcsctl: warn: \d+ log lines dropped: stderr is not keeping up$/)
      })
  )
})

describe("a person at a terminal", () => {
  it.live("waiting for a guest: after a moment, stderr (a terminal) says for what and where", () =>
    Effect.gen(function* () {
      const dir = yield* scopedDir
      const signals = yield* signalHub()
      const outcome = yield* invoke(["caps", "--guest", `unix://${dir}/gcs.sock`], {
        stderrIsTerminal: true,
        signals,
        onStderr: (text) => (text.includes("waiting up to") ? PubSub.publish(signals, "SIGINT") : Effect.void)
      })
      expect(outcome).toMatchObject({ status: 130, stdout: "" })
      expect(outcome.rawStderr).toBe(
        `gcsctl: waiting up to 2m for the guest to connect to unix://${dir}/gcs.sock (port 0x40000000); Ctrl-C stops\n` +
          "gcsctl caps: interrupted by SIGINT\n"
      )
    })
  )

  it.live("waiting for a guest without a terminal: nothing but the outcome", () =>
    Effect.gen(function* () {
      const dir = yield* scopedDir
      const outcome = yield* invoke([
        "caps",
        "--guest",
        `unix://${dir}/gcs.sock`,
        "--accept-timeout",
        "2500ms"
      ])
      expect(outcome).toMatchObject({ status: 1, stdout: "" })
      expect(outcome.rawStderr).toBe(
        `gcsctl caps: the guest never came: nothing connected to unix://${dir}/gcs.sock port 0x40000000 within 2s 500ms\n`
      )
    })
  )

  it.live(
    "run -t in the utility VM says once that the console size is not applied; --container does not",
    () =>
      Effect.gen(function* () {
        const uvm = yield* invoke(["run", "-t", "--", "true"])
        expect(uvm.status).toBe(0)
        expect(uvm.stderr.split("\n").filter((line) => line.includes("console size"))).toEqual([
          "gcsctl run: warning: a Linux guest does not apply the console size to a process in the utility VM " +
            "(the genuine GCS ignores it and refuses resizes; the console may be 0x0): use --container for a sized console"
        ])
        const container = yield* invoke(["run", "-t", "--container", "--", "true"])
        expect(container).toMatchObject({ status: 0, stderr: "" })
      })
  )
})

describe("output after the process exited", () => {
  /** A guest whose process says one line on stdout, exits 3, and never closes its stdout and stderr. */
  const silentAfterExitGuest = (socket: string) =>
    scriptedGuest(socket, (request) => {
      if (is(request, "ExecuteProcess")) {
        const ports = (bodyOf(request)["Settings"] as { VsockStdioRelaySettings: Record<string, number> })
          .VsockStdioRelaySettings
        // Dials the process's stdout and stderr, says one line, and never closes them.
        return Effect.gen(function* () {
          const transport = yield* Transport
          const stdout = yield* transport.connect(new UnixAddress({ path: socket }), ports["StdOut"]!)
          yield* transport.connect(new UnixAddress({ path: socket }), ports["StdErr"]!)
          yield* stdout.write(utf8.encode("early\n"))
          return [answer(request, { Result: 0, ProcessId: 42 })]
        })
      }
      if (is(request, "WaitForProcess")) return [answer(request, { Result: 0, ExitCode: 3 })]
      return is(request, "NegotiateProtocol") ? negotiated(request) : [answer(request, { Result: 0 })]
    })

  it.live(
    "a guest that keeps stdout open and silent after the exit holds gcsctl run only --copy-after-exit long",
    () =>
      Effect.gen(function* () {
        const dir = yield* scopedDir
        const socket = join(dir, "gcs.sock")
        const [host] = yield* Effect.all(
          [
            invoke(["run", "--guest", `hybrid://${socket}`, "--copy-after-exit", "100ms", "--", "anything"]),
            silentAfterExitGuest(socket)
          ],
          { concurrency: 2 }
        )
        expect(host).toMatchObject({ status: 3, stdout: "early\n", stderr: "" })
      })
  )

  it.live(
    "after the exit, SIGINT stops gcsctl run at once while output may still come (--copy-after-exit 1h)",
    () =>
      Effect.gen(function* () {
        const dir = yield* scopedDir
        const signals = yield* signalHub()
        const socket = join(dir, "gcs.sock")
        const [host] = yield* Effect.all(
          [
            invoke(
              [
                "run",
                "--guest",
                `hybrid://${socket}`,
                "--copy-after-exit",
                "1h",
                "--log-level",
                "debug",
                "--",
                "anything"
              ],
              {
                signals,
                onStderr: (text) =>
                  text.includes("the process exited") ? PubSub.publish(signals, "SIGINT") : Effect.void
              }
            ),
            silentAfterExitGuest(socket)
          ],
          { concurrency: 2 }
        )
        expect(host).toMatchObject({
          status: 130,
          stdout: "early\n",
          stderr: "gcsctl run: interrupted by SIGINT\n"
        })
      })
  )
})

describe("command-line messages a user can act on", () => {
  const expectUsage = (outcome: { status: number; stdout: string; rawStderr: string }, line: string) => {
    expect(outcome).toMatchObject({ status: 2, stdout: "", rawStderr: `${line}\n` })
  }

  it.effect("a misspelt global option is called an option, with the one meant", () =>
    Effect.gen(function* () {
      expectUsage(
        yield* invoke(["--versoin"]),
        "gcsctl: unknown option '--versoin' (did you mean --version?)"
      )
      expectUsage(
        yield* invoke(["caps", "--guset", "vsock://3"]),
        "gcsctl: unknown option '--guset' for caps (did you mean --guest?)"
      )
    })
  )

  it.effect("an option whose value is missing says so, and --env is not ignored", () =>
    Effect.gen(function* () {
      expectUsage(
        yield* invoke(["run", "--guest", "--", "true"]),
        "gcsctl: Missing value for flag --guest. Expected: ADDRESS"
      )
      expectUsage(
        yield* invoke(["run", "--env", "--", "true"]),
        "gcsctl: Missing value for flag --env. Expected: KEY=VALUE"
      )
      expectUsage(
        yield* invoke(["run", "-e", "-i", "--", "true"]),
        "gcsctl: Missing value for flag --env. Expected: KEY=VALUE"
      )
      expectUsage(
        yield* invoke(["run", "--copy-after-exit", "soon", "--", "true"]),
        "gcsctl: bad --copy-after-exit 'soon': expected a positive duration such as 500ms, 30s or 2m"
      )
    })
  )

  it.live("--log-level after the command is understood", () =>
    Effect.gen(function* () {
      const dir = yield* scopedDir
      const outcome = yield* invoke([
        "caps",
        "--guest",
        `unix://${dir}/gcs.sock`,
        "--accept-timeout",
        "100ms",
        "--log-level",
        "debug"
      ])
      expect(outcome.status).toBe(1)
      expect(outcome.stderr).toBe(
        `gcsctl caps: the guest never came: nothing connected to unix://${dir}/gcs.sock port 0x40000000 within 100ms\n`
      )
    })
  )

  it.live("--log-level trace shows each frame's type, id and payload", () =>
    Effect.gen(function* () {
      const outcome = yield* invoke(["--log-level", "trace", "run", "--", "true"])
      expect(outcome.status).toBe(0)
      expect(outcome.logs).toEqual(
        expect.arrayContaining([
          expect.stringMatching(
            /^gcsctl: trace: bridge send type=Request\(NegotiateProtocol\) message-id=0 payload=\{"ContainerId":"".*"MaximumVersion":4\}$/
          ),
          expect.stringMatching(
            /^gcsctl: trace: bridge receive type=Response\(NegotiateProtocol\) message-id=0 payload=\{.*"Capabilities":/
          ),
          expect.stringMatching(
            /^gcsctl: trace: bridge send type=Request\(ExecuteProcess\) message-id=1 payload=\{.*"CommandArgs/
          )
        ])
      )
    })
  )
})

/**
 * `gcsctl replay FILE --connect ADDRESS [--timing]`: plays the guest side of
 * a `run --capture` file to a host, so a recorded session becomes a
 * regression test. It dials the host as `gcsctl guest` does and answers each
 * request with the recorded response of the same message id; the frames the
 * guest sent on its own (notifications) follow the response they followed in
 * the capture. Stdio connections are not recorded, so not replayed.
 *
 * @since 0.1.0
 */
import { Frame, FrameDecoder, MessageType } from "@gcs-bridge/protocol"
import * as Capture from "../Capture.js"
import { Transport, formatAddress } from "@gcs-bridge/transport"
import { Data, Duration, Effect, Schedule, Stream } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { readFile, stat } from "node:fs/promises"
import { CaptureFrameLimit, CaptureRecordReader } from "../CaptureDecoder.js"
import { reportFailures } from "../ErrorLine.js"
import { ExitCode } from "../ExitStatus.js"
import * as CliOptions from "../options.js"

/**
 * The capture cannot be replayed: unreadable, not a capture, damaged.
 *
 * @since 0.1.0
 */
export class ReplayError extends Data.TaggedError("ReplayError")<{ readonly message: string }> {}

/** A capture held in memory is bounded: a replay is a test, not a bulk transfer. */
const MaxCaptureSize = 256 * 1024 * 1024

/** A frame as recorded: its bytes as they were sent, and when (ns since the capture began). */
interface Recorded {
  readonly frame: Frame.Frame
  readonly time: bigint
}

/** What the guest said in answer to one request id: the response, then what it sent on its own. */
interface Answer {
  readonly response: Recorded
  readonly then: Array<Recorded>
}

/** The guest's side of a capture, keyed by the ids of the responses, and when the host asked. */
interface Script {
  readonly leading: Array<Recorded>
  readonly answers: Map<number, Answer>
  readonly asked: Map<number, bigint>
}

const fail = (message: string) => Effect.fail(new ReplayError({ message }))

/** Reads and splits a capture file into the frames of each direction. */
const load = (path: string): Effect.Effect<Script, ReplayError> =>
  Effect.gen(function* () {
    const bytes = yield* Effect.tryPromise({
      try: async () => {
        if ((await stat(path)).size > MaxCaptureSize) throw new Error(`larger than ${MaxCaptureSize} bytes`)
        return new Uint8Array(await readFile(path))
      },
      catch: (e) => new ReplayError({ message: `cannot read ${path}: ${e instanceof Error ? e.message : e}` })
    })
    const magic = Buffer.from(Capture.Magic)
    if (!magic.equals(bytes.subarray(0, magic.length))) {
      return yield* fail(`${path} is not a capture file (it does not start with ${magic.toString()})`)
    }
    const readers = [0, 1].map(() => new FrameDecoder.FrameReader({ maxFrameSize: CaptureFrameLimit }))
    const frames: [Array<Recorded>, Array<Recorded>] = [[], []]
    const records = new CaptureRecordReader()
    records.push(bytes.subarray(magic.length), (direction, time, part) => {
      for (const frame of readers[direction]!.push(part)) frames[direction]!.push({ frame, time })
    })
    const error = records.end() ?? readers.find((r) => r.error !== undefined)?.error
    if (error !== undefined) return yield* fail(`${path}: ${error.message}`)
    const script: Script = { leading: [], answers: new Map(), asked: new Map() }
    for (const { frame, time } of frames[Capture.HostToGuest]) script.asked.set(frame.id, time)
    let current: Answer | undefined
    for (const recorded of frames[Capture.GuestToHost]) {
      const { frame } = recorded
      if (MessageType.classOf(frame.type) === MessageType.MessageClass.Response) {
        current = { response: recorded, then: [] }
        if (!script.answers.has(frame.id)) script.answers.set(frame.id, current)
      } else (current?.then ?? script.leading).push(recorded)
    }
    return script
  })

const bytesOf = ({ frame }: Recorded) => Frame.encodeFrame(frame.type, frame.id, frame.payload)

/** Nanoseconds as a delay, none when negative. */
const delay = (ns: bigint) => Effect.sleep(Duration.nanos(ns > 0n ? ns : 0n))

const options = {
  connect: Flag.String("connect").pipe(
    Flag.withMetavar("ADDRESS"),
    Flag.withDescription(
      "The host as the guest reaches it, as for `gcsctl guest`: unix:///path for a host listening on hybrid:///path."
    ),
    Flag.mapEffect((text) => CliOptions.parseCliAddress("--connect", text))
  ),
  timing: CliOptions.boolean(
    "timing",
    "Keep the recorded delays: each answer waits as long as the guest took."
  ),
  file: Argument.String("file").pipe(Argument.withDescription("A capture made by `gcsctl run --capture`."))
}

/**
 * The `replay` command: runs until the host closes the bridge.
 *
 * @since 0.1.0
 */
export const replay = Command.make("replay", options, ({ connect, file, timing }) =>
  Effect.scoped(
    Effect.gen(function* () {
      const script = yield* load(file)
      const transport = yield* Transport
      const connection = yield* transport
        .connect(connect, MessageType.LinuxGcsVsockPort, { timeout: "10 seconds" })
        .pipe(Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 100 }))
      const send = (recorded: Recorded, after: bigint) =>
        Effect.andThen(
          timing ? delay(recorded.time - after) : Effect.void,
          connection.write(bytesOf(recorded))
        )
      let previous = 0n
      for (const recorded of script.leading) {
        yield* send(recorded, previous)
        previous = recorded.time
      }
      const reader = new FrameDecoder.FrameReader({ maxFrameSize: CaptureFrameLimit })
      const unanswered: Array<number> = []
      yield* Stream.runForEach(connection.stream, (chunk) =>
        Effect.gen(function* () {
          const frames = reader.push(chunk)
          if (reader.error !== undefined) return yield* fail(`the host sent ${reader.error.message}`)
          for (const { id, type } of frames) {
            const answer = script.answers.get(id)
            if (MessageType.classOf(type) !== MessageType.MessageClass.Request) continue
            if (answer === undefined) {
              unanswered.push(id)
              yield* Effect.logWarning(`no recorded response to ${MessageType.typeName(type)} id ${id}`)
              continue
            }
            script.answers.delete(id)
            let last = script.asked.get(id) ?? answer.response.time
            for (const recorded of [answer.response, ...answer.then]) {
              yield* send(recorded, last)
              last = recorded.time
            }
          }
        })
      )
      if (unanswered.length > 0) {
        return yield* fail(
          `${unanswered.length} request(s) had no recorded response (ids ${unanswered.join(", ")})`
        )
      }
    })
  ).pipe(reportFailures("replay", ExitCode.Failure, { guest: `host at ${formatAddress(connect)}` }))
).pipe(
  Command.withDescription(
    "Play the guest side of a `gcsctl run --capture` file to a host: answer each request with the recorded " +
      "response of the same message id (and what the guest sent after it); stdio is not replayed."
  )
)

/**
 * `gcsctl replay FILE --connect ADDRESS [--timing]`: plays the guest side of
 * a `run --capture` file to a host, so a recorded session becomes a
 * regression test. It dials the host as `gcsctl guest` does and answers each
 * request with the recorded response of the same message id; the frames the
 * guest sent on its own (notifications) follow the response they followed in
 * the capture. A capture made with `--capture-stdio` also plays each
 * process's stdout and stderr: the guest dials the stdio ports of the live
 * ExecuteProcess and writes the recorded bytes of the matching recorded port.
 *
 * @since 0.1.0
 */
import { Codec, Frame, FrameDecoder, MessageType } from "@gcs-bridge/protocol"
import * as Capture from "../Capture.js"
import { type Address, Transport, formatAddress } from "@gcs-bridge/transport"
import { Data, Deferred, Duration, Effect, Exit, Result, Schedule, Scope, Stream } from "effect"
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

/** Bytes the guest wrote to a stdio connection, and when. */
interface StdioRecord {
  readonly bytes: Uint8Array
  readonly time: bigint
}

/** The guest's side of a capture, keyed by the ids of the responses, and what the host asked, when. */
interface Script {
  readonly leading: Array<Recorded>
  readonly answers: Map<number, Answer>
  readonly asked: Map<number, Recorded>
  /** What the guest wrote, by stdio port; empty when stdio was not recorded. */
  readonly stdio: Map<number, Array<StdioRecord>>
  /** Whether the capture holds stdio records (of either direction). */
  readonly hasStdio: boolean
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
    const head = Buffer.from(bytes.subarray(0, Capture.Magic.length))
    const version = head.equals(Capture.Magic) ? 2 : head.equals(Capture.MagicV1) ? 1 : undefined
    if (version === undefined) {
      const magic = Buffer.from(Capture.Magic).toString()
      return yield* fail(`${path} is not a capture file (it does not start with ${magic} or GCSCAP01)`)
    }
    const readers = [0, 1].map(() => new FrameDecoder.FrameReader({ maxFrameSize: CaptureFrameLimit }))
    const frames: [Array<Recorded>, Array<Recorded>] = [[], []]
    const stdio = new Map<number, Array<StdioRecord>>()
    let hasStdio = false
    const records = new CaptureRecordReader(version)
    records.push(bytes.subarray(Capture.Magic.length), (direction, time, part, port) => {
      if (port === MessageType.LinuxGcsVsockPort) {
        for (const frame of readers[direction]!.push(part)) frames[direction]!.push({ frame, time })
        return
      }
      hasStdio = true
      if (direction !== Capture.GuestToHost) return
      const own = stdio.get(port) ?? []
      own.push({ bytes: part, time })
      stdio.set(port, own)
    })
    const error = records.end() ?? readers.find((r) => r.error !== undefined)?.error
    if (error !== undefined) return yield* fail(`${path}: ${error.message}`)
    const script: Script = { leading: [], answers: new Map(), asked: new Map(), stdio, hasStdio }
    for (const recorded of frames[Capture.HostToGuest]) script.asked.set(recorded.frame.id, recorded)
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

/** The stdio ports an ExecuteProcess request names, in the order a guest dials them; none for other frames. */
const stdioPorts = (frame: Frame.Frame | undefined): ReadonlyArray<number | undefined> => {
  const decoded = frame === undefined ? undefined : Codec.decodeRequest(frame)
  if (decoded === undefined || Result.isFailure(decoded) || decoded.success.name !== "ExecuteProcess")
    return []
  const relay = decoded.success.body.Settings.VsockStdioRelaySettings
  return [relay?.StdIn, relay?.StdOut, relay?.StdErr].map((port) => (port === 0 ? undefined : port))
}

/** A stdio stream being played. */
interface Playing {
  /** Done once its bytes are written and it is half-closed (or it failed). */
  readonly written: Deferred.Deferred<void>
  /** When its last byte was recorded: a frame recorded later waits for it. */
  readonly until: bigint
}

/**
 * Dials the stdio ports of the live ExecuteProcess `request` (stdin, stdout, stderr, as a guest does) and
 * plays, in the background, on each output port the bytes the guest wrote to the port in the same place of
 * the recorded request, once `responded` (their recorded times count from the response's, `after`); stdin
 * is read and dropped. Each connection ends once the host has closed it.
 */
const playStdio = (
  script: Script,
  address: Address,
  request: Frame.Frame,
  responded: Deferred.Deferred<void>,
  after: bigint,
  timing: boolean
): Effect.Effect<ReadonlyArray<Playing>, never, Transport | Scope.Scope> =>
  Effect.gen(function* () {
    const transport = yield* Transport
    const outer = yield* Effect.scope
    const recorded = stdioPorts(script.asked.get(request.id)?.frame)
    const playing: Array<Playing> = []
    for (const [slot, port] of stdioPorts(request).entries()) {
      if (port === undefined) continue
      const records = slot === 0 ? [] : (script.stdio.get(recorded[slot] ?? -1) ?? [])
      const scope = yield* Scope.fork(outer)
      const dialled = yield* transport
        .connect(address, port, { timeout: "10 seconds" })
        .pipe(Scope.provide(scope), Effect.result)
      if (Result.isFailure(dialled)) {
        yield* Scope.close(scope, Exit.void)
        yield* Effect.logWarning(`could not dial stdio port ${port}: ${dialled.failure.message}`)
        continue
      }
      const connection = dialled.success
      let last = after
      const write = Effect.forEach(
        records,
        (record) =>
          Effect.andThen(timing ? delay(record.time - last) : Effect.void, () => {
            last = record.time
            return connection.write(record.bytes)
          }),
        { discard: true }
      )
      const written = Deferred.makeUnsafe<void>()
      const play = Effect.andThen(Deferred.await(responded), Effect.andThen(write, connection.endWrite))
      yield* (slot === 0 ? Effect.void : play).pipe(
        Effect.ensuring(Deferred.succeed(written, undefined)),
        Effect.andThen(Stream.runDrain(connection.stream)),
        Effect.catch((e) => Effect.logWarning(`stdio port ${port}: ${e.message}`)),
        Effect.ensuring(Scope.close(scope, Exit.void)),
        Effect.forkIn(outer)
      )
      playing.push({ written, until: records.at(-1)?.time ?? after })
    }
    return playing
  })

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
      // A frame recorded after the last byte of a stdio stream follows it (the exit after the output).
      let playing: Array<Playing> = []
      const played = (time: bigint) =>
        Effect.suspend(() => {
          const done = playing.filter((p) => p.until < time)
          playing = playing.filter((p) => p.until >= time)
          return Effect.forEach(done, (p) => Deferred.await(p.written), { discard: true })
        })
      const send = (recorded: Recorded, after: bigint) =>
        Effect.andThen(
          Effect.andThen(played(recorded.time), timing ? delay(recorded.time - after) : Effect.void),
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
          for (const frame of frames) {
            const { id, type } = frame
            const answer = script.answers.get(id)
            if (MessageType.classOf(type) !== MessageType.MessageClass.Request) continue
            if (answer === undefined) {
              unanswered.push(id)
              yield* Effect.logWarning(`no recorded response to ${MessageType.typeName(type)} id ${id}`)
              continue
            }
            script.answers.delete(id)
            let last = script.asked.get(id)?.time ?? answer.response.time
            // The stdio connections are in place before the response, as a guest's are.
            const responded = Deferred.makeUnsafe<void>()
            const started = script.hasStdio
              ? yield* playStdio(script, connect, frame, responded, answer.response.time, timing)
              : []
            for (const recorded of [answer.response, ...answer.then]) {
              yield* send(recorded, last)
              if (recorded === answer.response) {
                yield* Deferred.succeed(responded, undefined)
                playing.push(...started)
              }
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
      "response of the same message id (and what the guest sent after it); with stdio recorded " +
      "(--capture-stdio), dial each process's stdio ports and write the recorded output."
  )
)
